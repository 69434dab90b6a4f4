// The CPU evaluation loop of expressions: one pass over the destination, vectorisable inner
// loops, OpenMP over rows (or over one flat range) above a size threshold.
#pragma once

#include <cstddef>

#include "splitmask/core/config.hpp"
#include "splitmask/core/device.hpp"
#include "splitmask/tensor/assign.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace splitmask::backend::cpu {

/// Below this many elements an expression runs on one thread: a parallel region costs a few
/// microseconds, which is more than the loop itself.
inline constexpr std::size_t parallel_threshold = std::size_t{1} << 15;

/// Whether a loop of n elements should run on the OpenMP thread pool.
inline bool run_parallel(std::size_t n) {
#if defined(_OPENMP)
  return n >= parallel_threshold && omp_get_max_threads() > 1 && !omp_in_parallel();
#else
  (void)n;
  return false;
#endif
}

/// Row reductions on the CPU: one thread reduces the whole row; sums vectorise.
struct sequential_rows {
  template <class R, class E>
  SPLITMASK_HD typename E::value_type reduce(const E& e, std::size_t n) const {
    using T = typename E::value_type;
    T acc = R::template identity<T>();
    if constexpr (R::is_sum) {
      SPLITMASK_OMP(simd reduction(+ : acc))
      for (std::size_t c = 0; c < n; ++c) acc += R::term(e.at(c));
    } else {
      for (std::size_t c = 0; c < n; ++c) acc = R::combine(acc, R::term(e.at(c)));
    }
    return acc;
  }
};

}  // namespace splitmask::backend::cpu

namespace splitmask::detail {

template <>
struct evaluate_backend<device::cpu> {
  template <class T, class Extents, class Node>
  static void run(T* dst, const Extents& shape, Node node) {
    const backend::cpu::sequential_rows rows;
    const bool parallel = backend::cpu::run_parallel(shape.size());
    if constexpr (Node::is_flat) {
      // No broadcast and no reduction: every element depends on the same index of each operand.
      const std::size_t n = shape.size();
      SPLITMASK_OMP(parallel if (parallel) firstprivate(node))
      {
        node.begin_row(0, rows);
        SPLITMASK_OMP(for simd schedule(static))
        for (std::size_t i = 0; i < n; ++i) dst[i] = node.at(i);
      }
    } else {
      constexpr std::size_t length = Extents::row_length;
      const std::size_t n_rows = shape.rows();
      SPLITMASK_OMP(parallel for if (parallel) firstprivate(node) schedule(static))
      for (std::size_t r = 0; r < n_rows; ++r) {
        node.begin_row(r, rows);
        T* out = dst + r * length;
        SPLITMASK_OMP(simd)
        for (std::size_t c = 0; c < length; ++c) out[c] = node.at(c);
      }
    }
  }
};

}  // namespace splitmask::detail
