// CUDA kernels for the token subsets and pooling of ops/tokens.hpp: gather and scatter of token
// rows by position, the token ids at a subset's positions, and the mean over an image's tokens.
// Same results as the CPU: scatter keeps the CPU's order when a position repeats within an image
// (each thread owns one column of one image and walks the subset in order, so no two threads
// ever write the same element), and the mean sums the tokens in order before dividing by n.
//
//   all (B, N, W)   subset (B, n, W)   index (B, n) int32 positions in [0, N)   pooled (B, W)
//
// A position outside [0, N) raises the context's error counter (once per subset row) and that
// row is skipped: gather leaves its subset row unwritten, scatter leaves `all` alone, gather_ids
// writes target 0. The host reports the count at its next context::check_errors.
// Inputs and outputs must not overlap.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/backend/cuda/evaluate.cuh"

namespace splitmask::backend::cuda::kernels {

namespace detail {
/// Threads of a block that covers up to Max of W columns, one column per thread: W rounded up
/// to whole warps, at most Max.
template <std::size_t W, unsigned Max>
inline constexpr unsigned column_threads =
    W >= Max ? Max : static_cast<unsigned>((W + warp_size - 1) / warp_size * warp_size);

/// Blocks along x that cover W columns.
template <std::size_t W, unsigned Max>
inline constexpr unsigned column_blocks =
    static_cast<unsigned>((W + column_threads<W, Max> - 1) / column_threads<W, Max>);

// Blocks of the kernels that give a thread one column of a whole image (scatter, the mean):
// narrow, so that a small batch still spreads over the multiprocessors. Gather's blocks take a
// column of one row each and can be wide.
inline constexpr unsigned image_columns = 64;
inline constexpr unsigned row_columns = threads_per_block;

/// gridDim.y is at most 65535; the kernels loop over the rows or images beyond it.
inline unsigned grid_y(std::size_t work) {
  return static_cast<unsigned>(std::min<std::size_t>(work, 65535));
}

template <std::size_t N>
__device__ inline bool position_ok(std::int32_t p) {
  return p >= 0 && static_cast<std::size_t>(p) < N;
}
}  // namespace detail

// Thread (x: column c, y: subset row r = b·n + i); rows beyond gridDim.y by a loop.
template <class T, std::size_t N, std::size_t n, std::size_t W>
__global__ void __launch_bounds__(detail::column_threads<W, detail::row_columns>)
    gather_tokens_kernel(T* __restrict__ subset, const T* __restrict__ all,
                         const std::int32_t* __restrict__ index, std::size_t rows,
                         unsigned* errors) {
  const std::size_t c = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (std::size_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const std::int32_t p = index[r];
    if (!detail::position_ok<N>(p)) {
      if (c == 0) atomicAdd(errors, 1u);  // one count per row
      continue;
    }
    if (c < W) subset[r * W + c] = all[((r / n) * N + static_cast<std::size_t>(p)) * W + c];
  }
}

// Thread (x: column c, y: image b); walks i = 0..n-1 in order, so the element all(b, p, c) is
// written by this thread alone and a repeated position ends as on the CPU (the last row wins,
// or every row is added).
template <class T, std::size_t N, std::size_t n, std::size_t W>
__global__ void __launch_bounds__(detail::column_threads<W, detail::image_columns>)
    scatter_tokens_kernel(T* __restrict__ all, const T* __restrict__ subset,
                          const std::int32_t* __restrict__ index, std::size_t batch,
                          bool accumulate, unsigned* errors) {
  const std::size_t c = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (std::size_t b = blockIdx.y; b < batch; b += gridDim.y) {
    for (std::size_t i = 0; i < n; ++i) {
      const std::int32_t p = index[b * n + i];
      if (!detail::position_ok<N>(p)) {
        if (c == 0) atomicAdd(errors, 1u);
        continue;
      }
      if (c >= W) continue;
      const T v = subset[(b * n + i) * W + c];
      T& dst = all[(b * N + static_cast<std::size_t>(p)) * W + c];
      dst = accumulate ? dst + v : v;
    }
  }
}

// One thread per target.
template <std::size_t N, std::size_t n>
__global__ void __launch_bounds__(threads_per_block)
    gather_ids_kernel(std::int32_t* __restrict__ targets, const std::int32_t* __restrict__ ids,
                      const std::int32_t* __restrict__ index, std::size_t count,
                      unsigned* errors) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t r = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       r < count; r += stride) {
    const std::int32_t p = index[r];
    if (!detail::position_ok<N>(p)) {
      atomicAdd(errors, 1u);
      targets[r] = 0;  // a valid id, so a later kernel indexing by it stays in bounds
      continue;
    }
    targets[r] = ids[(r / n) * N + static_cast<std::size_t>(p)];
  }
}

// Thread (x: column c, y: image b): the CPU's sum, from 0 over t in order, then / n.
template <class T, std::size_t n, std::size_t W>
__global__ void __launch_bounds__(detail::column_threads<W, detail::image_columns>)
    mean_tokens_forward_kernel(T* __restrict__ pooled, const T* __restrict__ tokens,
                               std::size_t batch) {
  const std::size_t c = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= W) return;  // no barriers below
  for (std::size_t b = blockIdx.y; b < batch; b += gridDim.y) {
    const T* column = tokens + b * n * W + c;
    T sum = 0;
    for (std::size_t t = 0; t < n; ++t) sum += column[t * W];
    pooled[b * W + c] = sum / T(n);
  }
}

