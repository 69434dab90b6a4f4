// Symmetrised InfoNCE on CUDA, ops/infonce.hpp's semantics: q = p / max(|p|, 1e-12) per row,
// S = q_a q_b^T / tau in double, a row softmax and a column softmax of S, and the mean of the two
// cross-entropies against the diagonal. B is small (at most about a thousand), so the kernels
// favour plain code: a block per row (normalising, the gradient of a row), a 16 x 16 tile per
// block for S with each dot product in the CPU's order (c = 0, 1, ...), a block per row or
// column of S for the softmaxes, one block for the loss. Every sum has a fixed order: the same
// bits on every run.
//
//   p_a, p_b, q_a, q_b, dp_a, dp_b (B, D)   norm_a, norm_b (B)
//   row_softmax, column_softmax (B, B) in T   work (B, B) in double: S in forward, dL/dS in
//   backward
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/backend/cuda/evaluate.cuh"
#include "splitmask/backend/cuda/kernels/reduce.cuh"
#include "splitmask/core/math.hpp"

namespace splitmask::backend::cuda::kernels {

/// The smallest norm divided by, as detail::min_norm of ops/infonce.hpp (PyTorch's F.normalize).
inline constexpr double infonce_min_norm = 1e-12;

/// Threads of a block over a row of D: D rounded up to whole warps, at most 256.
template <std::size_t D>
inline constexpr unsigned infonce_row_threads =
    D >= threads_per_block ? threads_per_block
                           : static_cast<unsigned>((D + warp_lanes - 1) / warp_lanes * warp_lanes);

inline constexpr unsigned infonce_tile = 16;  // S is computed in 16 x 16 tiles
inline constexpr unsigned infonce_tile_threads = infonce_tile * infonce_tile;

// Block per row: norm[r] = |p_r|, q_r = p_r / max(|p_r|, min_norm).
template <class T, std::size_t D>
__global__ void __launch_bounds__(infonce_row_threads<D>)
    infonce_normalise_kernel(T* __restrict__ q, T* __restrict__ norm, const T* __restrict__ p,
                             std::size_t B) {
  __shared__ T reduce_buffer[warp_lanes];
  for (std::size_t r = blockIdx.x; r < B; r += gridDim.x) {  // the same for the whole block
    const T* row = p + r * D;
    T s = 0;
    for (std::size_t c = threadIdx.x; c < D; c += blockDim.x) s += row[c] * row[c];
    const T n = math::sqrt(block_sum(s, reduce_buffer));
    const T divisor = math::max(n, T(infonce_min_norm));
    for (std::size_t c = threadIdx.x; c < D; c += blockDim.x) q[r * D + c] = row[c] / divisor;
    if (threadIdx.x == 0) norm[r] = n;
  }
}

// Block (16 x 16 threads) per 16 x 16 tile of S: s[i][j] = (sum over c in order of
// double(q_a[i][c]) * q_b[j][c]) / tau. The rows' slices pass through shared memory.
template <class T, std::size_t D>
__global__ void __launch_bounds__(infonce_tile_threads)
    infonce_similarity_kernel(double* __restrict__ s, const T* __restrict__ q_a,
                              const T* __restrict__ q_b, std::size_t B, double tau) {
  __shared__ T a_tile[infonce_tile][infonce_tile + 1];  // [row i][column c], padded
  __shared__ T b_tile[infonce_tile][infonce_tile + 1];  // [row j][column c]
  const std::size_t i0 = static_cast<std::size_t>(blockIdx.y) * infonce_tile;
  const std::size_t j0 = static_cast<std::size_t>(blockIdx.x) * infonce_tile;
  const unsigned tx = threadIdx.x, ty = threadIdx.y;
  double dot = 0;
  for (std::size_t c0 = 0; c0 < D; c0 += infonce_tile) {
    const std::size_t c = c0 + tx;
    a_tile[ty][tx] = i0 + ty < B && c < D ? q_a[(i0 + ty) * D + c] : T(0);
    b_tile[ty][tx] = j0 + ty < B && c < D ? q_b[(j0 + ty) * D + c] : T(0);
    __syncthreads();
    const std::size_t width = D - c0 < infonce_tile ? D - c0 : infonce_tile;
    for (std::size_t cc = 0; cc < width; ++cc)
      dot += static_cast<double>(a_tile[ty][cc]) * static_cast<double>(b_tile[tx][cc]);
    __syncthreads();  // before the next slice overwrites the tiles
  }
  if (i0 + ty < B && j0 + tx < B) s[(i0 + ty) * B + j0 + tx] = dot / tau;
}

// Block (x: line l, y: 0 rows, 1 columns): the softmax of row l (or column l) of S, and that
// line's loss term 0.5 (logsumexp - S_ll) / B in losses[y·B + l].
template <class T>
__global__ void __launch_bounds__(threads_per_block)
    infonce_softmax_kernel(T* __restrict__ row_softmax, T* __restrict__ column_softmax,
                           double* __restrict__ losses, const double* __restrict__ s,
                           std::size_t B) {
  __shared__ double reduce_buffer[warp_lanes];
  const bool columns = blockIdx.y == 1;
  T* softmax = columns ? column_softmax : row_softmax;
  for (std::size_t l = blockIdx.x; l < B; l += gridDim.x) {  // the same for the whole block
    // Element k of line l: S[l][k] for rows, S[k][l] for columns.
    const std::size_t first = columns ? l : l * B, step = columns ? B : 1;
    double m = -math::infinity<double>();
    for (std::size_t k = threadIdx.x; k < B; k += blockDim.x) m = math::max(m, s[first + k * step]);
    m = block_max(m, reduce_buffer);
    double z = 0;
    for (std::size_t k = threadIdx.x; k < B; k += blockDim.x)
      z += math::exp(s[first + k * step] - m);
    z = block_sum(z, reduce_buffer);
    for (std::size_t k = threadIdx.x; k < B; k += blockDim.x)
      softmax[first + k * step] = T(math::exp(s[first + k * step] - m) / z);
    if (threadIdx.x == 0)
      losses[blockIdx.y * B + l] = 0.5 * (m + math::log(z) - s[l * B + l]) / double(B);
  }
}

// Thread per element: g[i][j] = factor * (row_softmax + column_softmax - 2 [i = j]).
template <class T>
__global__ void __launch_bounds__(threads_per_block)
    infonce_score_gradient_kernel(double* __restrict__ g, const T* __restrict__ row_softmax,
                                  const T* __restrict__ column_softmax, std::size_t B,
                                  double factor) {
  const std::size_t size = B * B;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t e = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < size;
       e += stride) {
    const bool diagonal = e / B == e % B;
    g[e] = factor * (double(row_softmax[e]) + double(column_softmax[e]) - (diagonal ? 2.0 : 0.0));
  }
}

