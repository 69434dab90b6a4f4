// CUDA kernel for split_sampler::sample (train/split_sampler.hpp): each image's random split of
// its N positions into A (N_A positions) and B (the rest), each in ascending order, with exactly
// the CPU's bits. A block per image: its threads draw the Fisher-Yates targets in parallel (each
// draw is a pure function of the image's number and the step), one thread applies the swaps in
// order in shared memory, the threads mark which positions landed in A, and a block-wide prefix
// sum of the marks (cub::BlockScan) gives each position its place in its subset, so the threads
// write both subsets in ascending order (the output of sorting each subset). The scan adds
// integers: any order of its additions gives the same places.
//
//   index_a (B, N_A) int32   index_b (B, N - N_A) int32
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cub/block/block_scan.cuh>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/backend/cuda/evaluate.cuh"
#include "splitmask/core/config.hpp"
#include "splitmask/core/rng.hpp"

namespace splitmask::backend::cuda::kernels {

inline constexpr unsigned split_threads = 128;

namespace detail {
/// Step 1 (parallel): order = 0..N-1 and target[i] = the Fisher-Yates partner of step i
/// (uniform in [0, i]), drawn as the CPU does: r = bits(base + i).v[0], j = (r·(i+1)) >> 32.
template <std::size_t N>
SPLITMASK_HD void split_draw(std::int32_t* order, std::int32_t* target, const counter_rng& rng,
                             std::uint64_t base, unsigned thread, unsigned threads) {
  for (std::size_t i = thread; i < N; i += threads) {
    order[i] = static_cast<std::int32_t>(i);
    const std::uint64_t r = rng.bits(base + i).v[0];
    target[i] = static_cast<std::int32_t>((r * (i + 1)) >> 32);  // target[0] = 0, unused
  }
}

/// Step 2 (one thread): the swaps order[i] <-> order[target[i]] for i = N-1 down to 1.
template <std::size_t N>
SPLITMASK_HD void split_shuffle(std::int32_t* order, const std::int32_t* target) {
  for (std::size_t i = N - 1; i > 0; --i) {
    const std::size_t j = static_cast<std::size_t>(target[i]);
    const std::int32_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
}

/// Step 3 (parallel): in_a[p] = whether position p is among the first N_A entries of order.
/// order is a permutation, so each in_a[p] is written once.
template <std::size_t N, std::size_t N_A>
SPLITMASK_HD void split_mark(unsigned char* in_a, const std::int32_t* order, unsigned thread,
                             unsigned threads) {
  for (std::size_t k = thread; k < N; k += threads)
    in_a[static_cast<std::size_t>(order[k])] = k < N_A ? 1 : 0;
}

}  // namespace detail

// A block of split_threads threads per image (BlockScan needs exactly that many); images beyond
// gridDim.x by a loop (the same for the whole block, so every thread reaches every barrier).
template <std::size_t N, std::size_t N_A>
__global__ void __launch_bounds__(split_threads)
    sample_split_kernel(std::int32_t* __restrict__ index_a, std::int32_t* __restrict__ index_b,
                        std::size_t batch, const counter_rng rng, std::uint64_t first_image) {
  constexpr std::size_t N_B = N - N_A;
  constexpr unsigned items = (N + split_threads - 1) / split_threads;  // positions per thread
  using scan = cub::BlockScan<int, split_threads>;
  __shared__ typename scan::TempStorage scan_storage;
  __shared__ std::int32_t order[N];
  __shared__ std::int32_t target[N];
  __shared__ unsigned char in_a[N];
  for (std::size_t b = blockIdx.x; b < batch; b += gridDim.x) {
    const std::uint64_t base = (first_image + b) * N;
    detail::split_draw<N>(order, target, rng, base, threadIdx.x, blockDim.x);
    __syncthreads();
    if (threadIdx.x == 0) detail::split_shuffle<N>(order, target);
    __syncthreads();
    detail::split_mark<N, N_A>(in_a, order, threadIdx.x, blockDim.x);
    __syncthreads();
    // Step 4: thread t holds positions t·items .. t·items + items - 1; `before` counts the
    // positions of A below each, so A's k-th smallest goes to index_a[k], B's to index_b[p - k].
    int mark[items], before[items];
    for (unsigned i = 0; i < items; ++i) {
      const std::size_t p = threadIdx.x * items + i;
      mark[i] = p < N ? in_a[p] : 0;
    }
    scan(scan_storage).ExclusiveSum(mark, before);
    for (unsigned i = 0; i < items; ++i) {
      const std::size_t p = threadIdx.x * items + i;
      if (p >= N) break;
      if (mark[i])
        index_a[b * N_A + static_cast<std::size_t>(before[i])] = static_cast<std::int32_t>(p);
      else
        index_b[b * N_B + p - static_cast<std::size_t>(before[i])] = static_cast<std::int32_t>(p);
    }
    __syncthreads();  // the next image's steps overwrite the shared arrays and the scan's
  }
}

/// The splits of the images numbered first_image, first_image + 1, ... in the run, bit for bit
/// split_sampler's with the same seed: `stream` is the sampler's RNG stream
/// (split_sampler<Config>::stream). index_a (B, N_A) and index_b (B, N - N_A), each ascending.
template <std::size_t N, std::size_t N_A>
void sample_split(std::int32_t* index_a, std::int32_t* index_b, std::size_t batch,
                  std::uint64_t seed, std::uint64_t stream, std::uint64_t first_image) {
  static_assert(N > 0 && N <= 1024 && N_A <= N,
                "splitmask: sample_split needs 0 < N <= 1024 and N_A <= N");
  if (batch == 0) return;
  auto& ctx = context::current();
  const counter_rng rng(seed, stream);
  sample_split_kernel<N, N_A><<<grid_for(batch, 1, ctx), split_threads, 0, ctx.stream()>>>(
      index_a, index_b, batch, rng, first_image);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

}  // namespace splitmask::backend::cuda::kernels
