// CUDA kernel for ops/patchify.hpp: the copy between images (B, C, S, S) and their patches as rows
// (B, N, C·P·P), N = (S/P)², token t = gy·(S/P) + gx, each row ordered (c, py, px). One kernel
// serves both directions (patchify and its inverse unpatchify, each the other's backward): a
// thread per element computes the one pixel its patch element maps to and copies it.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/backend/cuda/evaluate.cuh"
#include "splitmask/core/config.hpp"

namespace splitmask::backend::cuda::kernels {

/// The element of images (B, C, S, S) that element e of patches (B, N, C·P·P) copies.
template <std::size_t C, std::size_t S, std::size_t P>
SPLITMASK_HD inline std::size_t patch_pixel(std::size_t e) {
  constexpr std::size_t grid = S / P, N = grid * grid, L = C * P * P;
  const std::size_t b = e / (N * L), t = (e / L) % N, k = e % L;
  const std::size_t c = k / (P * P), py = (k / P) % P, px = k % P;
  const std::size_t gy = t / grid, gx = t % grid;
  return ((b * C + c) * S + gy * P + py) * S + gx * P + px;
}

// e walks the patches in memory order (coalesced on the patch side; runs of P pixels on the
// image side). Images and patches hold the same B·C·S·S elements.
template <class T, std::size_t C, std::size_t S, std::size_t P, bool ToPatches>
__global__ void __launch_bounds__(threads_per_block)
    move_patches_kernel(T* __restrict__ images, T* __restrict__ patches, std::size_t size) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t e = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < size;
       e += stride) {
    const std::size_t pixel = patch_pixel<C, S, P>(e);
    if constexpr (ToPatches) {
      patches[e] = images[pixel];
    } else {
      images[pixel] = patches[e];
    }
  }
}

/// ToPatches: patches (B, N, C·P·P) = the P x P patches of images (B, C, S, S); otherwise the
/// images are written from the patches. The two buffers must not overlap.
template <class T, std::size_t C, std::size_t S, std::size_t P, bool ToPatches>
void move_patches(T* images, T* patches, std::size_t batch) {
  static_assert(C > 0 && P > 0 && S > 0 && S % P == 0,
                "splitmask: move_patches needs the image size S to be a multiple of P");
  const std::size_t size = batch * C * S * S;
  if (size == 0) return;
  auto& ctx = context::current();
  move_patches_kernel<T, C, S, P, ToPatches><<<grid_for(size, threads_per_block, ctx),
                                               threads_per_block, 0, ctx.stream()>>>(
      images, patches, size);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

}  // namespace splitmask::backend::cuda::kernels