// One thread per element of d_tokens.
template <class T, std::size_t n, std::size_t W>
__global__ void __launch_bounds__(threads_per_block)
    mean_tokens_backward_kernel(T* __restrict__ d_tokens, const T* __restrict__ d_pooled,
                                std::size_t size, bool accumulate) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t e = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < size;
       e += stride) {
    const T g = d_pooled[(e / (n * W)) * W + e % W] / T(n);
    d_tokens[e] = (accumulate ? d_tokens[e] : T(0)) + g;  // as the CPU, 0 + g when overwriting
  }
}

/// subset(b, i, :) = all(b, index(b, i), :); all (B, N, W), subset (B, n, W), index (B, n).
template <class T, std::size_t N, std::size_t n, std::size_t W>
void gather_tokens(T* subset, const T* all, const std::int32_t* index, std::size_t batch) {
  static_assert(N > 0 && n > 0 && W > 0 && n <= N && N <= 0x7fffffff,
                "splitmask: gather_tokens needs 0 < n <= N < 2^31 and W > 0");
  const std::size_t rows = batch * n;
  if (rows == 0) return;
  auto& ctx = context::current();
  constexpr unsigned threads = detail::column_threads<W, detail::row_columns>;
  const dim3 grid(detail::column_blocks<W, detail::row_columns>, detail::grid_y(rows));
  gather_tokens_kernel<T, N, n, W><<<grid, threads, 0, ctx.stream()>>>(
      subset, all, index, rows, ctx.error_counter());
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

/// all(b, index(b, i), :) = subset(b, i, :), or += when accumulating; a position named twice in
/// one image keeps the last row (overwrite) or receives both (accumulate), as on the CPU.
template <class T, std::size_t N, std::size_t n, std::size_t W>
void scatter_tokens(T* all, const T* subset, const std::int32_t* index, std::size_t batch,
                    bool accumulate) {
  static_assert(N > 0 && n > 0 && W > 0 && n <= N && N <= 0x7fffffff,
                "splitmask: scatter_tokens needs 0 < n <= N < 2^31 and W > 0");
  if (batch == 0) return;
  auto& ctx = context::current();
  constexpr unsigned threads = detail::column_threads<W, detail::image_columns>;
  const dim3 grid(detail::column_blocks<W, detail::image_columns>, detail::grid_y(batch));
  scatter_tokens_kernel<T, N, n, W><<<grid, threads, 0, ctx.stream()>>>(
      all, subset, index, batch, accumulate, ctx.error_counter());
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

/// targets[b·n + i] = ids[b·N + index(b, i)]; a target whose position is out of range is 0.
template <std::size_t N, std::size_t n>
void gather_ids(std::int32_t* targets, const std::int32_t* ids, const std::int32_t* index,
                std::size_t batch) {
  static_assert(N > 0 && n > 0 && n <= N && N <= 0x7fffffff,
                "splitmask: gather_ids needs 0 < n <= N < 2^31");
  const std::size_t count = batch * n;
  if (count == 0) return;
  auto& ctx = context::current();
  gather_ids_kernel<N, n><<<grid_for(count, threads_per_block, ctx), threads_per_block, 0,
                            ctx.stream()>>>(targets, ids, index, count, ctx.error_counter());
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

/// pooled(b, c) = (sum over t in order of tokens(b, t, c)) / n; tokens (B, n, W), pooled (B, W).
template <class T, std::size_t n, std::size_t W>
void mean_tokens_forward(T* pooled, const T* tokens, std::size_t batch) {
  static_assert(n > 0 && W > 0, "splitmask: mean_tokens_forward needs n > 0 and W > 0");
  if (batch == 0) return;
  auto& ctx = context::current();
  constexpr unsigned threads = detail::column_threads<W, detail::image_columns>;
  const dim3 grid(detail::column_blocks<W, detail::image_columns>, detail::grid_y(batch));
  mean_tokens_forward_kernel<T, n, W><<<grid, threads, 0, ctx.stream()>>>(pooled, tokens, batch);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

/// d_tokens(b, t, c) = (accumulate ? d_tokens(b, t, c) : 0) + d_pooled(b, c) / n.
template <class T, std::size_t n, std::size_t W>
void mean_tokens_backward(T* d_tokens, const T* d_pooled, std::size_t batch, bool accumulate) {
  static_assert(n > 0 && W > 0, "splitmask: mean_tokens_backward needs n > 0 and W > 0");
  const std::size_t size = batch * n * W;
  if (size == 0) return;
  auto& ctx = context::current();
  mean_tokens_backward_kernel<T, n, W><<<grid_for(size, threads_per_block, ctx),
                                         threads_per_block, 0, ctx.stream()>>>(
      d_tokens, d_pooled, size, accumulate);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

}  // namespace splitmask::backend::cuda::kernels
