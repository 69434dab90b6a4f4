// matmul tests shared by the CPU (Eigen) and CUDA (cuBLAS) suites: every transpose combination,
// odd and even sizes, batched products, alpha/beta, against a naive double-precision product.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "splitmask/core/extents.hpp"
#include "splitmask/core/rng.hpp"
#include "splitmask/ops/matmul.hpp"
#include "splitmask/tensor/expr/random.hpp"
#include "splitmask/tensor/tensor.hpp"
#include "support/compare.hpp"
#include "support/device_io.hpp"

namespace splitmask::testing {

/// Sizes of one product C (M, N) = op(A) (M, K) op(B) (K, N), and whether A and B are read
/// transposed (stored (K, M) and (N, K)). Batch > 0 makes it a batched (rank-3) product.
template <class T, std::size_t M, std::size_t N, std::size_t K, bool TA, bool TB,
          std::size_t Batch = 0>
struct gemm_config {
  using value_type = T;
  static constexpr std::size_t m = M, n = N, k = K, batch = Batch;
  static constexpr bool ta = TA, tb = TB;
};

// Naive op(A) op(B) in double, for `count` stacked products.
template <class T>
std::vector<double> naive_gemm(const T* a, const T* b, const T* c0, std::size_t count,
                               std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb,
                               double alpha, double beta) {
  std::vector<double> out(count * m * n);
  for (std::size_t q = 0; q < count; ++q)
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        double s = 0;
        for (std::size_t l = 0; l < k; ++l) {
          const double av = a[q * m * k + (ta ? l * m + i : i * k + l)];
          const double bv = b[q * k * n + (tb ? j * k + l : l * n + j)];
          s += av * bv;
        }
        const double prior = beta == 0 ? 0 : beta * c0[q * m * n + i * n + j];
        out[q * m * n + i * n + j] = alpha * s + prior;
      }
  return out;
}

template <class Device, class G>
void check_gemm(double alpha, double beta) {
  using T = typename G::value_type;
  constexpr std::size_t M = G::m, N = G::n, K = G::k;
  constexpr bool batched = G::batch > 0;
  constexpr std::size_t count = batched ? G::batch : 1;
  // Stored shapes; the leading extent is dynamic (the batch, or the first matrix extent).
  using EA = std::conditional_t<batched, extents<dynamic, (G::ta ? K : M), (G::ta ? M : K)>,
                                extents<dynamic, (G::ta ? M : K)>>;
  using EB = std::conditional_t<batched, extents<dynamic, (G::tb ? N : K), (G::tb ? K : N)>,
                                extents<dynamic, (G::tb ? K : N)>>;
  using EC = std::conditional_t<batched, extents<dynamic, M, N>, extents<dynamic, N>>;
  const std::size_t la = batched ? count : (G::ta ? K : M);
  const std::size_t lb = batched ? count : (G::tb ? N : K);
  const std::size_t lc = batched ? count : M;

  tensor<T, EA> a(la);
  tensor<T, EB> b(lb);
  tensor<T, EC> c(lc);
  a = uniform<T>(counter_rng(31), a.extents(), T(-1), T(1));
  b = uniform<T>(counter_rng(32), b.extents(), T(-1), T(1));
  c = uniform<T>(counter_rng(33), c.extents(), T(-1), T(1));
  if (beta == 0) c = std::numeric_limits<T>::quiet_NaN();  // beta == 0 must not read C
  const auto ref =
      naive_gemm(a.data(), b.data(), c.data(), count, M, N, K, G::ta, G::tb, alpha, beta);

  const auto da = on_device<Device>(a);
  const auto db = on_device<Device>(b);
  auto dc = on_device<Device>(c);
  if constexpr (G::ta && G::tb) matmul(dc, transposed(da), transposed(db), alpha, beta);
  if constexpr (G::ta && !G::tb) matmul(dc, transposed(da), db, alpha, beta);
  if constexpr (!G::ta && G::tb) matmul(dc, da, transposed(db), alpha, beta);
  if constexpr (!G::ta && !G::tb) matmul(dc, da, db, alpha, beta);

  // Sums of K products of numbers in [-1, 1]: rounding grows like sqrt(K) ulps of the terms.
  const double eps = std::numeric_limits<T>::epsilon();
  const double atol = 4 * eps * std::sqrt(double(K)) * (std::abs(alpha) + std::abs(beta) + 1);
  const auto cmp = compare(host_values(dc), ref, atol, 8 * eps);
  CHECK_MESSAGE(cmp.ok, "M " << M << " N " << N << " K " << K << (G::ta ? " A^T" : " A")
                             << (G::tb ? " B^T" : " B") << " batch " << G::batch << " alpha "
                             << alpha << " beta " << beta << ": " << cmp.describe());
}

