// Broadcasting: how operands of different shapes combine in one expression.
//
// An operand of shape F broadcasts over a result of shape R when F's extents are R's trailing
// extents, except that F's last extent may be 1:
//   (D)        over (B, N, D)   a bias row, the same for every token of every image
//   (N, D)     over (B, N, D)   a positional embedding, the same for every image
//   (B, N, 1)  over (B, N, D)   one value per row (a saved mean, a row reduction)
// Shapes are checked at compile time; batches that are both dynamic are compared at run time.
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>

#include "splitmask/core/error.hpp"
#include "splitmask/core/extents.hpp"
#include "splitmask/tensor/expr/node.hpp"

namespace splitmask {

/// True when an operand of shape From (void: a scalar) can be read as shape To.
template <class From, class To>
constexpr bool is_broadcastable() {
  if constexpr (std::is_void_v<From>) {
    return true;
  } else if constexpr (From::rank > To::rank) {
    return false;
  } else {
    constexpr std::size_t offset = To::rank - From::rank;
    for (std::size_t i = 0; i < From::rank; ++i) {
      const std::size_t f = From::static_extent(i);
      const std::size_t t = To::static_extent(offset + i);
      // A last extent of 1 spreads over a static row; a dynamic axis is never spread over.
      if (f != t && !(i + 1 == From::rank && f == 1 && t != dynamic)) return false;
    }
    return true;
  }
}

namespace detail {
template <class A, class B>
struct broadcast_result {
  static constexpr bool a_wins = is_broadcastable<B, A>();
  static constexpr bool b_wins = is_broadcastable<A, B>();
  static_assert(a_wins || b_wins,
                "splitmask: operand shapes do not broadcast. An operand broadcasts over another "
                "when its extents are the other's trailing extents, the last of which may be 1: "
                "(D) or (N, D) over (B, N, D), or (B, N, 1) over (B, N, D)");
  using type = std::conditional_t<a_wins, A, B>;
};
template <class A>
struct broadcast_result<A, void> {
  using type = A;
};
template <class B>
struct broadcast_result<void, B> {
  using type = B;
};
}  // namespace detail

/// The shape of an expression combining operands of shapes E... (void entries are scalars).
template <class... E>
struct broadcast_extents;
template <class E>
struct broadcast_extents<E> {
  using type = E;
};
template <class A, class B, class... R>
struct broadcast_extents<A, B, R...> {
  using type =
      typename broadcast_extents<typename detail::broadcast_result<A, B>::type, R...>::type;
};
template <class... E>
using broadcast_extents_t = typename broadcast_extents<E...>::type;

/// Reads `child` (shape From) as shape To.
template <class To, class Child>
struct broadcast_expr : expression_node {
  using From = typename Child::extents_type;
  using value_type = typename Child::value_type;
  using extents_type = To;
  using device_type = typename Child::device_type;
  static constexpr bool is_flat = false;
  static constexpr bool has_reduction = Child::has_reduction;
  static_assert(is_broadcastable<From, To>(), "splitmask: internal: broadcast of a wrong shape");

  // Same rank: rows map one to one (only the last extent is 1). Lower rank: the child repeats
  // every `child_rows` rows of the result.
  static constexpr bool same_rank = From::rank == To::rank;
  static constexpr std::size_t child_rows = same_rank ? 1 : From::static_size / From::row_length;
  static constexpr bool spread_columns = From::row_length == 1 && To::row_length != 1;

  Child child{};
  To shape{};

  constexpr broadcast_expr() = default;
  constexpr broadcast_expr(Child c, To s) : child(c), shape(s) {}

  constexpr To extents() const { return shape; }

  template <class Rows>
  SPLITMASK_HD void begin_row(std::size_t r, const Rows& rows) {
    child.begin_row(same_rank ? r : r % child_rows, rows);
  }
  SPLITMASK_HD value_type at(std::size_t c) const { return child.at(spread_columns ? 0 : c); }

  template <class F>
  void visit_leaves(F& f, bool row_identity) const {
    child.visit_leaves(f, row_identity && same_rank);
  }
};

namespace detail {
template <class A, class B>
[[noreturn]] void throw_batch_mismatch(const A& a, const B& b) {
  throw shape_error("splitmask: batch extents differ: " + to_string(a) + " and " + to_string(b));
}
}  // namespace detail

/// `node` read as shape To, whose run-time extents are `to`. Throws shape_error when both
/// batches are dynamic and differ.
template <class To, class Node>
constexpr auto broadcast_to(const Node& node, const To& to) {
  using From = typename Node::extents_type;
  if constexpr (std::is_void_v<From>) {
    return node;
  } else {
    static_assert(is_broadcastable<From, To>(),
                  "splitmask: the expression's shape does not broadcast to the destination's. "
                  "An operand broadcasts when its extents are the destination's trailing "
                  "extents, the last of which may be 1");
    if constexpr (From::rank == To::rank && !To::is_static) {
      if (node.extents().leading() != to.leading())
        detail::throw_batch_mismatch(node.extents(), to);
    }
    if constexpr (std::is_same_v<From, To>) {
      return node;
    } else {
      return broadcast_expr<To, Node>(node, to);
    }
  }
}

/// The run-time extents of the first node whose shape is E.
template <class E, class N, class... R>
constexpr E extents_of_first(const N& n, const R&... rest) {
  if constexpr (std::is_same_v<typename N::extents_type, E>) {
    return n.extents();
  } else {
    return extents_of_first<E>(rest...);
  }
}

}  // namespace splitmask
