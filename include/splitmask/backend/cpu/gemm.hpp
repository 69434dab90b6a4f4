// The CPU GEMM behind matmul: OpenBLAS's sgemm/dgemm when the build defines
// SPLITMASK_USE_OPENBLAS (CMake does when OpenBLAS's OpenMP build is installed), else Eigen's
// blocked product on row-major maps of our memory. Both run large products on the OpenMP pool;
// batches of small products (attention heads) run one product per thread instead, as neither
// nests parallel regions.
#pragma once

#include <Eigen/Core>
#include <climits>
#include <cstddef>
#include <initializer_list>
#include <string>
#include <type_traits>

#if defined(SPLITMASK_USE_OPENBLAS)
#include <cblas.h>
#endif

#include "splitmask/backend/cpu/evaluate.hpp"
#include "splitmask/core/config.hpp"
#include "splitmask/core/device.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/ops/matmul.hpp"

namespace splitmask::backend::cpu {

/// Products with fewer multiply-adds than this are not worth splitting across threads;
/// batches of them run in parallel over the batch.
inline constexpr std::size_t small_product = std::size_t{1} << 21;

template <class T>
using row_major_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class CM, class AM, class BM, class T>
void eigen_product(CM&& c, const AM& a, const BM& b, T alpha, T beta) {
  if (beta == T(0)) {
    c.noalias() = alpha * a * b;
  } else {
    if (beta != T(1)) c *= beta;
    c.noalias() += alpha * a * b;
  }
}

/// One product of `g` at the given pointers, by Eigen.
template <class T>
void eigen_gemm(const gemm_args<T>& g, const T* a, const T* b, T* c) {
  using M = row_major_matrix<T>;
  using I = Eigen::Index;
  const I m = I(g.m), n = I(g.n), k = I(g.k);
  const Eigen::Map<const M> A(a, g.transpose_a ? k : m, g.transpose_a ? m : k);
  const Eigen::Map<const M> B(b, g.transpose_b ? n : k, g.transpose_b ? k : n);
  Eigen::Map<M> C(c, m, n);
  if (!g.transpose_a && !g.transpose_b) eigen_product(C, A, B, g.alpha, g.beta);
  if (!g.transpose_a && g.transpose_b) eigen_product(C, A, B.transpose(), g.alpha, g.beta);
  if (g.transpose_a && !g.transpose_b) eigen_product(C, A.transpose(), B, g.alpha, g.beta);
  if (g.transpose_a && g.transpose_b)
    eigen_product(C, A.transpose(), B.transpose(), g.alpha, g.beta);
}

#if defined(SPLITMASK_USE_OPENBLAS)
/// One product of `g` at the given pointers, by OpenBLAS (k > 0: matmul handles k == 0;
/// extents within int: gemm_backend checks before any thread starts).
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

/// One product of `g` by this build's CPU GEMM.
template <class T>
void gemm(const gemm_args<T>& g, const T* a, const T* b, T* c) {
#if defined(SPLITMASK_USE_OPENBLAS)
  openblas_gemm(g, a, b, c);
#else
  eigen_gemm(g, a, b, c);
#endif
}

/// Runs the g.batch products of `g` with `product` (one of the functions above): in parallel
/// over the batch when each product is small, else one after the other, each on all threads.
template <class T, class Product>
void gemm_batched(const gemm_args<T>& g, Product product) {
  const std::size_t sa = g.m * g.k, sb = g.k * g.n, sc = g.m * g.n;
  const std::size_t madds = g.m * g.n * g.k;
  const bool parallel_batch = g.batch > 1 && madds < small_product && run_parallel(g.batch * madds);
  const std::ptrdiff_t batch = static_cast<std::ptrdiff_t>(g.batch);
  SPLITMASK_OMP(parallel for if (parallel_batch) schedule(static))
  for (std::ptrdiff_t i = 0; i < batch; ++i) {
    const std::size_t u = static_cast<std::size_t>(i);
    product(g, g.a + u * sa, g.b + u * sb, g.c + u * sc);
  }
}

/// The name of this build's CPU GEMM, for logs and benchmark labels.
inline const char* gemm_name() {
#if defined(SPLITMASK_USE_OPENBLAS)
  return "OpenBLAS";
#else
  return "Eigen";
#endif
}

}  // namespace splitmask::backend::cpu

namespace splitmask::detail {

template <>
struct gemm_backend<device::cpu> {
  template <class T>
  static void run(const gemm_args<T>& g) {
#if defined(SPLITMASK_USE_OPENBLAS)
    // Braced (and an array, not a braced list): nvcc's host pass miscompiles the terser form.
    const std::size_t sizes[] = {g.m, g.n, g.k};
    for (const std::size_t v : sizes) {
      if (v > static_cast<std::size_t>(INT_MAX))
        throw shape_error("splitmask::matmul: extent " + std::to_string(v) +
                          " exceeds OpenBLAS's int range");
    }
#endif
    backend::cpu::gemm_batched(g, backend::cpu::gemm<T>);
  }
};

}  // namespace splitmask::detail
