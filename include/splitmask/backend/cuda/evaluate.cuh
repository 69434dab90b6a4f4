// The CUDA evaluation of expressions: one generic kernel family, one launch per assignment.
//   flat      no broadcast, no reduction: one thread per element, plain indexing
//   elements  broadcasts but no reduction: one thread per element, (row, column) indexing
//   rows      row reductions: one warp per row; lanes reduce with shuffles, then write
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/core/backend.hpp"
#include "splitmask/core/device.hpp"

namespace splitmask::backend::cuda {

inline constexpr unsigned threads_per_block = 256;
inline constexpr unsigned warp_size = 32;

/// Row reductions by one warp: lane l reduces columns l, l + 32, ...; shuffles combine lanes.
/// Every lane ends with the row's value, and all lanes have finished reading the row.
struct warp_rows {
  template <class R, class E>
  __device__ typename E::value_type reduce(const E& e, std::size_t n) const {
    using T = typename E::value_type;
    T acc = R::template identity<T>();
    for (std::size_t c = threadIdx.x % warp_size; c < n; c += warp_size)
      acc = R::combine(acc, R::term(e.at(c)));
    for (unsigned offset = warp_size / 2; offset > 0; offset /= 2)
      acc = R::combine(acc, __shfl_xor_sync(0xffffffffu, acc, offset));
    return acc;
  }
};

template <class T, class Node>
__global__ void __launch_bounds__(threads_per_block)
    evaluate_flat(T* dst, Node node, std::size_t n) {
  node.begin_row(0, warp_rows{});
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    dst[i] = node.at(i);
}

template <std::size_t Length, class T, class Node>
__global__ void __launch_bounds__(threads_per_block)
    evaluate_elements(T* dst, Node node, std::size_t n) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    node.begin_row(i / Length, warp_rows{});
    dst[i] = node.at(i % Length);
  }
}

template <std::size_t Length, class T, class Node>
__global__ void __launch_bounds__(threads_per_block)
    evaluate_rows(T* dst, Node node, std::size_t rows) {
  const std::size_t warps = threads_per_block / warp_size;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * warps;
  const unsigned lane = threadIdx.x % warp_size;
  // r is the same for the whole warp, so every lane takes part in each row's shuffles.
  for (std::size_t r = static_cast<std::size_t>(blockIdx.x) * warps + threadIdx.x / warp_size;
       r < rows; r += stride) {
    node.begin_row(r, warp_rows{});
    for (std::size_t c = lane; c < Length; c += warp_size) dst[r * Length + c] = node.at(c);
  }
}

/// Blocks for `work` items of `per_block` each, capped at a few waves of the device.
inline unsigned grid_for(std::size_t work, std::size_t per_block, const context& ctx) {
  const std::size_t blocks = (work + per_block - 1) / per_block;
  const std::size_t cap = static_cast<std::size_t>(ctx.multiprocessors()) * 16;
  return static_cast<unsigned>(std::max<std::size_t>(1, std::min(blocks, cap)));
}

}  // namespace splitmask::backend::cuda

namespace splitmask::detail {

template <>
struct evaluate_backend<device::cuda> {
  template <class T, class Extents, class Node>
  static void run(T* dst, const Extents& shape, const Node& node) {
    namespace cu = backend::cuda;
    const auto& ctx = cu::context::current();
    const std::size_t n = shape.size();
    constexpr std::size_t length = Extents::row_length;
    if constexpr (Node::has_reduction) {
      const std::size_t rows = shape.rows();
      cu::evaluate_rows<length><<<cu::grid_for(rows, cu::threads_per_block / cu::warp_size, ctx),
                                  cu::threads_per_block, 0, ctx.stream()>>>(dst, node, rows);
    } else if constexpr (Node::is_flat) {
      cu::evaluate_flat<<<cu::grid_for(n, cu::threads_per_block, ctx), cu::threads_per_block, 0,
                          ctx.stream()>>>(dst, node, n);
    } else {
      cu::evaluate_elements<length>
          <<<cu::grid_for(n, cu::threads_per_block, ctx), cu::threads_per_block, 0, ctx.stream()>>>(
              dst, node, n);
    }
    SPLITMASK_CUDA_CHECK(cudaGetLastError());
  }
};

}  // namespace splitmask::detail
