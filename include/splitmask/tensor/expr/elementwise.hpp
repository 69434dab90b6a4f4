// Lazy elementwise expressions: unary and binary functions, comparisons, select and casts, with
// broadcasting (see broadcast.hpp). Nothing is computed until the expression is assigned to a
// tensor; then the whole tree is evaluated in one pass.
#pragma once

#include <type_traits>
#include <utility>

#include "splitmask/tensor/expr/broadcast.hpp"
#include "splitmask/tensor/expr/functors.hpp"
#include "splitmask/tensor/expr/node.hpp"

namespace splitmask {

template <class Op, class A>
struct unary_expr : expression_node {
  using value_type = decltype(Op{}(std::declval<typename A::value_type>()));
  using extents_type = typename A::extents_type;
  using device_type = typename A::device_type;
  static constexpr bool is_flat = A::is_flat;
  static constexpr bool has_reduction = A::has_reduction;

  A a{};

  constexpr unary_expr() = default;
  constexpr explicit unary_expr(A x) : a(x) {}

  constexpr extents_type extents() const { return a.extents(); }
  template <class Rows>
  SPLITMASK_HD void begin_row(std::size_t r, const Rows& rows) {
    a.begin_row(r, rows);
  }
  SPLITMASK_HD value_type at(std::size_t c) const { return Op{}(a.at(c)); }
  template <class F>
  void visit_leaves(F& f, bool row_identity) const {
    a.visit_leaves(f, row_identity);
  }
};

// Operands of binary and select nodes are already broadcast to the node's shape (or scalars).
template <class Op, class A, class B>
struct binary_expr : expression_node {
  static_assert(std::is_same_v<typename A::value_type, typename B::value_type>,
                "splitmask: operands have different value types; convert one with cast<T>(x)");
  using value_type = decltype(Op{}(std::declval<typename A::value_type>(),
                                   std::declval<typename B::value_type>()));
  using extents_type = broadcast_extents_t<typename A::extents_type, typename B::extents_type>;
  using device_type = common_device_t<typename A::device_type, typename B::device_type>;
  static constexpr bool is_flat = A::is_flat && B::is_flat;
  static constexpr bool has_reduction = A::has_reduction || B::has_reduction;

  A a{};
  B b{};

  constexpr binary_expr() = default;
  constexpr binary_expr(A x, B y) : a(x), b(y) {}

  constexpr extents_type extents() const {
    if constexpr (std::is_void_v<typename A::extents_type>) {
      return b.extents();
    } else {
      return a.extents();
    }
  }
  template <class Rows>
  SPLITMASK_HD void begin_row(std::size_t r, const Rows& rows) {
    a.begin_row(r, rows);
    b.begin_row(r, rows);
  }
  SPLITMASK_HD value_type at(std::size_t c) const { return Op{}(a.at(c), b.at(c)); }
  template <class F>
  void visit_leaves(F& f, bool row_identity) const {
    a.visit_leaves(f, row_identity);
    b.visit_leaves(f, row_identity);
  }
};

/// `condition ? if_true : if_false`, elementwise.
template <class C, class A, class B>
struct select_expr : expression_node {
  using value_type = typename A::value_type;
  using extents_type = broadcast_extents_t<typename C::extents_type, typename A::extents_type,
                                           typename B::extents_type>;
  using device_type =
      common_device_t<typename C::device_type, typename A::device_type, typename B::device_type>;
  static constexpr bool is_flat = C::is_flat && A::is_flat && B::is_flat;
  static constexpr bool has_reduction = C::has_reduction || A::has_reduction || B::has_reduction;
  static_assert(std::is_same_v<typename A::value_type, typename B::value_type>,
                "splitmask: select's branches have different value types");

  C cond{};
  A a{};
  B b{};

  constexpr select_expr() = default;
  constexpr select_expr(C c, A x, B y) : cond(c), a(x), b(y) {}

