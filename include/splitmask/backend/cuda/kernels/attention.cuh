// Multi-head self-attention on CUDA, ops/attention.hpp's semantics: per image b and head h,
// P = softmax(q k^T / sqrt(Dh)) row-wise (the maximum of the unscaled dot products subtracted
// first, as the CPU does), out = P v. q, k, v are read in place from qkv (a token's row holds
// [q | k | v], head h at columns h·Dh of each); P is saved for backward.
//
// Row passes (forward, and backward's dS and dq): a block per (image, head, tile of 64 query
// rows), 8 warps, a warp per query row. One head matrix at a time sits in shared memory with its
// rows padded to Dh + 1 (an odd stride, so lanes reading different rows hit different banks):
// first K (or V) for the row's dot products, lane j taking keys j, j + 32, ...; then, after a
// barrier, V (or K) for the weighted sums of rows, lane d taking dimensions d, d + 32, ...; the
// row of P (or dS) between the two goes through global memory (just written by this block, so in
// L2). Keeping one matrix rather than two halves the shared memory: every N <= 256, Dh <= 128
// fits in float.
// Backward's column pass (dk, dv): a block per (image, head, tile of 32 keys); q (then dO) and
// the tile's columns of dS (then P) in shared memory; each warp accumulates 4 keys at once, its
// lanes over the dimensions. Fixed summation orders throughout: the same bits on every run.
//
//   qkv, d_qkv (B, N, 3D)   out, d_out (B, N, D)   probs, d_probs (B·H, N, N)
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/backend/cuda/kernels/reduce.cuh"
#include "splitmask/core/math.hpp"