template <class Device>
void check_gemm_shape_errors() {
  tensor<float, extents<dynamic, 4>, Device> a(3), b(5), c(3);
  // op(A) (3, 4) x B (5, 4): the inner extents 4 and 5 differ at run time.
  CHECK_THROWS_AS(matmul(c, a, b), shape_error);
  tensor<float, extents<dynamic, 3, 4>, Device> x(2), y(3);
  tensor<float, extents<dynamic, 3, 3>, Device> z(2);
  CHECK_THROWS_AS(matmul(z, x, transposed(y)), shape_error);  // 2 and 3 matrices
  // C may not share memory with an operand: the product would read what it has overwritten.
  tensor<float, extents<dynamic, 4>, Device> s(4), w(4);
  CHECK_THROWS_AS(matmul(s, s, w), shape_error);
  CHECK_THROWS_AS(matmul(s, w, transposed(s), 0.5f, 1), shape_error);  // alpha, beta of any type
  CHECK_THROWS_AS(matmul(s.slice(0, 2), s.slice(1, 2), transposed(w)),
                  shape_error);                                  // rows 0-1, 1-2
  matmul(s.slice(0, 2), s.slice(2, 2), transposed(w), 0.5f, 1);  // disjoint rows: fine
}

}  // namespace splitmask::testing

#define SPLITMASK_GEMM_CONFIGS_FOR(T)                                  \
  splitmask::testing::gemm_config<T, 7, 5, 3, false, false>,           \
      splitmask::testing::gemm_config<T, 7, 5, 3, false, true>,        \
      splitmask::testing::gemm_config<T, 7, 5, 3, true, false>,        \
      splitmask::testing::gemm_config<T, 7, 5, 3, true, true>,         \
      splitmask::testing::gemm_config<T, 64, 48, 32, false, true>,     \
      splitmask::testing::gemm_config<T, 129, 65, 257, false, false>,  \
      splitmask::testing::gemm_config<T, 129, 65, 257, false, true>,   \
      splitmask::testing::gemm_config<T, 129, 65, 257, true, false>,   \
      splitmask::testing::gemm_config<T, 129, 65, 257, true, true>,    \
      splitmask::testing::gemm_config<T, 17, 9, 13, false, true, 5>,   \
      splitmask::testing::gemm_config<T, 49, 64, 49, false, false, 6>, \
      splitmask::testing::gemm_config<T, 49, 49, 64, true, true, 3>

#define SPLITMASK_GEMM_TEST_CASES(Device, prefix)                          \
  TEST_CASE_TEMPLATE(prefix "matmul matches a double product (float)", G,  \
                     SPLITMASK_GEMM_CONFIGS_FOR(float)) {                  \
    splitmask::testing::check_gemm<Device, G>(1, 0);                       \
    splitmask::testing::check_gemm<Device, G>(-0.5, 1);                    \
    splitmask::testing::check_gemm<Device, G>(2, 0.25);                    \
  }                                                                        \
  TEST_CASE_TEMPLATE(prefix "matmul matches a double product (double)", G, \
                     SPLITMASK_GEMM_CONFIGS_FOR(double)) {                 \
    splitmask::testing::check_gemm<Device, G>(1, 0);                       \
    splitmask::testing::check_gemm<Device, G>(0.75, -1);                   \
  }                                                                        \
  TEST_CASE(prefix "matmul shape mismatches throw") {                      \
    splitmask::testing::check_gemm_shape_errors<Device>();                 \
  }
