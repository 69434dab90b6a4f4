// The CPU GEMM behind matmul: Eigen's blocked product on row-major maps of our memory.
// Eigen runs large products on the OpenMP pool; batches of small products (attention heads)
// run one product per thread instead, as Eigen does not nest parallel regions.
#pragma once

#include <Eigen/Core>
#include <cstddef>

#include "splitmask/backend/cpu/evaluate.hpp"
#include "splitmask/core/config.hpp"
#include "splitmask/core/device.hpp"
#include "splitmask/ops/matmul.hpp"

namespace splitmask::backend::cpu {

/// Products with fewer multiply-adds than this are not worth splitting across threads;
/// batches of them run in parallel over the batch.
inline constexpr std::size_t small_product = std::size_t{1} << 21;

template <class T>
using row_major_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class CM, class AM, class BM, class T>
void gemm_eigen(CM&& c, const AM& a, const BM& b, T alpha, T beta) {
  if (beta == T(0)) {
    c.noalias() = alpha * a * b;
  } else {
    if (beta != T(1)) c *= beta;
    c.noalias() += alpha * a * b;
  }
}

/// One product of gemm_args at the given pointers.
template <class T>
void gemm_one(const gemm_args<T>& g, const T* a, const T* b, T* c) {
  using M = row_major_matrix<T>;
  const Eigen::Map<const M> A(a, g.transpose_a ? g.k : g.m, g.transpose_a ? g.m : g.k);
  const Eigen::Map<const M> B(b, g.transpose_b ? g.n : g.k, g.transpose_b ? g.k : g.n);
  Eigen::Map<M> C(c, g.m, g.n);
  if (!g.transpose_a && !g.transpose_b) gemm_eigen(C, A, B, g.alpha, g.beta);
  if (!g.transpose_a && g.transpose_b) gemm_eigen(C, A, B.transpose(), g.alpha, g.beta);
  if (g.transpose_a && !g.transpose_b) gemm_eigen(C, A.transpose(), B, g.alpha, g.beta);
  if (g.transpose_a && g.transpose_b) gemm_eigen(C, A.transpose(), B.transpose(), g.alpha, g.beta);
}

}  // namespace splitmask::backend::cpu

namespace splitmask::detail {

template <>
struct gemm_backend<device::cpu> {
  template <class T>
  static void run(const gemm_args<T>& g) {
    const std::size_t sa = g.m * g.k, sb = g.k * g.n, sc = g.m * g.n;
    const std::size_t madds = g.m * g.n * g.k;
    const bool parallel_batch = g.batch > 1 && madds < backend::cpu::small_product &&
                                backend::cpu::run_parallel(g.batch * madds);
    const std::ptrdiff_t batch = static_cast<std::ptrdiff_t>(g.batch);
    SPLITMASK_OMP(parallel for if (parallel_batch) schedule(static))
    for (std::ptrdiff_t i = 0; i < batch; ++i) {
      const std::size_t u = static_cast<std::size_t>(i);
      backend::cpu::gemm_one(g, g.a + u * sa, g.b + u * sb, g.c + u * sc);
    }
  }
};

}  // namespace splitmask::detail
