// The CUDA GEMM behind matmul: cuBLAS in fp32 or fp64 (no TF32 unless asked for).
// cuBLAS is column-major; a row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T,
// so the operands are passed swapped and nothing is transposed in memory.
#pragma once

#include <cublas_v2.h>

#include <climits>
#include <cstddef>
#include <type_traits>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/core/device.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/ops/matmul.hpp"

namespace splitmask::detail {

template <>
struct gemm_backend<device::cuda> {
  template <class T>
  static void run(const gemm_args<T>& g) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "splitmask::matmul on CUDA: float or double");
    const auto ctx_handle = backend::cuda::context::current().blas();
    const int m = to_int(g.m), n = to_int(g.n), k = to_int(g.k), batch = to_int(g.batch);
    const cublasOperation_t op_a = g.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = g.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int lda = g.transpose_a ? m : k;  // row length of A as stored
    const int ldb = g.transpose_b ? k : n;
    const long long sa = static_cast<long long>(g.m) * g.k;
    const long long sb = static_cast<long long>(g.k) * g.n;
    const long long sc = static_cast<long long>(g.m) * g.n;
    if constexpr (std::is_same_v<T, float>) {
      SPLITMASK_CUBLAS_CHECK(cublasSgemmStridedBatched(ctx_handle, op_b, op_a, n, m, k, &g.alpha,
                                                       g.b, ldb, sb, g.a, lda, sa, &g.beta, g.c, n,
                                                       sc, batch));
    } else {
      SPLITMASK_CUBLAS_CHECK(cublasDgemmStridedBatched(ctx_handle, op_b, op_a, n, m, k, &g.alpha,
                                                       g.b, ldb, sb, g.a, lda, sa, &g.beta, g.c, n,
                                                       sc, batch));
    }
  }

 private:
  static int to_int(std::size_t v) {
    if (v > static_cast<std::size_t>(INT_MAX))
      throw shape_error("splitmask::matmul on CUDA: extent " + std::to_string(v) +
                        " exceeds cuBLAS's int range");
    return static_cast<int>(v);
  }
};

}  // namespace splitmask::detail
