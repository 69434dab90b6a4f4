// threads: the example programs' OpenMP pool: --threads, and the passive wait they run with.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#include <unistd.h>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

namespace splitmask::examples {

/// Restarts the program (same arguments) with OMP_WAIT_POLICY=passive unless the environment
/// already sets a wait policy. OpenMP reads it only when it loads, before main, so the program
/// must start again to change it. Idle OpenMP threads that spin take the core the data
/// loader's thread needs: passive waiting measured 1.7x faster on 2 cores (docs/performance.md).
/// Call it first in main. Returns only when no restart is needed (or possible).
inline void restart_with_passive_wait([[maybe_unused]] char** argv) {
#if defined(__linux__) && defined(_OPENMP)
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (::setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  ::unsetenv("OMP_WAIT_POLICY");  // the restart failed: go on as started
#endif
}

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

/// Whether the program runs an OpenMP pool (else one thread).
#ifdef _OPENMP
inline constexpr bool has_openmp = true;
#else
inline constexpr bool has_openmp = false;
#endif

/// The logical CPUs this process may run on: its CPU affinity, which mpirun's binding (one core
/// per process by default for up to 2 processes), taskset or a container narrows.
inline int cpus_allowed() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

/// The machine's logical CPUs, whatever this process may use.
inline int cpus_of_machine() {
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace splitmask::examples
