// CUDA kernels for patch_tokenizer::assign (tokenizer/patch_tokenizer.hpp): the per-channel
// standardisation of patch rows and the argmax of each row of similarity scores. Both give the
// CPU's bits: the standardisation does the same float operations, with the reciprocal of the std
// computed on the host as the CPU does, and the argmax applies the CPU's rule exactly.
//
//   patches, out (rows, L), L = C·P·P   scores (rows, K)   ids (rows) int32
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cub/warp/warp_reduce.cuh>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/backend/cuda/evaluate.cuh"
#include "splitmask/core/config.hpp"

namespace splitmask::backend::cuda::kernels {

/// The per-channel statistics, passed to the kernel by value (kernel parameter memory).
template <std::size_t C>
struct channel_standardisation {
  float mean[C];
  float inv_std[C];
};

// One thread per element; each reads its element before writing it, so out may be patches.
template <std::size_t C, std::size_t P>
__global__ void __launch_bounds__(threads_per_block)
    standardise_patches_kernel(float* out, const float* patches, std::size_t size,
                               const channel_standardisation<C> stats) {
  constexpr std::size_t L = C * P * P;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t e = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < size;
       e += stride) {
    const std::size_t c = (e % L) / (P * P);
    out[e] = (patches[e] - stats.mean[c]) * stats.inv_std[c];
  }
}

/// A candidate of row_argmax: the first index of the largest non-NaN value seen (index K: none).
struct argmax_candidate {
  float value;
  unsigned index;
};

/// Lane `lane` of `lanes` scans k = lane, lane + lanes, ... in order and keeps the first index
/// of its largest non-NaN value (strictly larger replaces, so ties keep the lower index).
template <std::size_t K>
SPLITMASK_HD inline argmax_candidate argmax_scan(const float* s, unsigned lane, unsigned lanes) {
  constexpr unsigned none = static_cast<unsigned>(K);
  argmax_candidate best{0.0f, none};
#if defined(__CUDA_ARCH__)
#pragma unroll 4  // loads in flight (device pass only: the host compiler does not know it)
#endif
  for (std::size_t k = lane; k < K; k += lanes) {
    const float v = s[k];
    if (v == v && (best.index == none || v > best.value)) best = {v, static_cast<unsigned>(k)};
  }
  return best;
}

/// The better of two candidates: one that exists, then the larger value, then the lower index.
/// Commutative and associative, so every reduction order gives the same candidate.
template <std::size_t K>
SPLITMASK_HD inline argmax_candidate argmax_better(argmax_candidate a, argmax_candidate b) {
  constexpr unsigned none = static_cast<unsigned>(K);
  if (b.index == none) return a;
  if (a.index == none || b.value > a.value || (b.value == a.value && b.index < a.index)) return b;
  return a;
}

/// argmax_better as the functor cub::WarpReduce takes.
template <std::size_t K>
struct argmax_better_op {
  __device__ argmax_candidate operator()(argmax_candidate a, argmax_candidate b) const {
    return argmax_better<K>(a, b);
  }
};

/// The CPU's answer from the row's best candidate: s[0] NaN is never replaced (0); no non-NaN
/// value at all also gives 0.
template <std::size_t K>
SPLITMASK_HD inline std::int32_t argmax_result(float first, argmax_candidate best) {
  return (first != first || best.index == static_cast<unsigned>(K))
             ? 0
             : static_cast<std::int32_t>(best.index);
}

// A warp per row: argmax_scan per lane, cub::WarpReduce through argmax_better (a selection by
// a total order, so any reduction tree picks the same candidate), and lane 0 writes
// argmax_result. The CPU's rule (best = 0; best = k when s[k] > s[best]) is the first index of
// the largest non-NaN value, except that a NaN s[0] is never replaced.
template <std::size_t K>
__global__ void __launch_bounds__(threads_per_block)
    row_argmax_kernel(std::int32_t* __restrict__ ids, const float* __restrict__ scores,
                      std::size_t rows) {
  constexpr unsigned warps = threads_per_block / warp_size;
  using warp_reduce = cub::WarpReduce<argmax_candidate>;
  __shared__ typename warp_reduce::TempStorage storage[warps];
  const unsigned lane = threadIdx.x % warp_size, warp = threadIdx.x / warp_size;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * warps;
  // r is the same for the whole warp, so every lane takes part in each row's reduction.
  for (std::size_t r = static_cast<std::size_t>(blockIdx.x) * warps + warp; r < rows;
       r += stride) {
    const float* s = scores + r * K;
    const argmax_candidate best = warp_reduce(storage[warp]).Reduce(
        argmax_scan<K>(s, lane, warp_size), argmax_better_op<K>{});  // lane 0's is the row's
    if (lane == 0) ids[r] = argmax_result<K>(s[0], best);
    __syncwarp();  // the next row reuses the warp's storage
  }
}

/// out[r·L + k] = (patches[r·L + k] - mean[c]) · (1 / std_dev[c]), c = k / (P·P), L = C·P·P:
/// patch_tokenizer's standardise. `out` may be `patches` (in place) but not overlap it otherwise.
template <std::size_t C, std::size_t P>
void standardise_patches(float* out, const float* patches, std::size_t rows,
                         const std::array<float, C>& mean, const std::array<float, C>& std_dev) {
  static_assert(C > 0 && P > 0, "splitmask: standardise_patches needs C > 0 and P > 0");
  const std::size_t size = rows * C * P * P;
  if (size == 0) return;
  channel_standardisation<C> stats{};
  for (std::size_t c = 0; c < C; ++c) {
    stats.mean[c] = mean[c];
    stats.inv_std[c] = 1.0f / std_dev[c];  // the CPU's float reciprocal
  }
  auto& ctx = context::current();
  standardise_patches_kernel<C, P><<<grid_for(size, threads_per_block, ctx), threads_per_block,
                                     0, ctx.stream()>>>(out, patches, size, stats);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

/// ids[r] = the CPU's argmax of scores row r (rows, K): best = 0, then best = k for each
/// k = 1..K-1 with s[k] > s[best]. That is 0 when s[0] is NaN, else the lowest index of the
/// largest non-NaN value.
template <std::size_t K>
void row_argmax(std::int32_t* ids, const float* scores, std::size_t rows) {
  static_assert(K > 0 && K < 0x7fffffff, "splitmask: row_argmax needs 0 < K < 2^31 - 1");
  if (rows == 0) return;
  auto& ctx = context::current();
  row_argmax_kernel<K><<<grid_for(rows, threads_per_block / warp_size, ctx), threads_per_block, 0,
                         ctx.stream()>>>(ids, scores, rows);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

}  // namespace splitmask::backend::cuda::kernels
