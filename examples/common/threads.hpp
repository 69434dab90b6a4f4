// threads: the example programs' --threads option, on OpenMP's pool.
#pragma once

#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace splitmask::examples {

/// Uses `threads` OpenMP threads (0 or less: OpenMP's default, all cores). Throws
/// std::invalid_argument for more than one in a build without OpenMP.
inline void set_threads(int threads) {
  if (threads <= 0) return;
#ifdef _OPENMP
  omp_set_num_threads(threads);
#else
  if (threads > 1)
    throw std::invalid_argument("--threads " + std::to_string(threads) +
                                ": this build has no OpenMP, so it runs on one thread");
#endif
}

/// The threads a parallel region uses.
inline int threads_in_use() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

}  // namespace splitmask::examples
