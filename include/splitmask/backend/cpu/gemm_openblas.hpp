// The OpenBLAS CPU GEMM (built with SPLITMASK_HAS_OPENBLAS, which the CMake target
// splitmask::openblas sets), and the check that OpenBLAS runs kernels made for this CPU: Debian's
// OpenBLAS 0.3.21 picks its SSE3 "Prescott" kernels on CPU models it does not know, 3 to 6 times
// slower than its AVX2 or AVX-512 ones (docs/performance.md).
#pragma once

#include <string>
#include <type_traits>

#include "splitmask/core/backend.hpp"

#if defined(SPLITMASK_HAS_OPENBLAS)
#include <cblas.h>
#endif

namespace splitmask::backend::cpu {

/// Whether OpenBLAS's core `core` (openblas_get_corename()) lacks the vector units of a CPU
/// with AVX2 (`cpu_has_avx2`): the SSE-era cores it falls back to on models it does not know.
inline bool openblas_core_is_generic(const std::string& core, bool cpu_has_avx2) {
  // OpenBLAS 0.3.21's x86-64 cores with AVX2 kernels (Haswell and later, Zen and later).
  static const char* const avx2_cores[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake",
                                           "SapphireRapids"};
  if (!cpu_has_avx2) return false;  // an older CPU: whatever OpenBLAS picked fits it
  for (const char* c : avx2_cores)
    if (core == c) return false;
  return true;
}

#if defined(SPLITMASK_HAS_OPENBLAS)
/// The kernels OpenBLAS runs here (as OPENBLAS_CORETYPE, or its detection, chose them).
inline std::string openblas_core() { return openblas_get_corename(); }

/// One product of `g` at the given pointers, by OpenBLAS (k > 0: matmul handles k == 0;
/// extents within int: the caller checks).
template <class T>
void openblas_gemm(const gemm_args<T>& g, const T* a, const T* b, T* c) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "splitmask::matmul on the CPU: float or double");
  const int m = static_cast<int>(g.m), n = static_cast<int>(g.n), k = static_cast<int>(g.k);
  const CBLAS_TRANSPOSE ta = g.transpose_a ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = g.transpose_b ? CblasTrans : CblasNoTrans;
  const int lda = g.transpose_a ? m : k;  // row length of A as stored
  const int ldb = g.transpose_b ? k : n;
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, g.alpha, a, lda, b, ldb, g.beta, c, n);
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, g.alpha, a, lda, b, ldb, g.beta, c, n);
  }
}
#endif

}  // namespace splitmask::backend::cpu
