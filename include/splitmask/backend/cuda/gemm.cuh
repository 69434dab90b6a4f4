// The CUDA GEMM behind matmul: cuBLAS in fp32 or fp64. Float products follow the thread's
// matmul_precision: exact fp32 (the default), TF32, or bf16 operands (rounded on the fly into
// the context's scratch) with fp32 accumulation and result.
// cuBLAS is column-major; a row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T,
// so the operands are passed swapped and nothing is transposed in memory.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <climits>
#include <cstddef>
#include <type_traits>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/backend/cuda/evaluate.cuh"
#include "splitmask/core/device.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/core/backend.hpp"

namespace splitmask::backend::cuda {

// A template, so that every translation unit may include it (its host stub is then inline).
template <class F>
__global__ void __launch_bounds__(threads_per_block)
    round_to_bf16(__nv_bfloat16* out, const F* in, std::size_t n) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    out[i] = __float2bfloat16_rn(in[i]);
}

/// The n floats of `in` rounded to bf16 into `out` (device memory), on the thread's stream.
inline void to_bf16(__nv_bfloat16* out, const float* in, std::size_t n, const context& ctx) {
  if (n == 0) return;
  round_to_bf16<float>
      <<<grid_for(n, threads_per_block, ctx), threads_per_block, 0, ctx.stream()>>>(out, in, n);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

}  // namespace splitmask::backend::cuda

namespace splitmask::detail {

template <>
struct gemm_backend<device::cuda> {
  template <class T>
  static void run(const gemm_args<T>& g) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "splitmask::matmul on CUDA: float or double");
    auto& ctx = backend::cuda::context::current();
    const auto ctx_handle = ctx.blas();
    const int m = to_int(g.m), n = to_int(g.n), k = to_int(g.k), batch = to_int(g.batch);
    const cublasOperation_t op_a = g.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_b = g.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int lda = g.transpose_a ? m : k;  // row length of A as stored
    const int ldb = g.transpose_b ? k : n;
    const long long sa = static_cast<long long>(g.m) * g.k;
    const long long sb = static_cast<long long>(g.k) * g.n;
    const long long sc = static_cast<long long>(g.m) * g.n;
    if constexpr (std::is_same_v<T, float>) {
      if (ctx.precision() == backend::cuda::matmul_precision::bf16) {
        // Both operands rounded into one scratch allocation (A's then B's elements), in stream
        // order with the product that reads them.
        const std::size_t a_size = g.batch * g.m * g.k, b_size = g.batch * g.k * g.n;
        const std::size_t b_offset =
            (a_size + 7) / 8 * 8;  // B 16-byte aligned, as tensor cores like
        auto* a16 =
            static_cast<__nv_bfloat16*>(ctx.scratch((b_offset + b_size) * sizeof(__nv_bfloat16)));
        __nv_bfloat16* b16 = a16 + b_offset;
        backend::cuda::to_bf16(a16, g.a, a_size, ctx);
        backend::cuda::to_bf16(b16, g.b, b_size, ctx);
        SPLITMASK_CUBLAS_CHECK(
            cublasGemmStridedBatchedEx(ctx_handle, op_b, op_a, n, m, k, &g.alpha, b16, CUDA_R_16BF,
                                       ldb, sb, a16, CUDA_R_16BF, lda, sa, &g.beta, g.c, CUDA_R_32F,
                                       n, sc, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        return;
      }
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