// Block per row i of one side: dq = sum over j in order of w_ij other_j (w = g[i][j], or g[j][i]
// when transposed), then through q = p / |p|: dp = (dq - q (q . dq)) / |p|, or dq / min_norm
// when |p| < min_norm. Thread t holds dq's columns t, t + threads, ...
template <class T, std::size_t D>
__global__ void __launch_bounds__(infonce_row_threads<D>)
    infonce_input_gradient_kernel(T* __restrict__ dp, const T* __restrict__ q,
                                  const T* __restrict__ other, const T* __restrict__ norm,
                                  const double* __restrict__ g, std::size_t B, bool transposed) {
  constexpr unsigned threads = infonce_row_threads<D>;
  constexpr std::size_t per_thread = (D + threads - 1) / threads;
  __shared__ double reduce_buffer[warp_lanes];
  for (std::size_t i = blockIdx.x; i < B; i += gridDim.x) {  // the same for the whole block
    double dq[per_thread];
#pragma unroll
    for (std::size_t u = 0; u < per_thread; ++u) dq[u] = 0;
    for (std::size_t j = 0; j < B; ++j) {
      const double w = transposed ? g[j * B + i] : g[i * B + j];
#pragma unroll
      for (std::size_t u = 0; u < per_thread; ++u) {
        const std::size_t c = threadIdx.x + u * threads;
        if (c < D) dq[u] += w * double(other[j * D + c]);
      }
    }
    double dot = 0;
#pragma unroll
    for (std::size_t u = 0; u < per_thread; ++u) {
      const std::size_t c = threadIdx.x + u * threads;
      if (c < D) dot += dq[u] * double(q[i * D + c]);
    }
    dot = block_sum(dot, reduce_buffer);  // every thread, before the branch below
    const T n = norm[i];
#pragma unroll
    for (std::size_t u = 0; u < per_thread; ++u) {
      const std::size_t c = threadIdx.x + u * threads;
      if (c >= D) continue;
      dp[i * D + c] = n < T(infonce_min_norm)
                          ? T(dq[u] / infonce_min_norm)  // q = p / min_norm is linear in p
                          : T((dq[u] - double(q[i * D + c]) * dot) / double(n));
    }
  }
}

