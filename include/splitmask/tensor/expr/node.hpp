// Expression nodes: the leaves (a tensor's memory, a scalar) and the protocol every node follows.
//
// A node is a small, trivially copyable value that is also its own evaluator, so the same object
// runs in a CPU loop and, copied as a kernel argument, on a CUDA device. The evaluation loop
// walks the destination row by row (a row is the last axis):
//   node.begin_row(r, rows)   position on row r; row reductions compute their value here, using
//                             the loop's `rows` policy (sequential on the CPU, a warp on CUDA)
//   node.at(c)                element c of the current row
// Nodes with `is_flat` (no broadcast, no reduction) may also be evaluated as one flat row:
// begin_row(0) then at(i) for every element i.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include "splitmask/core/config.hpp"
#include "splitmask/core/device.hpp"
#include "splitmask/core/extents.hpp"

namespace splitmask {

/// Base of every expression node: lets operators recognise nodes, costs nothing.
struct expression_node {};

template <class T>
inline constexpr bool is_node_v = std::is_base_of_v<expression_node, std::decay_t<T>>;

namespace detail {
template <class T, class = void>
struct has_expression : std::false_type {};
template <class T>
struct has_expression<T, std::void_t<decltype(std::declval<const T&>().expression())>>
    : std::true_type {};
}  // namespace detail

/// Operands of expressions: nodes, and anything with an `expression()` (tensors and views).
template <class T>
inline constexpr bool is_operand_v = is_node_v<T> || detail::has_expression<std::decay_t<T>>::value;

/// Scalars mix with operands and are converted to the operand's value type.
template <class T>
inline constexpr bool is_scalar_v = std::is_arithmetic_v<std::decay_t<T>>;

namespace detail {
template <class T, class = void>
struct owns_storage : std::false_type {};
template <class T>
struct owns_storage<T, std::enable_if_t<T::owns_storage>> : std::true_type {};
}  // namespace detail

/// Checks an operand as the caller passed it (X deduced from a forwarding reference): an
/// expression keeps pointers to its operands, so a temporary tensor would leave it dangling.
template <class X>
constexpr void check_operand() {
  static_assert(std::is_lvalue_reference_v<X> || !detail::owns_storage<std::decay_t<X>>::value,
                "splitmask: an expression cannot read a temporary tensor (it would outlive the "
                "tensor's storage); bind the tensor to a name first");
}

/// The memory of a contiguous row-major tensor, read-only.
template <class T, class Extents, class Device>
struct leaf_expr : expression_node {
  using value_type = T;
  using extents_type = Extents;
  using device_type = Device;
  static constexpr bool is_flat = true;
  static constexpr bool has_reduction = false;

  const T* data = nullptr;
  Extents shape{};
  const T* row = nullptr;

  constexpr leaf_expr() = default;
  constexpr leaf_expr(const T* d, Extents e) : data(d), shape(e) {}

  constexpr Extents extents() const { return shape; }

  template <class Rows>
  SPLITMASK_HD void begin_row(std::size_t r, const Rows&) {
    row = data + r * Extents::row_length;
  }
  SPLITMASK_HD T at(std::size_t c) const { return row[c]; }

  // Reports the memory this leaf reads; `row_identity` is false under a broadcast that maps
  // the destination's rows onto other rows of this leaf.
  template <class F>
  void visit_leaves(F& f, bool row_identity) const {
    f(static_cast<const void*>(data), shape.size() * sizeof(T), Extents::row_length, row_identity);
  }
};

/// A constant; it has no shape and adopts the shape of the expression around it.
template <class T>
struct scalar_expr : expression_node {
  using value_type = T;
  using extents_type = void;
  using device_type = void;
  static constexpr bool is_flat = true;
  static constexpr bool has_reduction = false;

  T value{};

  constexpr scalar_expr() = default;
  constexpr explicit scalar_expr(T v) : value(v) {}

  template <class Rows>
  SPLITMASK_HD void begin_row(std::size_t, const Rows&) {}
  SPLITMASK_HD T at(std::size_t) const { return value; }
  template <class F>
  void visit_leaves(F&, bool) const {}
};

/// The node of an operand (a node is its own node; a tensor or view gives its leaf).
template <class X>
constexpr auto as_node(const X& x) {
  if constexpr (is_node_v<X>) {
    return x;
  } else {
    static_assert(is_operand_v<X>, "splitmask: not an expression operand");
    return x.expression();
  }
}

/// The node of an operand, or a scalar converted to value type T.
template <class T, class X>
constexpr auto as_node_or_scalar(const X& x) {
  if constexpr (is_scalar_v<X>) {
    static_assert(!std::is_integral_v<T> || std::is_integral_v<X>,
                  "splitmask: a floating-point scalar with an integer operand would be truncated; "
                  "convert the operand with cast<float>(x) first");
    return scalar_expr<T>(static_cast<T>(x));
  } else {
    return as_node(x);
  }
}

template <class X>
using node_t = decltype(as_node(std::declval<const X&>()));

// ---- Devices of an expression ----------------------------------------------------------------

namespace detail {
// void is "any device" (scalars, random numbers).
template <class A, class B>
struct common_device {
  static_assert(std::is_same_v<A, B>,
                "splitmask: an expression mixes tensors of different devices; copy one of them "
                "explicitly with splitmask::copy first");
  using type = A;
};
template <class B>
struct common_device<void, B> {
  using type = B;
};
template <class A>
struct common_device<A, void> {
  using type = A;
};
template <>
struct common_device<void, void> {
  using type = void;
};
}  // namespace detail

template <class... D>
struct common_device;
template <class D>
struct common_device<D> {
  using type = D;
};
template <class A, class B, class... R>
struct common_device<A, B, R...> {
  using type = typename common_device<typename detail::common_device<A, B>::type, R...>::type;
};
template <class... D>
using common_device_t = typename common_device<D...>::type;

}  // namespace splitmask
