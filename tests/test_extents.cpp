// Shape arithmetic, checked entirely at compile time: if this file compiles, it passes.
#include <splitmask/core/extents.hpp>
#include <splitmask/tensor/expr/broadcast.hpp>
#include <type_traits>

namespace {
using namespace splitmask;

using bnd = extents<dynamic, 49, 192>;  // (B, N, D)
using nd = extents<49, 192>;            // (N, D)
using d = extents<192>;                 // (D)

static_assert(bnd::rank == 3 && nd::rank == 2 && d::rank == 1);
static_assert(!bnd::is_static && nd::is_static && d::is_static);
static_assert(bnd::inner_size == 49 * 192);
static_assert(nd::inner_size == 192 && d::inner_size == 1);
static_assert(nd::static_size == 49 * 192 && d::static_size == 192);
static_assert(bnd::static_size == dynamic);
static_assert(bnd::static_extent(0) == dynamic && bnd::static_extent(1) == 49 &&
              bnd::static_extent(2) == 192);
static_assert(bnd::last == 192 && bnd::row_length == 192);
static_assert(extents<dynamic>::last == dynamic && extents<dynamic>::row_length == 1);

// Run-time values of constexpr extents.
static_assert(bnd(4).size() == 4 * 49 * 192);
static_assert(bnd(4).rows() == 4 * 49);
static_assert(bnd(4).extent(0) == 4 && bnd(4).extent(2) == 192);
static_assert(nd{}.size() == 49 * 192 && nd{}.leading() == 49);
static_assert(bnd(0).size() == 0);
static_assert(bnd(3) == bnd(3) && bnd(3) != bnd(4));
// A static shape stores no batch.
static_assert(std::is_empty_v<nd> && sizeof(bnd) == sizeof(std::size_t));

// Derived shapes.
static_assert(std::is_same_v<drop_leading_t<bnd>, nd>);
static_assert(std::is_same_v<drop_leading_t<nd>, d>);
static_assert(std::is_same_v<with_last_t<bnd, 1>, extents<dynamic, 49, 1>>);
static_assert(std::is_same_v<with_last_t<d, 1>, extents<1>>);
static_assert(std::is_same_v<with_leading_t<nd, dynamic>, extents<dynamic, 192>>);
static_assert(std::is_same_v<with_leading_t<bnd, 8>, extents<8, 49, 192>>);

// Broadcasting: trailing shapes, the last extent may be 1.
static_assert(is_broadcastable<d, bnd>());
static_assert(is_broadcastable<nd, bnd>());
static_assert(is_broadcastable<extents<dynamic, 49, 1>, bnd>());
static_assert(is_broadcastable<extents<49, 1>, bnd>());
static_assert(is_broadcastable<extents<1>, bnd>());
static_assert(is_broadcastable<void, bnd>());  // a scalar
static_assert(is_broadcastable<bnd, bnd>());
static_assert(!is_broadcastable<extents<49>, bnd>());            // not trailing
static_assert(!is_broadcastable<extents<dynamic, 192>, bnd>());  // a batch of rows is not (N, D)
static_assert(!is_broadcastable<extents<8, 49, 192>, bnd>());    // a static batch is not dynamic
static_assert(!is_broadcastable<bnd, nd>());                     // the larger shape never shrinks
static_assert(!is_broadcastable<extents<dynamic, 1, 192>, bnd>());  // only the last axis spreads
static_assert(!is_broadcastable<extents<1>, extents<dynamic>>());   // never over a dynamic axis
static_assert(std::is_same_v<broadcast_extents_t<bnd, d>, bnd>);
static_assert(std::is_same_v<broadcast_extents_t<d, bnd>, bnd>);
static_assert(std::is_same_v<broadcast_extents_t<extents<dynamic, 49, 1>, bnd, void>, bnd>);
static_assert(std::is_same_v<broadcast_extents_t<void, nd>, nd>);
}  // namespace
