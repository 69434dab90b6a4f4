// Row reductions over the last axis: sum, mean, max and sum of squares. A reduction of shape
// (B, N, D) has shape (B, N, 1), so it broadcasts back over its rows: `x - row_max(x)` is one
// pass. The evaluation loop computes each row's reduction once, before the row's elements.
#pragma once

#include <type_traits>

#include "splitmask/core/math.hpp"
#include "splitmask/tensor/expr/node.hpp"

namespace splitmask {

namespace reductions {
// Each reduction: the value before any element, the per-element term, how terms combine
// (`is_sum` lets the CPU loop vectorise with an OpenMP simd reduction), and the final step.
struct sum {
  static constexpr bool is_sum = true;
  template <class T>
  SPLITMASK_HD static T identity() {
    return T(0);
  }
  template <class T>
  SPLITMASK_HD static T term(T x) {
    return x;
  }
  template <class T>
  SPLITMASK_HD static T combine(T a, T b) {
    return a + b;
  }
  template <class T>
  SPLITMASK_HD static T finish(T acc, std::size_t) {
    return acc;
  }
};
struct mean : sum {
  template <class T>
  SPLITMASK_HD static T finish(T acc, std::size_t n) {
    return acc / static_cast<T>(n);
  }
};
struct sum_squares : sum {
  template <class T>
  SPLITMASK_HD static T term(T x) {
    return x * x;
  }
};
struct max {
  static constexpr bool is_sum = false;
  template <class T>
  SPLITMASK_HD static T identity() {
    return -math::infinity<T>();
  }
  template <class T>
  SPLITMASK_HD static T term(T x) {
    return x;
  }
  template <class T>
  SPLITMASK_HD static T combine(T a, T b) {
    return math::max(a, b);
  }
  template <class T>
  SPLITMASK_HD static T finish(T acc, std::size_t) {
    return acc;
  }
};
}  // namespace reductions

/// One value per row of `child`, by reduction R; shape (..., 1).
template <class R, class Child>
struct row_reduce_expr : expression_node {
  using From = typename Child::extents_type;
  static_assert(!std::is_void_v<From>, "splitmask: a row reduction needs a tensor operand");
  static_assert(From::last != dynamic,
                "splitmask: a row reduction needs a compile-time row length; a rank-1 dynamic "
                "shape has none");
  using value_type = typename Child::value_type;
  static_assert(std::is_floating_point_v<value_type>,
                "splitmask: row reductions are defined for floating-point values");
  using extents_type = with_last_t<From, 1>;
  using device_type = typename Child::device_type;
  static constexpr bool is_flat = false;
  static constexpr bool has_reduction = true;

  Child child{};
  value_type value{};

  constexpr row_reduce_expr() = default;
  constexpr explicit row_reduce_expr(Child c) : child(c) {}

  constexpr extents_type extents() const {
    if constexpr (From::rank == 1) {
      return extents_type{};  // (L) -> (1)
    } else {
      return extents_type(child.extents().leading());
    }
  }

  template <class Rows>
  SPLITMASK_HD void begin_row(std::size_t r, const Rows& rows) {
    child.begin_row(r, rows);
    value = R::finish(rows.template reduce<R>(child, From::row_length), From::row_length);
  }
  SPLITMASK_HD value_type at(std::size_t) const { return value; }
  template <class F>
  void visit_leaves(F& f, bool row_identity) const {
    child.visit_leaves(f, row_identity);
  }
};

template <class R, class X>
constexpr auto make_row_reduce(const X& x) {
  return row_reduce_expr<R, node_t<X>>(as_node(x));
}

/// Sum over the last axis: (..., L) -> (..., 1).
template <class X, std::enable_if_t<is_operand_v<X>, int> = 0>
constexpr auto row_sum(X&& x) {
  check_operand<X>();
  return make_row_reduce<reductions::sum>(x);
}
/// Mean over the last axis.
template <class X, std::enable_if_t<is_operand_v<X>, int> = 0>
constexpr auto row_mean(X&& x) {
  check_operand<X>();
  return make_row_reduce<reductions::mean>(x);
}
/// Maximum over the last axis (NaN if any element is NaN).
template <class X, std::enable_if_t<is_operand_v<X>, int> = 0>
constexpr auto row_max(X&& x) {
  check_operand<X>();
  return make_row_reduce<reductions::max>(x);
}
/// Sum of squares over the last axis.
template <class X, std::enable_if_t<is_operand_v<X>, int> = 0>
constexpr auto row_sum_squares(X&& x) {
  check_operand<X>();
  return make_row_reduce<reductions::sum_squares>(x);
}

}  // namespace splitmask
