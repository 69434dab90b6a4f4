// What the model's ops share: the write mode of their outputs, row views of token tensors, the
// CPU parallel loop, and the dispatch by device: each op takes the views of all its tensor
// arguments from detail::views_on_one_device (linear's pass theirs to matmul and expressions),
// runs its host code on device::cpu ones and hands other devices' to detail::device_ops<Device>
// (backend/cuda/ops.cuh).
//
// Conventions of every op: parameter gradients accumulate (+=; zero them once per step);
// input gradients are written (=) unless the op takes a write_mode, which the residual stream
// uses to accumulate.
#pragma once

#include <cstddef>
#include <tuple>
#include <type_traits>

#include "splitmask/backend/cpu/evaluate.hpp"
#include "splitmask/core/backend.hpp"
#include "splitmask/core/config.hpp"
#include "splitmask/core/device.hpp"
#include "splitmask/core/extents.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace splitmask {

/// Whether an op overwrites its output or adds to it.
enum class write_mode { overwrite, accumulate };

/// (..., L) -> (M, L): a tensor or view as a matrix of its rows, sharing memory.
template <class X>
auto as_rows(X&& x) {
  auto v = x.view();
  using E = typename decltype(v)::extents_type;
  return v.template reshape<extents<dynamic, E::last>>();
}

namespace detail {

/// The device of an op's tensors, which must all live on it.
template <class First, class... Views>
struct device_of {
  using type = typename std::decay_t<First>::device_type;
  static_assert((std::is_same_v<typename std::decay_t<Views>::device_type, type> && ...),
                "splitmask: an op's tensors must all live on one device; copy() them first");
};
template <class... Views>
using device_of_t = typename device_of<Views...>::type;

/// The views of all of an op's tensor arguments (tensors, views, as_rows of them), checked at
/// compile time to live on one device. Calling the result runs the op's body on them, so the
/// views an op works on are the views checked:
///   const auto views = detail::views_on_one_device(as_rows(y), x);
///   views([&](auto dev, auto vy, auto vx) { ... });  // dev = Device{}; returns the body's result
/// A body, not structured bindings: C++17 lambdas (the host loops) cannot capture those.
template <class... Xs>
auto views_on_one_device(Xs&&... xs) {
  using Device = device_of_t<decltype(xs.view())...>;
  return [views = std::make_tuple(xs.view()...)](auto&& body) -> decltype(auto) {
    const auto run = [&](const auto&... v) -> decltype(auto) { return body(Device{}, v...); };
    return std::apply(run, views);
  };
}

/// Whether an op on these tensors runs its host code (else device_ops<device>).
template <class... Views>
inline constexpr bool on_host_v = std::is_same_v<device_of_t<Views...>, device::cpu>;

/// For host-only code (initialisers, the k-means refinement): a compile error on device tensors.
template <class... Views>
constexpr void require_host() {
  static_assert(on_host_v<Views...>, "splitmask: this function works on device::cpu tensors");
}

/// Runs f(i) for i in [0, n); on the OpenMP pool when n * cost (elements touched) is large.
template <class F>
void parallel_for(std::size_t n, std::size_t cost, F&& f) {
#if defined(_OPENMP)
  if (backend::cpu::run_parallel(n * cost) && n > 1) {
    const auto count = static_cast<std::ptrdiff_t>(n);
    SPLITMASK_OMP(parallel for schedule(static))
    for (std::ptrdiff_t i = 0; i < count; ++i) f(static_cast<std::size_t>(i));
    return;
  }
#else
  (void)cost;
#endif
  for (std::size_t i = 0; i < n; ++i) f(i);
}

}  // namespace detail
}  // namespace splitmask