  constexpr extents_type extents() const { return extents_of_first<extents_type>(cond, a, b); }
  template <class Rows>
  SPLITMASK_HD void begin_row(std::size_t r, const Rows& rows) {
    cond.begin_row(r, rows);
    a.begin_row(r, rows);
    b.begin_row(r, rows);
  }
  SPLITMASK_HD value_type at(std::size_t c) const { return cond.at(c) ? a.at(c) : b.at(c); }
  template <class F>
  void visit_leaves(F& f, bool row_identity) const {
    cond.visit_leaves(f, row_identity);
    a.visit_leaves(f, row_identity);
    b.visit_leaves(f, row_identity);
  }
};

// ---- Building nodes ---------------------------------------------------------------------------

namespace detail {
// The value type of the non-scalar among two operands (both: the first's).
template <class X, class Y, bool = is_scalar_v<X>>
struct operand_value {
  using type = typename node_t<X>::value_type;
};
template <class X, class Y>
struct operand_value<X, Y, true> {
  using type = typename node_t<Y>::value_type;
};
template <class X, class Y>
using operand_value_t = typename operand_value<X, Y>::type;

template <class X, class Y>
inline constexpr bool binary_operands_v = (is_operand_v<X> &&
                                           (is_operand_v<Y> || is_scalar_v<Y>)) ||
                                          (is_scalar_v<X> && is_operand_v<Y>);

// The value type of select's branches: the operand's, or the scalars' common type.
template <class X, class Y, bool = is_operand_v<X>, bool = is_operand_v<Y>>
struct select_value {
  using type = std::common_type_t<X, Y>;
};
template <class X, class Y, bool B>
struct select_value<X, Y, true, B> {
  using type = typename node_t<X>::value_type;
};
template <class X, class Y>
struct select_value<X, Y, false, true> {
  using type = typename node_t<Y>::value_type;
};
}  // namespace detail

template <class Op, class X>
constexpr auto make_unary(const X& x) {
  using A = node_t<X>;
  return unary_expr<Op, A>(as_node(x));
}

template <class Op, class X, class Y>
constexpr auto make_binary(const X& x, const Y& y) {
  using T = detail::operand_value_t<X, Y>;
  static_assert(!std::is_same_v<T, bool> || (!is_scalar_v<X> && !is_scalar_v<Y>),
                "splitmask: a scalar with a bool operand; convert the operand with cast<T>(x)");
  const auto a = as_node_or_scalar<T>(x);
  const auto b = as_node_or_scalar<T>(y);
  using E =
      broadcast_extents_t<typename decltype(a)::extents_type, typename decltype(b)::extents_type>;
  const E shape = extents_of_first<E>(a, b);
  auto ba = broadcast_to<E>(a, shape);
  auto bb = broadcast_to<E>(b, shape);
  return binary_expr<Op, decltype(ba), decltype(bb)>(ba, bb);
}

#define SPLITMASK_UNARY_FUNCTION(name)                           \
  template <class X, std::enable_if_t<is_operand_v<X>, int> = 0> \
  constexpr auto name(X&& x) {                                   \
    check_operand<X>();                                          \
    return make_unary<functors::name>(x);                        \
  }
SPLITMASK_UNARY_FUNCTION(abs)
SPLITMASK_UNARY_FUNCTION(exp)
SPLITMASK_UNARY_FUNCTION(log)
SPLITMASK_UNARY_FUNCTION(sqrt)
SPLITMASK_UNARY_FUNCTION(rsqrt)
SPLITMASK_UNARY_FUNCTION(tanh)
SPLITMASK_UNARY_FUNCTION(erf)
SPLITMASK_UNARY_FUNCTION(gelu)
SPLITMASK_UNARY_FUNCTION(relu)
SPLITMASK_UNARY_FUNCTION(square)
#undef SPLITMASK_UNARY_FUNCTION

template <class X, std::enable_if_t<is_operand_v<X>, int> = 0>
constexpr auto operator-(X&& x) {
  check_operand<X>();
  return make_unary<functors::negate>(x);
}

/// Converts every element to U.
template <class U, class X, std::enable_if_t<is_operand_v<X>, int> = 0>
constexpr auto cast(X&& x) {
  check_operand<X>();
  return make_unary<functors::cast_to<U>>(x);
}

#define SPLITMASK_BINARY_OPERATOR(op, functor)                                            \
  template <class X, class Y, std::enable_if_t<detail::binary_operands_v<X, Y>, int> = 0> \
  constexpr auto operator op(X&& x, Y&& y) {                                              \
    check_operand<X>();                                                                   \
    check_operand<Y>();                                                                   \
    return make_binary<functors::functor>(x, y);                                          \
  }
SPLITMASK_BINARY_OPERATOR(+, plus)
SPLITMASK_BINARY_OPERATOR(-, minus)
SPLITMASK_BINARY_OPERATOR(*, multiplies)
SPLITMASK_BINARY_OPERATOR(/, divides)
SPLITMASK_BINARY_OPERATOR(<, less)
SPLITMASK_BINARY_OPERATOR(<=, less_equal)
SPLITMASK_BINARY_OPERATOR(>, greater)
SPLITMASK_BINARY_OPERATOR(>=, greater_equal)
SPLITMASK_BINARY_OPERATOR(==, equal_to)
SPLITMASK_BINARY_OPERATOR(!=, not_equal_to)
#undef SPLITMASK_BINARY_OPERATOR

/// Elementwise minimum and maximum; a NaN in either operand gives NaN.
template <class X, class Y, std::enable_if_t<detail::binary_operands_v<X, Y>, int> = 0>
constexpr auto min(X&& x, Y&& y) {
  check_operand<X>();
  check_operand<Y>();
  return make_binary<functors::minimum>(x, y);
}
template <class X, class Y, std::enable_if_t<detail::binary_operands_v<X, Y>, int> = 0>
constexpr auto max(X&& x, Y&& y) {
  check_operand<X>();
  check_operand<Y>();
  return make_binary<functors::maximum>(x, y);
}

/// `condition ? if_true : if_false` elementwise; the branches may be scalars.
template <class C, class X, class Y,
          std::enable_if_t<is_operand_v<C> && (is_operand_v<X> ||
                                               is_scalar_v<X>)&&(is_operand_v<Y> || is_scalar_v<Y>),
                           int> = 0>
constexpr auto select(C&& condition, X&& if_true, Y&& if_false) {
  check_operand<C>();
  check_operand<X>();
  check_operand<Y>();
  using T = typename detail::select_value<std::decay_t<X>, std::decay_t<Y>>::type;
  const auto c = as_node(condition);
  const auto a = as_node_or_scalar<T>(if_true);
  const auto b = as_node_or_scalar<T>(if_false);
  using E =
      broadcast_extents_t<typename decltype(c)::extents_type, typename decltype(a)::extents_type,
                          typename decltype(b)::extents_type>;
  const E shape = extents_of_first<E>(c, a, b);
  auto bc = broadcast_to<E>(c, shape);
  auto ba = broadcast_to<E>(a, shape);
  auto bb = broadcast_to<E>(b, shape);
  return select_expr<decltype(bc), decltype(ba), decltype(bb)>(bc, ba, bb);
}

}  // namespace splitmask
