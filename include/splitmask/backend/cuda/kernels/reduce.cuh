// Warp and block reductions shared by the CUDA kernels. Every lane (thread) of the warp (block)
// takes part and every one ends with the result.
#pragma once

#include <cuda_runtime.h>

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

}  // namespace splitmask::backend::cuda::kernels