/// Forward of the symmetrised InfoNCE loss of p_a, p_b (B, D) at temperature tau: fills q_a, q_b,
/// norm_a, norm_b, row_softmax, column_softmax and work (S) for backward and returns the loss.
/// Waits for the device. Uses the context's scratch.
template <class T, std::size_t D>
double infonce_forward(T* q_a, T* q_b, T* norm_a, T* norm_b, T* row_softmax, T* column_softmax,
                       double* work, const T* p_a, const T* p_b, std::size_t B, double tau) {
  static_assert(D > 0, "splitmask: infonce_forward needs D > 0");
  if (B == 0) return 0.0;
  auto& ctx = context::current();
  double* losses = static_cast<double*>(ctx.scratch((2 * B + 1) * sizeof(double)));
  double* loss = losses + 2 * B;
  const unsigned row_blocks = grid_for(B, 1, ctx);
  infonce_normalise_kernel<T, D>
      <<<row_blocks, infonce_row_threads<D>, 0, ctx.stream()>>>(q_a, norm_a, p_a, B);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
  infonce_normalise_kernel<T, D>
      <<<row_blocks, infonce_row_threads<D>, 0, ctx.stream()>>>(q_b, norm_b, p_b, B);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
  const auto tiles = static_cast<unsigned>((B + infonce_tile - 1) / infonce_tile);
  infonce_similarity_kernel<T, D>
      <<<dim3(tiles, tiles), dim3(infonce_tile, infonce_tile), 0, ctx.stream()>>>(work, q_a, q_b, B,
                                                                                  tau);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
  infonce_softmax_kernel<T><<<dim3(row_blocks, 2), threads_per_block, 0, ctx.stream()>>>(
      row_softmax, column_softmax, losses, work, B);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
  return sum_to_host(losses, 2 * B, loss);
}

/// dp_a, dp_b (written) = scale times the gradient of infonce_forward's loss, from what forward
/// left in q_a, q_b, norm_a, norm_b, row_softmax and column_softmax; work (B, B) receives dL/dS.
template <class T, std::size_t D>
void infonce_backward(T* dp_a, T* dp_b, const T* q_a, const T* q_b, const T* norm_a,
                      const T* norm_b, const T* row_softmax, const T* column_softmax, double* work,
                      std::size_t B, double tau, double scale) {
  static_assert(D > 0, "splitmask: infonce_backward needs D > 0");
  if (B == 0) return;
  auto& ctx = context::current();
  const double factor = scale / (2.0 * double(B) * tau);  // dL/dS carries 1 / (2B), dS/dq 1 / tau
  infonce_score_gradient_kernel<T>
      <<<grid_for(B * B, threads_per_block, ctx), threads_per_block, 0, ctx.stream()>>>(
          work, row_softmax, column_softmax, B, factor);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
  const unsigned row_blocks = grid_for(B, 1, ctx);
  infonce_input_gradient_kernel<T, D><<<row_blocks, infonce_row_threads<D>, 0, ctx.stream()>>>(
      dp_a, q_a, q_b, norm_a, work, B, false);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
  infonce_input_gradient_kernel<T, D><<<row_blocks, infonce_row_threads<D>, 0, ctx.stream()>>>(
      dp_b, q_b, q_a, norm_b, work, B, true);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

}  // namespace splitmask::backend::cuda::kernels
