// The CPU evaluation loop of expressions: one pass over the destination, vectorisable inner
// loops, OpenMP over rows (or over one flat range) above a size threshold.
#pragma once

#include <algorithm>
#include <cstddef>

#include "splitmask/core/backend.hpp"
#include "splitmask/core/config.hpp"
#include "splitmask/core/device.hpp"

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

/// Elements [begin, end) of a flat node (no broadcast, no reduction) into dst.
template <class T, class Node>
void flat_loop(T* dst, Node node, std::size_t begin, std::size_t end) {
  node.begin_row(0, sequential_rows{});
  SPLITMASK_OMP(simd)
  for (std::size_t i = begin; i < end; ++i) dst[i] = node.at(i);
}

/// Rows [begin, end) of a node into dst: each row's reductions first, then its elements.
template <std::size_t Length, class T, class Node>
void row_loop(T* dst, Node node, std::size_t begin, std::size_t end) {
  for (std::size_t r = begin; r < end; ++r) {
    node.begin_row(r, sequential_rows{});
    T* out = dst + r * Length;
    SPLITMASK_OMP(simd)
    for (std::size_t c = 0; c < Length; ++c) out[c] = node.at(c);
  }
}

/// Part `part` of `parts` equal shares of [0, n), with inner boundaries on multiples of `align`
/// (so that no two threads write one cache line).
inline void share(std::size_t n, std::size_t part, std::size_t parts, std::size_t align,
                  std::size_t& begin, std::size_t& end) {
  const std::size_t blocks = (n + align - 1) / align;
  const std::size_t lo = blocks * part / parts, hi = blocks * (part + 1) / parts;
  begin = std::min(n, lo * align);
  end = std::min(n, hi * align);
}

}  // namespace splitmask::backend::cpu

namespace splitmask::detail {

template <>
struct evaluate_backend<device::cpu> {
  template <class T, class Extents, class Node>
  static void run(T* dst, const Extents& shape, const Node& node) {
    constexpr std::size_t length = Extents::row_length;
    // A flat node runs over elements; others over rows.
    const std::size_t work = Node::is_flat ? shape.size() : shape.rows();
    const auto loop = [&](std::size_t begin, std::size_t end) {
      if constexpr (Node::is_flat) {
        backend::cpu::flat_loop(dst, node, begin, end);
      } else {
        backend::cpu::row_loop<length>(dst, node, begin, end);
      }
    };
#if defined(_OPENMP)
    if (backend::cpu::run_parallel(shape.size())) {
      const std::size_t align = Node::is_flat ? std::max<std::size_t>(1, 64 / sizeof(T)) : 1;
      SPLITMASK_OMP(parallel) {
        std::size_t begin = 0, end = 0;
        backend::cpu::share(work, static_cast<std::size_t>(omp_get_thread_num()),
                            static_cast<std::size_t>(omp_get_num_threads()), align, begin, end);
        loop(begin, end);
      }
      return;
    }
#endif
    loop(0, work);
  }
};

}  // namespace splitmask::detail
