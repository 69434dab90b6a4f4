// Random tensors as expressions: element i of a shape draws counter_rng element i, so the same
// (seed, stream) fills a tensor identically on every device and for every thread count.
#pragma once

#include <type_traits>

#include "splitmask/core/extents.hpp"
#include "splitmask/core/rng.hpp"
#include "splitmask/tensor/expr/node.hpp"

namespace splitmask {

namespace distributions {
/// Uniform on [a, b]: u is in [0, 1), but a + (b - a) u may round up to b.
struct uniform {
  template <class T>
  SPLITMASK_HD static T draw(const counter_rng& rng, std::uint64_t i, T a, T b) {
    return a + (b - a) * rng.uniform<T>(i);
  }
};
/// Normal with mean a and standard deviation b.
struct normal {
  template <class T>
  SPLITMASK_HD static T draw(const counter_rng& rng, std::uint64_t i, T a, T b) {
    return a + b * rng.normal<T>(i);
  }
};
}  // namespace distributions

template <class T, class Extents, class Dist>
struct random_expr : expression_node {
  static_assert(std::is_floating_point_v<T>, "splitmask: random tensors are floating-point");
  using value_type = T;
  using extents_type = Extents;
  using device_type = void;  // computed where it is assigned
  static constexpr bool is_flat = true;
  static constexpr bool has_reduction = false;

  counter_rng rng{};
  Extents shape{};
  T a{}, b{};
  std::uint64_t row_start = 0;

  constexpr random_expr() = default;
  constexpr random_expr(counter_rng r, Extents s, T p, T q) : rng(r), shape(s), a(p), b(q) {}

  constexpr Extents extents() const { return shape; }
  template <class Rows>
  SPLITMASK_HD void begin_row(std::size_t r, const Rows&) {
    row_start = static_cast<std::uint64_t>(r) * Extents::row_length;
  }
  SPLITMASK_HD T at(std::size_t c) const { return Dist::draw(rng, row_start + c, a, b); }
  template <class F>
  void visit_leaves(F&, bool) const {}
};

/// A tensor of shape `shape` uniform on [low, high] (high only by rounding; [0, 1) for the
/// defaults).
template <class T, class Extents>
constexpr auto uniform(const counter_rng& rng, const Extents& shape, T low = T(0), T high = T(1)) {
  return random_expr<T, Extents, distributions::uniform>(rng, shape, low, high);
}

/// A tensor of shape `shape` normal with the given mean and standard deviation.
template <class T, class Extents>
constexpr auto normal(const counter_rng& rng, const Extents& shape, T mean = T(0),
                      T stddev = T(1)) {
  return random_expr<T, Extents, distributions::normal>(rng, shape, mean, stddev);
}

}  // namespace splitmask
