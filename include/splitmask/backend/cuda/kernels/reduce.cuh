// Warp and block reductions shared by the CUDA kernels. Every lane (thread) of the warp (block)
// takes part and every one ends with the result.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/backend/cuda/evaluate.cuh"
#include "splitmask/core/math.hpp"

namespace splitmask::backend::cuda::kernels {

inline constexpr unsigned warp_lanes = 32;

template <class T>
__device__ T warp_sum(T v) {
  for (unsigned offset = warp_lanes / 2; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <class T>
__device__ T warp_max(T v) {
  for (unsigned offset = warp_lanes / 2; offset > 0; offset /= 2)
    v = math::max(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

/// The sum over the block (blockDim.x a multiple of 32, at most 1024); `shared` holds 32 T.
/// Ends with a barrier, so `shared` may be reused at once.
template <class T>
__device__ T block_sum(T v, T* shared) {
  const unsigned lane = threadIdx.x % warp_lanes, warp = threadIdx.x / warp_lanes;
  const unsigned warps = blockDim.x / warp_lanes;
  v = warp_sum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : T(0);
  v = warp_sum(v);
  __syncthreads();
  return v;
}

/// The maximum over the block (NaN wins, as in math::max); see block_sum.
template <class T>
__device__ T block_max(T v, T* shared) {
  const unsigned lane = threadIdx.x % warp_lanes, warp = threadIdx.x / warp_lanes;
  const unsigned warps = blockDim.x / warp_lanes;
  v = warp_max(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : -math::infinity<T>();
  v = warp_max(v);
  __syncthreads();
  return v;
}

// One block: *total = the sum of values, each thread adding a fixed stride in order, then the
// block's fixed tree, so the result does not depend on scheduling. A template (V = double) so
// that the header defines no plain symbol.
template <class V>
__global__ void __launch_bounds__(threads_per_block)
    sum_in_order_kernel(V* total, const V* __restrict__ values, std::size_t count) {
  __shared__ V shared[warp_lanes];
  V sum = 0;
  for (std::size_t i = threadIdx.x; i < count; i += blockDim.x) sum += values[i];
  sum = block_sum(sum, shared);
  if (threadIdx.x == 0) *total = sum;
}

/// The sum of `count` device doubles (a loss's or a norm's partial sums) on the host, the same
/// bits every run; `slot` is one device double to hold it. Waits for the stream.
inline double sum_to_host(const double* values, std::size_t count, double* slot) {
  auto& ctx = context::current();
  sum_in_order_kernel<double><<<1, threads_per_block, 0, ctx.stream()>>>(slot, values, count);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
  double result = 0;
  SPLITMASK_CUDA_CHECK(
      cudaMemcpyAsync(&result, slot, sizeof result, cudaMemcpyDeviceToHost, ctx.stream()));
  ctx.synchronize();
  return result;
}

}  // namespace splitmask::backend::cuda::kernels