namespace splitmask::backend::cuda::kernels {

inline constexpr unsigned attention_threads = 256;
inline constexpr unsigned attention_warps = attention_threads / warp_lanes;
inline constexpr std::size_t attention_query_tile = 64;  // query rows per block (row passes)
inline constexpr std::size_t attention_key_tile = 32;    // keys per block (column pass)
inline constexpr std::size_t attention_max_shared_bytes = 227 * 1024;  // an H100's block

/// The compile-time shapes and shared-memory sizes of one attention configuration.
template <class T, std::size_t N, std::size_t D, std::size_t H>
struct attention_layout {
  static_assert(N > 0 && H > 0 && D % H == 0 && D / H > 0,
                "splitmask: attention needs N > 0 and D a positive multiple of H");
  static constexpr std::size_t head_width = D / H;  // Dh
  static constexpr std::size_t keys_per_lane = (N + warp_lanes - 1) / warp_lanes;
  static constexpr std::size_t dims_per_lane = (head_width + warp_lanes - 1) / warp_lanes;
  static constexpr std::size_t padded_width = head_width + 1;
  static constexpr std::size_t row_buffer = N > head_width ? N : head_width;  // a warp's row
  static constexpr std::size_t query_tiles = (N + attention_query_tile - 1) / attention_query_tile;
  static constexpr std::size_t key_tiles = (N + attention_key_tile - 1) / attention_key_tile;
  static constexpr std::size_t keys_per_warp = attention_key_tile / attention_warps;
  // Row passes: a head matrix (N, Dh + 1) and a row buffer per warp.
  static constexpr std::size_t row_pass_shared_bytes =
      (N * padded_width + attention_warps * row_buffer) * sizeof(T);
  // Column pass: a head matrix (N, Dh) and a tile of columns of an (N, N) matrix.
  static constexpr std::size_t column_pass_shared_bytes =
      N * (head_width + attention_key_tile) * sizeof(T);
};
static_assert(attention_key_tile % attention_warps == 0, "whole keys per warp");

// dst[j * Stride + d] = src[j * SourceStride + d] for j < N, d < Dh; the whole block copies.
template <class T, std::size_t N, std::size_t Dh, std::size_t Stride, std::size_t SourceStride>
__device__ void copy_head_to_shared(T* dst, const T* src) {
  for (std::size_t e = threadIdx.x; e < N * Dh; e += blockDim.x) {
    const std::size_t j = e / Dh, d = e % Dh;
    dst[j * Stride + d] = src[j * SourceStride + d];
  }
}

// dst[i * Tile + t] = src[i * N + first + t] of an (N, N) matrix, 0 for columns past N; the
// whole block copies.
template <class T, std::size_t N, std::size_t Tile>
__device__ void copy_column_tile_to_shared(T* dst, const T* src, std::size_t first) {
  for (std::size_t e = threadIdx.x; e < N * Tile; e += blockDim.x) {
    const std::size_t i = e / Tile, j = first + e % Tile;
    dst[e] = j < N ? src[i * N + j] : T(0);
  }
}

// dots[t] = row . matrix[j] over Dh for j = lane + 32 t; for j >= N the value is meaningless
// (row N - 1 is read instead, so nothing goes out of bounds). row is broadcast to the warp.
template <class T, std::size_t N, std::size_t Dh, std::size_t Stride, std::size_t KeysPerLane>
__device__ void dots_with_rows(T (&dots)[KeysPerLane], const T* row, const T* matrix,
                               unsigned lane) {
  const T* rows[KeysPerLane];
#pragma unroll
  for (std::size_t t = 0; t < KeysPerLane; ++t) {
    const std::size_t j = lane + t * warp_lanes;
    rows[t] = matrix + (j < N ? j : N - 1) * Stride;
    dots[t] = T(0);
  }
  for (std::size_t d = 0; d < Dh; ++d) {
    const T r = row[d];
#pragma unroll
    for (std::size_t t = 0; t < KeysPerLane; ++t) dots[t] += r * rows[t][d];
  }
}

// sums[u] = sum over j < N, in order, of weights[j] * matrix[j][d] for d = lane + 32 u; for
// d >= Dh the value is meaningless (column Dh - 1 is read instead).
template <class T, std::size_t N, std::size_t Dh, std::size_t Stride, std::size_t DimsPerLane>
__device__ void weighted_sum_of_rows(T (&sums)[DimsPerLane], const T* weights, const T* matrix,
                                     unsigned lane) {
  std::size_t dims[DimsPerLane];
#pragma unroll
  for (std::size_t u = 0; u < DimsPerLane; ++u) {
    const std::size_t d = lane + u * warp_lanes;
    dims[u] = d < Dh ? d : Dh - 1;
    sums[u] = T(0);
  }
  for (std::size_t j = 0; j < N; ++j) {
    const T w = weights[j];
    const T* m = matrix + j * Stride;
#pragma unroll
    for (std::size_t u = 0; u < DimsPerLane; ++u) sums[u] += w * m[dims[u]];
  }
}

// sums[k][u] = sum over i < N, in order, of columns[i][warp + 8 k] * rows[i][d], d = lane + 32 u
// (meaningless for d >= Dh); columns is (N, key tile), rows (N, Dh).
template <class T, std::size_t N, std::size_t Dh, std::size_t KeysPerWarp, std::size_t DimsPerLane>
__device__ void column_products(T (&sums)[KeysPerWarp][DimsPerLane], const T* columns,
                                const T* rows, unsigned warp, unsigned lane) {
  std::size_t dims[DimsPerLane];
#pragma unroll
  for (std::size_t u = 0; u < DimsPerLane; ++u) {
    const std::size_t d = lane + u * warp_lanes;
    dims[u] = d < Dh ? d : Dh - 1;
#pragma unroll
    for (std::size_t k = 0; k < KeysPerWarp; ++k) sums[k][u] = T(0);
  }
  for (std::size_t i = 0; i < N; ++i) {
    T c[KeysPerWarp];
#pragma unroll
    for (std::size_t k = 0; k < KeysPerWarp; ++k)
      c[k] = columns[i * attention_key_tile + warp + k * attention_warps];
#pragma unroll
    for (std::size_t u = 0; u < DimsPerLane; ++u) {
      const T r = rows[i * Dh + dims[u]];
#pragma unroll
      for (std::size_t k = 0; k < KeysPerWarp; ++k) sums[k][u] += c[k] * r;
    }
  }
}

// Block (bh · query_tiles + tile). Phase 1: K in shared memory, each warp's rows of P to probs.
// Phase 2: V in shared memory, each warp's rows of out from its rows of P.
template <class T, std::size_t N, std::size_t D, std::size_t H>
__global__ void __launch_bounds__(attention_threads)
    attention_forward_kernel(T* __restrict__ out, T* probs, const T* __restrict__ qkv, T scale) {
  using L = attention_layout<T, N, D, H>;
  constexpr std::size_t Dh = L::head_width, P = L::padded_width;
  extern __shared__ __align__(16) unsigned char attention_shared[];
  T* matrix = reinterpret_cast<T*>(attention_shared);  // K, then V: (N, Dh + 1)
  const unsigned lane = threadIdx.x % warp_lanes, warp = threadIdx.x / warp_lanes;
  T* row = matrix + N * P + warp * L::row_buffer;  // this warp's q row, then P row
  const std::size_t bh = blockIdx.x / L::query_tiles;
  const std::size_t first = (blockIdx.x % L::query_tiles) * attention_query_tile;
  const std::size_t last = first + attention_query_tile < N ? first + attention_query_tile : N;
  const std::size_t b = bh / H, h = bh % H;
  const T* head = qkv + b * N * 3 * D + h * Dh;  // token j: q at j·3D, k at +D, v at +2D
  T* head_probs = probs + bh * N * N;

  copy_head_to_shared<T, N, Dh, P, 3 * D>(matrix, head + D);
  __syncthreads();
  // i is the same for the whole warp: every lane takes part in each shuffle and __syncwarp.
  for (std::size_t i = first + warp; i < last; i += attention_warps) {
    for (std::size_t d = lane; d < Dh; d += warp_lanes) row[d] = head[i * 3 * D + d];
    __syncwarp();
    T s[L::keys_per_lane];
    dots_with_rows<T, N, Dh, P>(s, row, matrix, lane);
    T m = -math::infinity<T>();
#pragma unroll
    for (std::size_t t = 0; t < L::keys_per_lane; ++t)
      if (lane + t * warp_lanes < N) m = math::max(m, s[t]);
    m = warp_max(m);
    T sum = 0;
#pragma unroll
    for (std::size_t t = 0; t < L::keys_per_lane; ++t) {
      s[t] = lane + t * warp_lanes < N ? math::exp((s[t] - m) * scale) : T(0);
      sum += s[t];
    }
    const T inv = T(1) / warp_sum(sum);
#pragma unroll
    for (std::size_t t = 0; t < L::keys_per_lane; ++t) {
      const std::size_t j = lane + t * warp_lanes;
      if (j < N) head_probs[i * N + j] = s[t] * inv;
    }
    __syncwarp();  // all lanes are done with row before the next query overwrites it
  }
  __syncthreads();  // K no longer read; the block's rows of P visible to all its threads
  copy_head_to_shared<T, N, Dh, P, 3 * D>(matrix, head + 2 * D);
  __syncthreads();
  for (std::size_t i = first + warp; i < last; i += attention_warps) {
    for (std::size_t j = lane; j < N; j += warp_lanes) row[j] = head_probs[i * N + j];
    __syncwarp();
    T o[L::dims_per_lane];
    weighted_sum_of_rows<T, N, Dh, P>(o, row, matrix, lane);
#pragma unroll
    for (std::size_t u = 0; u < L::dims_per_lane; ++u) {
      const std::size_t d = lane + u * warp_lanes;
      if (d < Dh) out[(b * N + i) * D + h * Dh + d] = o[u];
    }
    __syncwarp();
  }
}

// Backward's row pass, blocks as forward. Phase 1: V in shared memory; dP = dO v^T and
// dS = P * (dP - rowsum(dP * P)) per row, to d_probs. Phase 2: K in shared memory; dq = scale dS k.
template <class T, std::size_t N, std::size_t D, std::size_t H>
__global__ void __launch_bounds__(attention_threads)
    attention_backward_rows_kernel(T* __restrict__ d_qkv, T* d_probs, const T* __restrict__ d_out,
                                   const T* __restrict__ probs, const T* __restrict__ qkv,
                                   T scale) {
  using L = attention_layout<T, N, D, H>;
  constexpr std::size_t Dh = L::head_width, P = L::padded_width;
  extern __shared__ __align__(16) unsigned char attention_shared[];
  T* matrix = reinterpret_cast<T*>(attention_shared);  // V, then K: (N, Dh + 1)
  const unsigned lane = threadIdx.x % warp_lanes, warp = threadIdx.x / warp_lanes;
  T* row = matrix + N * P + warp * L::row_buffer;  // this warp's dO row, then dS row
  const std::size_t bh = blockIdx.x / L::query_tiles;
  const std::size_t first = (blockIdx.x % L::query_tiles) * attention_query_tile;
  const std::size_t last = first + attention_query_tile < N ? first + attention_query_tile : N;
  const std::size_t b = bh / H, h = bh % H;
  const T* head = qkv + b * N * 3 * D + h * Dh;
  const T* head_probs = probs + bh * N * N;
  T* head_d_probs = d_probs + bh * N * N;

  copy_head_to_shared<T, N, Dh, P, 3 * D>(matrix, head + 2 * D);
  __syncthreads();
  for (std::size_t i = first + warp; i < last; i += attention_warps) {
    for (std::size_t d = lane; d < Dh; d += warp_lanes)
      row[d] = d_out[(b * N + i) * D + h * Dh + d];
    __syncwarp();
    T dp[L::keys_per_lane];
    dots_with_rows<T, N, Dh, P>(dp, row, matrix, lane);
    T p[L::keys_per_lane];
    T s = 0;
#pragma unroll
    for (std::size_t t = 0; t < L::keys_per_lane; ++t) {
      const std::size_t j = lane + t * warp_lanes;
      p[t] = j < N ? head_probs[i * N + j] : T(0);
      if (j < N) s += dp[t] * p[t];
    }
    s = warp_sum(s);
#pragma unroll
    for (std::size_t t = 0; t < L::keys_per_lane; ++t) {
      const std::size_t j = lane + t * warp_lanes;
      if (j < N) head_d_probs[i * N + j] = p[t] * (dp[t] - s);
    }
    __syncwarp();
  }
  __syncthreads();  // V no longer read; the block's rows of dS visible to all its threads
  copy_head_to_shared<T, N, Dh, P, 3 * D>(matrix, head + D);
  __syncthreads();
  for (std::size_t i = first + warp; i < last; i += attention_warps) {
    for (std::size_t j = lane; j < N; j += warp_lanes) row[j] = head_d_probs[i * N + j];
    __syncwarp();
    T dq[L::dims_per_lane];
    weighted_sum_of_rows<T, N, Dh, P>(dq, row, matrix, lane);
#pragma unroll
    for (std::size_t u = 0; u < L::dims_per_lane; ++u) {
      const std::size_t d = lane + u * warp_lanes;
      if (d < Dh) d_qkv[(b * N + i) * 3 * D + h * Dh + d] = scale * dq[u];
    }
    __syncwarp();
  }
}

// Backward's column pass: block (bh · key_tiles + tile), keys first .. first + 31. Phase 1: q and
// the tile's columns of dS; dk = scale dS^T q. Phase 2: dO and the columns of P; dv = P^T dO.
template <class T, std::size_t N, std::size_t D, std::size_t H>
__global__ void __launch_bounds__(attention_threads)
    attention_backward_columns_kernel(T* __restrict__ d_qkv, const T* __restrict__ d_probs,
                                      const T* __restrict__ d_out, const T* __restrict__ probs,
                                      const T* __restrict__ qkv, T scale) {
  using L = attention_layout<T, N, D, H>;
  constexpr std::size_t Dh = L::head_width;
  extern __shared__ __align__(16) unsigned char attention_shared[];
  T* rows = reinterpret_cast<T*>(attention_shared);  // q, then dO: (N, Dh)
  T* columns = rows + N * Dh;                        // dS, then P: (N, key tile)
  const unsigned lane = threadIdx.x % warp_lanes, warp = threadIdx.x / warp_lanes;
  const std::size_t bh = blockIdx.x / L::key_tiles;
  const std::size_t first = (blockIdx.x % L::key_tiles) * attention_key_tile;
  const std::size_t b = bh / H, h = bh % H;
  const T* head = qkv + b * N * 3 * D + h * Dh;
  T* d_head = d_qkv + b * N * 3 * D + h * Dh;
  T sums[L::keys_per_warp][L::dims_per_lane];

  copy_head_to_shared<T, N, Dh, Dh, 3 * D>(rows, head);
  copy_column_tile_to_shared<T, N, attention_key_tile>(columns, d_probs + bh * N * N, first);
  __syncthreads();
  column_products<T, N, Dh>(sums, columns, rows, warp, lane);
#pragma unroll
  for (std::size_t k = 0; k < L::keys_per_warp; ++k) {
    const std::size_t j = first + warp + k * attention_warps;
#pragma unroll
    for (std::size_t u = 0; u < L::dims_per_lane; ++u) {
      const std::size_t d = lane + u * warp_lanes;
      if (j < N && d < Dh) d_head[j * 3 * D + D + d] = scale * sums[k][u];
    }
  }
  __syncthreads();  // q and dS no longer read
  copy_head_to_shared<T, N, Dh, Dh, D>(rows, d_out + b * N * D + h * Dh);
  copy_column_tile_to_shared<T, N, attention_key_tile>(columns, probs + bh * N * N, first);
  __syncthreads();
  column_products<T, N, Dh>(sums, columns, rows, warp, lane);
#pragma unroll
  for (std::size_t k = 0; k < L::keys_per_warp; ++k) {
    const std::size_t j = first + warp + k * attention_warps;
#pragma unroll
    for (std::size_t u = 0; u < L::dims_per_lane; ++u) {
      const std::size_t d = lane + u * warp_lanes;
      if (j < N && d < Dh) d_head[j * 3 * D + 2 * D + d] = sums[k][u];
    }
  }
}

// Lets `kernel` use `bytes` of dynamic shared memory (above 48 KiB needs the opt-in).
template <class Kernel>
void allow_attention_shared_memory(Kernel* kernel, std::size_t bytes) {
  SPLITMASK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            static_cast<int>(bytes)));
}

