// Device memory for tensors and copies between the host and the device.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/core/backend.hpp"
#include "splitmask/core/device.hpp"
#include "splitmask/tensor/copy.hpp"
#include "splitmask/tensor/storage.hpp"

namespace splitmask::detail {

template <>
struct allocator<device::cuda> {
  static void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    auto& ctx = backend::cuda::context::current();
    void* p = nullptr;
    SPLITMASK_CUDA_CHECK(cudaMalloc(&p, bytes));
    // Zeroed before any stream of any thread can use it: allocation is rare (arenas are sized
    // once), so waiting here costs nothing that matters.
    cudaError_t status = cudaMemsetAsync(p, 0, bytes, ctx.stream());
    if (status == cudaSuccess) status = cudaStreamSynchronize(ctx.stream());
    if (status != cudaSuccess) {
      cudaFree(p);
      backend::cuda::throw_cuda_error(status, "cudaMemsetAsync", __FILE__, __LINE__);
    }
    return p;
  }
  // cudaFree waits for work that may still use the memory; errors at exit are ignored.
  static void deallocate(void* p) noexcept {
    if (p) cudaFree(p);
  }
};

// Host <-> device copies return once the data has arrived, so the host may read or reuse its
// buffer at once; device -> device copies are ordered on the thread's stream.
inline void copy_with_host(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return;
  auto& ctx = backend::cuda::context::current();
  SPLITMASK_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, ctx.stream()));
  ctx.synchronize();
}
template <>
struct copier<device::cuda, device::cpu> {
  static void run(void* dst, const void* src, std::size_t bytes) {
    copy_with_host(dst, src, bytes, cudaMemcpyHostToDevice);
  }
};
template <>
struct copier<device::cpu, device::cuda> {
  static void run(void* dst, const void* src, std::size_t bytes) {
    copy_with_host(dst, src, bytes, cudaMemcpyDeviceToHost);
  }
};
template <>
struct copier<device::cuda, device::cuda> {
  static void run(void* dst, const void* src, std::size_t bytes) {
    check_copy_ranges(dst, src, bytes);
    if (bytes == 0 || dst == src) return;
    SPLITMASK_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                         backend::cuda::context::current().stream()));
  }
};

}  // namespace splitmask::detail
