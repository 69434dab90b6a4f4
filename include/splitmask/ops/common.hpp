// What the model's ops share: the write mode of their outputs, row views of token tensors, the
// CPU parallel loop, and the check that an op runs on the host.
//
// Conventions of every op: parameter gradients accumulate (+=; zero them once per step);
// input gradients are written (=) unless the op takes a write_mode, which the residual stream
// uses to accumulate.
#pragma once

#include <cstddef>
#include <type_traits>

#include "splitmask/backend/cpu/evaluate.hpp"
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

/// The model's ops are written for the host; the CUDA path specialises them separately.
template <class... Views>
constexpr void require_host() {
  static_assert((std::is_same_v<typename std::decay_t<Views>::device_type, device::cpu> && ...),
                "splitmask: this op runs on device::cpu tensors; its CUDA version is not "
                "written yet");
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