/// probs[b·H + h] = softmax(q k^T / sqrt(Dh)) row-wise, out[b, i, h·Dh + d] = (P v)[i, d], with
/// q, k, v head h of qkv (B, N, 3D). out (B, N, D), probs (B·H, N, N).
template <class T, std::size_t N, std::size_t D, std::size_t H>
void attention_forward(T* out, T* probs, const T* qkv, std::size_t batch) {
  using L = attention_layout<T, N, D, H>;
  static_assert(L::row_pass_shared_bytes <= attention_max_shared_bytes,
                "splitmask: attention on CUDA keeps one head's (N, D/H + 1) matrix in shared "
                "memory, and this N, D/H and element type need more than 227 KiB");
  if (batch == 0) return;
  auto& ctx = context::current();
  constexpr std::size_t bytes = L::row_pass_shared_bytes;
  allow_attention_shared_memory(attention_forward_kernel<T, N, D, H>, bytes);
  const T scale = T(1) / std::sqrt(T(L::head_width));  // as the CPU computes it
  const auto blocks = static_cast<unsigned>(batch * H * L::query_tiles);
  attention_forward_kernel<T, N, D, H>
      <<<blocks, attention_threads, bytes, ctx.stream()>>>(out, probs, qkv, scale);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

/// d_qkv (written in full) from d_out (B, N, D), with probs and qkv as forward left them:
/// dP = dO v^T, dS = P * (dP - rowsum(dP * P)), dq = dS k / sqrt(Dh), dk = dS^T q / sqrt(Dh),
/// dv = P^T dO. d_probs (B·H, N, N) receives dS.
template <class T, std::size_t N, std::size_t D, std::size_t H>
void attention_backward(T* d_qkv, T* d_probs, const T* d_out, const T* probs, const T* qkv,
                        std::size_t batch) {
  using L = attention_layout<T, N, D, H>;
  static_assert(L::row_pass_shared_bytes <= attention_max_shared_bytes &&
                    L::column_pass_shared_bytes <= attention_max_shared_bytes,
                "splitmask: attention backward on CUDA keeps one head's (N, D/H + 1) matrix, or "
                "an (N, D/H) matrix and 32 columns of P, in shared memory, and this N, D/H and "
                "element type need more than 227 KiB");
  if (batch == 0) return;
  auto& ctx = context::current();
  const T scale = T(1) / std::sqrt(T(L::head_width));
  allow_attention_shared_memory(attention_backward_rows_kernel<T, N, D, H>,
                                L::row_pass_shared_bytes);
  attention_backward_rows_kernel<T, N, D, H>
      <<<static_cast<unsigned>(batch * H * L::query_tiles), attention_threads,
         L::row_pass_shared_bytes, ctx.stream()>>>(d_qkv, d_probs, d_out, probs, qkv, scale);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
  // After the row pass on the same stream: it reads the dS that pass wrote.
  allow_attention_shared_memory(attention_backward_columns_kernel<T, N, D, H>,
                                L::column_pass_shared_bytes);
  attention_backward_columns_kernel<T, N, D, H>
      <<<static_cast<unsigned>(batch * H * L::key_tiles), attention_threads,
         L::column_pass_shared_bytes, ctx.stream()>>>(d_qkv, d_probs, d_out, probs, qkv, scale);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

}  // namespace splitmask::backend::cuda::kernels
