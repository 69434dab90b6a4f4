// `destination = expression`: the one place where an expression's loop runs. Checks shapes and
// aliasing, then hands the node to the evaluation backend of the destination's device.
//
// Aliasing: an operand may be the destination itself, at the same shape. Each element is read
// before it is written, and a row reduction reads its whole row before any of the row is
// written, so `x = x * a + y` and `x = x - row_max(x)` are defined. Any other overlap of an
// operand with the destination (a shifted or partial view, an operand broadcast from inside the
// destination) throws shape_error: evaluate into another tensor first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "splitmask/backend/cpu/evaluate.hpp"
#include "splitmask/core/backend.hpp"
#include "splitmask/core/device.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/tensor/expr/broadcast.hpp"
#include "splitmask/tensor/expr/node.hpp"

namespace splitmask {

namespace detail {
// Visits every leaf of an expression and throws on an overlap that is not the destination
// itself (see the file comment).
struct alias_check {
  const char* begin;
  const char* end;
  std::size_t row_length;

  void operator()(const void* data, std::size_t bytes, std::size_t leaf_row_length,
                  bool row_identity) const {
    const char* b = static_cast<const char*>(data);
    const char* e = b + bytes;
    if (e <= begin || b >= end) return;
    if (b == begin && e == end && row_identity && leaf_row_length == row_length) return;
    throw shape_error(
        "splitmask: an operand overlaps the destination without being the destination itself "
        "(a shifted, partial or broadcast view of it); evaluate the expression into another "
        "tensor first");
  }
};
}  // namespace detail

/// Evaluates `x` (an expression, tensor, view or scalar) into the `shape` elements at `dst`
/// on Device. `x` broadcasts to the destination's shape. Throws shape_error on a batch mismatch
/// or a forbidden overlap.
template <class Device, class T, class Extents, class X>
void assign(T* dst, const Extents& shape, const X& x) {
  const auto node = broadcast_to<Extents>(as_node_or_scalar<T>(x), shape);
  using N = std::decay_t<decltype(node)>;
  static_assert(
      std::is_void_v<typename N::device_type> || std::is_same_v<typename N::device_type, Device>,
      "splitmask: the expression lives on another device than the destination; copy "
      "between devices explicitly with splitmask::copy");
  static_assert(std::is_same_v<typename N::value_type, T>,
                "splitmask: the expression's value type differs from the destination's; convert "
                "it with cast<T>(x)");
  if (shape.size() == 0) return;
  const char* begin = reinterpret_cast<const char*>(dst);
  detail::alias_check check{begin, begin + shape.size() * sizeof(T), Extents::row_length};
  node.visit_leaves(check, true);
  detail::evaluate_backend<Device>::run(dst, shape, node);
}

}  // namespace splitmask
