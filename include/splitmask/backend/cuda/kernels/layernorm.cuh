// LayerNorm over rows of D (ops/layernorm.hpp's semantics) on CUDA. A warp per row with the row
// in registers: D is known at compile time, so lane l keeps columns l, l + 32, ... and the row is
// read from memory once; the row's sums are warp shuffles, with no shared memory or barriers.
// Backward's dgamma and dbeta are deterministic column sums (column_sums.cuh) taken before dx is
// written, so dx may be dy itself: each lane then writes only the columns it has read.
//
//   x, y, dx, dy (rows, D)   gamma, beta, dgamma, dbeta (D)   mean, rstd (rows)
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/backend/cuda/evaluate.cuh"
#include "splitmask/backend/cuda/kernels/column_sums.cuh"
#include "splitmask/backend/cuda/kernels/reduce.cuh"
#include "splitmask/core/math.hpp"

namespace splitmask::backend::cuda::kernels {

/// Columns a lane holds of a row of D.
template <std::size_t D>
inline constexpr std::size_t layernorm_columns_per_lane = (D + warp_lanes - 1) / warp_lanes;

inline constexpr unsigned layernorm_rows_per_block = threads_per_block / warp_lanes;

// A warp per row (rows beyond the grid by a loop; r is the same for the whole warp, so every
// lane takes part in each shuffle). y may be x (each lane writes the columns it read).
template <class T, std::size_t D>
__global__ void __launch_bounds__(threads_per_block)
    layernorm_forward_kernel(T* y, T* __restrict__ mean, T* __restrict__ rstd, const T* x,
                             const T* __restrict__ gamma, const T* __restrict__ beta,
                             std::size_t rows, T eps) {
  constexpr std::size_t per_lane = layernorm_columns_per_lane<D>;
  const unsigned lane = threadIdx.x % warp_lanes;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * layernorm_rows_per_block;
  for (std::size_t r = static_cast<std::size_t>(blockIdx.x) * layernorm_rows_per_block +
                       threadIdx.x / warp_lanes;
       r < rows; r += stride) {
    const T* in = x + r * D;
    T v[per_lane];
    T sum = 0;
#pragma unroll
    for (std::size_t i = 0; i < per_lane; ++i) {
      const std::size_t c = lane + i * warp_lanes;
      v[i] = c < D ? in[c] : T(0);
      sum += v[i];
    }
    const T mu = warp_sum(sum) / T(D);
    T sq = 0;
#pragma unroll
    for (std::size_t i = 0; i < per_lane; ++i) {
      const std::size_t c = lane + i * warp_lanes;
      if (c < D) sq += (v[i] - mu) * (v[i] - mu);
    }
    const T rs = T(1) / math::sqrt(warp_sum(sq) / T(D) + eps);
    T* out = y + r * D;
#pragma unroll
    for (std::size_t i = 0; i < per_lane; ++i) {
      const std::size_t c = lane + i * warp_lanes;
      if (c < D) out[c] = (v[i] - mu) * rs * gamma[c] + beta[c];
    }
    if (lane == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
  }
}

/// dgamma's and dbeta's terms of element (r, c): dy * xhat and dy.
template <class T, std::size_t D>
struct layernorm_param_terms {
  using value_type = T;
  static constexpr std::size_t count = 2;
  const T* dy;
  const T* x;
  const T* mean;
  const T* rstd;
  __device__ void operator()(std::size_t r, std::size_t c, T (&terms)[count]) const {
    const T d = dy[r * D + c];
    terms[0] = d * (x[r * D + c] - mean[r]) * rstd[r];
    terms[1] = d;
  }
};

// dx = rstd * (g dy - mean(g dy) - xhat * mean(g dy xhat)); a warp per row, as forward. dx may
// be dy: a lane reads all its columns of dy into registers before the shuffles and writes only
// those columns afterwards.
template <class T, std::size_t D>
__global__ void __launch_bounds__(threads_per_block)
    layernorm_backward_input_kernel(T* dx, const T* dy, const T* x, const T* __restrict__ mean,
                                    const T* __restrict__ rstd, const T* __restrict__ gamma,
                                    std::size_t rows, bool accumulate) {
  constexpr std::size_t per_lane = layernorm_columns_per_lane<D>;
  const unsigned lane = threadIdx.x % warp_lanes;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * layernorm_rows_per_block;
  for (std::size_t r = static_cast<std::size_t>(blockIdx.x) * layernorm_rows_per_block +
                       threadIdx.x / warp_lanes;
       r < rows; r += stride) {
    const T mu = mean[r], rs = rstd[r];
    T g_dy[per_lane], centred[per_lane];
    T s1 = 0, s2 = 0;
#pragma unroll
    for (std::size_t i = 0; i < per_lane; ++i) {
      const std::size_t c = lane + i * warp_lanes;
      g_dy[i] = T(0);
      centred[i] = T(0);
      if (c < D) {
        g_dy[i] = gamma[c] * dy[r * D + c];
        centred[i] = x[r * D + c] - mu;
        s1 += g_dy[i];
        s2 += g_dy[i] * centred[i] * rs;
      }
    }
    s1 = warp_sum(s1) / T(D);
    s2 = warp_sum(s2) / T(D);
    T* out = dx + r * D;
#pragma unroll
    for (std::size_t i = 0; i < per_lane; ++i) {
      const std::size_t c = lane + i * warp_lanes;
      if (c < D) {
        const T v = rs * (g_dy[i] - s1 - centred[i] * rs * s2);
        out[c] = accumulate ? out[c] + v : v;
      }
    }
  }
}

/// y = (x - mean) * rstd * gamma + beta per row, rstd = 1 / sqrt(biased variance + eps); mean
/// and rstd receive each row's statistics.
template <class T, std::size_t D>
void layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* gamma, const T* beta,
                       std::size_t rows, double eps) {
  static_assert(D > 0, "splitmask: layernorm_forward needs D > 0");
  if (rows == 0) return;
  auto& ctx = context::current();
  layernorm_forward_kernel<T, D>
      <<<grid_for(rows, layernorm_rows_per_block, ctx), threads_per_block, 0, ctx.stream()>>>(
          y, mean, rstd, x, gamma, beta, rows, T(eps));
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

/// dgamma += sum over rows of dy * xhat, dbeta += sum over rows of dy (deterministic); then dx
/// written, or added to when accumulate. dx may be dy (in place). Uses the context's scratch.
template <class T, std::size_t D>
void layernorm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean,
                        const T* rstd, const T* gamma, std::size_t rows, bool accumulate) {
  static_assert(D > 0, "splitmask: layernorm_backward needs D > 0");
  if (rows == 0) return;
  auto& ctx = context::current();
  // First, while dy is intact: the kernels below run after these on the same stream.
  add_column_term_sums(column_sum_targets<T, 2>{{dgamma, dbeta}},
                       layernorm_param_terms<T, D>{dy, x, mean, rstd}, rows, D);
  layernorm_backward_input_kernel<T, D>
      <<<grid_for(rows, layernorm_rows_per_block, ctx), threads_per_block, 0, ctx.stream()>>>(
          dx, dy, x, mean, rstd, gamma, rows, accumulate);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

}  // namespace splitmask::backend::cuda::kernels
