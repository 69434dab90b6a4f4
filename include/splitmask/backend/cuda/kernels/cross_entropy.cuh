// Softmax cross-entropy over rows of K logits on CUDA, ops/cross_entropy.hpp's semantics.
// Forward: a block per row (K up to thousands: the decoder's token ids) with the row in
// registers (K is known at compile time, thread t holding columns t, t + threads, ...), block
// max and block sum for a stable log-sum-exp; the rows' losses go to scratch in double and one
// block adds them in a fixed order, so the mean is the same bits on every run.
// Backward: a thread per element rebuilds the probability from the saved log-sum-exp.
//
// A target outside [0, K) raises the context's error counter (once per row) and that row adds
// nothing (forward's loss, backward's -g); forward reports the count before it returns.
//
//   logits, d_logits (rows, K)   targets (rows) int32   lse (rows)
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/backend/cuda/evaluate.cuh"
#include "splitmask/backend/cuda/kernels/reduce.cuh"
#include "splitmask/core/math.hpp"

namespace splitmask::backend::cuda::kernels {

/// Threads of a block per row: about 8 columns each, whole warps, at most 1024.
template <std::size_t K>
inline constexpr unsigned cross_entropy_threads =
    (K + 7) / 8 >= 1024
        ? 1024u
        : static_cast<unsigned>(((K + 7) / 8 + warp_lanes - 1) / warp_lanes * warp_lanes);

template <std::size_t K>
__device__ inline bool target_in_range(std::int32_t t) {
  return t >= 0 && static_cast<std::size_t>(t) < K;
}

// Block per row (rows beyond the grid by a loop, the same for the whole block, so every thread
// reaches each barrier of block_max and block_sum).
template <class T, std::size_t K>
__global__ void __launch_bounds__(cross_entropy_threads<K>)
    cross_entropy_forward_kernel(T* __restrict__ lse, double* __restrict__ row_losses,
                                 const T* __restrict__ logits,
                                 const std::int32_t* __restrict__ targets, std::size_t rows,
                                 unsigned* errors) {
  constexpr unsigned threads = cross_entropy_threads<K>;
  constexpr std::size_t per_thread = (K + threads - 1) / threads;
  __shared__ T reduce_buffer[warp_lanes];
  for (std::size_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = logits + r * K;
    T v[per_thread];
    T m = -math::infinity<T>();
#pragma unroll
    for (std::size_t i = 0; i < per_thread; ++i) {
      const std::size_t k = threadIdx.x + i * threads;
      v[i] = k < K ? row[k] : -math::infinity<T>();
      m = math::max(m, v[i]);
    }
    m = block_max(m, reduce_buffer);
    T sum = 0;
#pragma unroll
    for (std::size_t i = 0; i < per_thread; ++i)
      if (threadIdx.x + i * threads < K) sum += math::exp(v[i] - m);
    sum = block_sum(sum, reduce_buffer);
    if (threadIdx.x == 0) {
      const T l = m + math::log(sum);
      lse[r] = l;
      const std::int32_t t = targets[r];
      if (target_in_range<K>(t)) {
        row_losses[r] = static_cast<double>(l - row[t]);
      } else {
        atomicAdd(errors, 1u);
        row_losses[r] = 0.0;
      }
    }
  }
}

// A thread per element; d_logits may be logits (each element read, then written, by one thread).
template <class T, std::size_t K>
__global__ void __launch_bounds__(threads_per_block)
    cross_entropy_backward_kernel(T* d_logits, const T* logits, const T* __restrict__ lse,
                                  const std::int32_t* __restrict__ targets, std::size_t size, T g,
                                  unsigned* errors) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t e = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < size;
       e += stride) {
    const std::size_t r = e / K, k = e % K;
    const std::int32_t t = targets[r];
    T v = g * math::exp(logits[e] - lse[r]);
    if (target_in_range<K>(t)) {
      if (k == static_cast<std::size_t>(t)) v -= g;
    } else if (k == 0) {
      atomicAdd(errors, 1u);  // once per row
    }
    d_logits[e] = v;
  }
}

/// lse[r] = log sum exp(logits[r]); returns the mean over rows of lse[r] - logits[r][target[r]]
/// (0 for no rows). Waits for the device; throws shape_error when a target was out of range.
/// Uses the context's scratch.
template <class T, std::size_t K>
double cross_entropy_forward(T* lse, const T* logits, const std::int32_t* targets,
                             std::size_t rows) {
  static_assert(K > 0, "splitmask: cross_entropy_forward needs K > 0");
  if (rows == 0) return 0.0;
  auto& ctx = context::current();
  double* sum = static_cast<double*>(ctx.scratch((rows + 1) * sizeof(double)));
  double* row_losses = sum + 1;
  cross_entropy_forward_kernel<T, K>
      <<<grid_for(rows, 1, ctx), cross_entropy_threads<K>, 0, ctx.stream()>>>(
          lse, row_losses, logits, targets, rows, ctx.error_counter());
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
  const double total = sum_to_host(row_losses, rows, sum);
  ctx.check_errors("cross_entropy_forward");
  return total / static_cast<double>(rows);
}

/// d_logits[r][k] = g * exp(logits[r][k] - lse[r]), minus g at k = targets[r]. d_logits may be
/// logits (in place). An out-of-range target raises the error counter, checked later.
template <class T, std::size_t K>
void cross_entropy_backward(T* d_logits, const T* logits, const T* lse, const std::int32_t* targets,
                            std::size_t rows, T g) {
  static_assert(K > 0, "splitmask: cross_entropy_backward needs K > 0");
  const std::size_t size = rows * K;
  if (size == 0) return;
  auto& ctx = context::current();
  cross_entropy_backward_kernel<T, K>
      <<<grid_for(size, threads_per_block, ctx), threads_per_block, 0, ctx.stream()>>>(
          d_logits, logits, lse, targets, size, g, ctx.error_counter());
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

}  // namespace splitmask::backend::cuda::kernels
