// The Eigen CPU GEMM: Eigen's blocked product on row-major maps of our memory. Always
// available (Eigen is the library's one required dependency), the fallback of every choice,
// and the double-precision product of the backends that have none.
#pragma once

#include <Eigen/Core>

#include "splitmask/core/backend.hpp"

namespace splitmask::backend::cpu {

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

/// One product of `g` at the given pointers, by Eigen (on the OpenMP pool when large).
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

}  // namespace splitmask::backend::cpu
