// Column sums over the rows of a (rows, cols) matrix: sums[c] += sum over r of term(r, c).
// Deterministic (no atomics, a fixed order for every size): pass 1 gives each block a tile of 32
// columns (one per lane, so a warp reads 32 consecutive elements of a row) and a chunk of rows;
// its 8 warps stride the chunk and combine in shared memory in warp order, and the block writes
// one partial sum per column to scratch. Pass 2 adds each column's partials in chunk order to
// sums. The chunking depends only on rows and cols, not on the device, so a run gives the same
// bits on any card. The term is a functor, so layernorm_backward's dgamma and dbeta (terms of
// dy, x and the row statistics) use the same two passes as a linear layer's bias gradient.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/backend/cuda/evaluate.cuh"

namespace splitmask::backend::cuda::kernels {

inline constexpr unsigned column_sum_tile = 32;          // columns per block: one per lane
inline constexpr unsigned column_sum_row_lanes = 8;      // warps per block, each on its own rows
inline constexpr std::size_t column_sum_min_chunk = 64;  // rows per chunk at least
inline constexpr std::size_t column_sum_target_blocks = 1024;  // enough to fill a large GPU
inline constexpr unsigned column_sum_threads = column_sum_tile * column_sum_row_lanes;

/// The outputs of a column sum with Count terms per element: sums[k][c] += sum_r term_k(r, c).
template <class T, std::size_t Count>
struct column_sum_targets {
  T* sums[Count];
};

/// The plain column sum: the term of (r, c) is the matrix's element.
template <class T>
struct matrix_entries {
  using value_type = T;
  static constexpr std::size_t count = 1;
  const T* matrix;
  std::size_t cols;
  __device__ void operator()(std::size_t r, std::size_t c, T (&terms)[count]) const {
    terms[0] = matrix[r * cols + c];
  }
};

/// Pass 1: partials[(k * chunks + chunk) * cols + c] = sum over the chunk's rows of term_k(r, c).
/// Block (32 columns, 8 row lanes); blockIdx.x is the column tile, blockIdx.y the row chunk.
template <class Terms>
__global__ void __launch_bounds__(column_sum_threads)
    column_partial_sums_kernel(typename Terms::value_type* __restrict__ partials, Terms terms,
                               std::size_t rows, std::size_t cols, std::size_t rows_per_chunk) {
  using T = typename Terms::value_type;
  constexpr std::size_t count = Terms::count;
  __shared__ T lane_sums[count][column_sum_row_lanes][column_sum_tile];
  const std::size_t c = static_cast<std::size_t>(blockIdx.x) * column_sum_tile + threadIdx.x;
  const std::size_t begin = static_cast<std::size_t>(blockIdx.y) * rows_per_chunk;
  const std::size_t end = rows < begin + rows_per_chunk ? rows : begin + rows_per_chunk;
  T acc[count];
#pragma unroll
  for (std::size_t k = 0; k < count; ++k) acc[k] = T(0);
  if (c < cols) {
    for (std::size_t r = begin + threadIdx.y; r < end; r += column_sum_row_lanes) {
      T terms_rc[count];
      terms(r, c, terms_rc);
#pragma unroll
      for (std::size_t k = 0; k < count; ++k) acc[k] += terms_rc[k];
    }
  }
#pragma unroll
  for (std::size_t k = 0; k < count; ++k) lane_sums[k][threadIdx.y][threadIdx.x] = acc[k];
  __syncthreads();  // reached by every thread: nothing above returns
  if (threadIdx.y == 0 && c < cols) {
#pragma unroll
    for (std::size_t k = 0; k < count; ++k) {
      T s = lane_sums[k][0][threadIdx.x];
      for (unsigned y = 1; y < column_sum_row_lanes; ++y) s += lane_sums[k][y][threadIdx.x];
      partials[(k * gridDim.y + blockIdx.y) * cols + c] = s;
    }
  }
}

/// Pass 2: sums[k][c] += the chunks' partials of column c, in chunk order. A thread per (k, c).
template <class T, std::size_t Count>
__global__ void __launch_bounds__(threads_per_block)
    add_column_partials_kernel(column_sum_targets<T, Count> targets, const T* __restrict__ partials,
                               std::size_t chunks, std::size_t cols) {
  const std::size_t size = Count * cols;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t e = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < size;
       e += stride) {
    const std::size_t k = e / cols, c = e % cols;
    const T* column = partials + k * chunks * cols + c;
    T s = column[0];
    for (std::size_t chunk = 1; chunk < chunks; ++chunk) s += column[chunk * cols];
    T* sums = targets.sums[k];
    sums[c] += s;
  }
}

/// targets.sums[k][c] += sum over r < rows of terms(r, c)[k], for c < cols. Terms is a functor
/// with value_type, count and __device__ operator()(r, c, value_type (&)[count]). Uses the
/// context's scratch (count * chunks * cols values).
template <class Terms>
void add_column_term_sums(
    const column_sum_targets<typename Terms::value_type, Terms::count>& targets, const Terms& terms,
    std::size_t rows, std::size_t cols) {
  using T = typename Terms::value_type;
  if (rows == 0 || cols == 0) return;  // nothing to add
  auto& ctx = context::current();
  const std::size_t tiles = (cols + column_sum_tile - 1) / column_sum_tile;
  const std::size_t most_chunks = (rows + column_sum_min_chunk - 1) / column_sum_min_chunk;
  const std::size_t wanted_chunks =
      std::max<std::size_t>(1, (column_sum_target_blocks + tiles - 1) / tiles);
  const std::size_t rows_per_chunk =
      (rows + std::min(most_chunks, wanted_chunks) - 1) / std::min(most_chunks, wanted_chunks);
  const std::size_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;  // none empty
  T* partials = static_cast<T*>(ctx.scratch(Terms::count * chunks * cols * sizeof(T)));
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(chunks));
  const dim3 block(column_sum_tile, column_sum_row_lanes);
  column_partial_sums_kernel<Terms>
      <<<grid, block, 0, ctx.stream()>>>(partials, terms, rows, cols, rows_per_chunk);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
  add_column_partials_kernel<T, Terms::count>
      <<<grid_for(Terms::count * cols, threads_per_block, ctx), threads_per_block, 0,
         ctx.stream()>>>(targets, partials, chunks, cols);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

/// sums[c] += sum over the rows of matrix[r][c]; matrix (rows, cols) row-major.
template <class T>
void add_column_sums(T* sums, const T* matrix, std::size_t rows, std::size_t cols) {
  add_column_term_sums(column_sum_targets<T, 1>{{sums}}, matrix_entries<T>{matrix, cols}, rows,
                       cols);
}

}  // namespace splitmask::backend::cuda::kernels
