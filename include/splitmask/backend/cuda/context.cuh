// The CUDA state a host thread works with: its stream, its cuBLAS handle and the device's
// multiprocessor count, for the device current when the thread first used CUDA through
// splitmask. Created on first use; creation fails with a clear cuda_error when no device is
// present. Work is ordered on the thread's stream: a device tensor shared between host threads
// needs a synchronize() by the thread that wrote it before another thread reads it.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "splitmask/backend/cuda/check.cuh"

namespace splitmask::backend::cuda {

/// Number of CUDA devices visible to this process (0 when none or no driver); never throws.
inline int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky error of a failed query
    return 0;
  }
  return n;
}

class context {
 public:
  /// This thread's context. Work is ordered on the per-thread default stream.
  static context& current() {
    thread_local context ctx;
    return ctx;
  }

  cudaStream_t stream() const noexcept { return cudaStreamPerThread; }
  cublasHandle_t blas() const noexcept { return blas_; }
  int multiprocessors() const noexcept { return multiprocessors_; }

  /// Blocks until all work queued on this thread's stream is done; reports its errors.
  void synchronize() const { SPLITMASK_CUDA_CHECK(cudaStreamSynchronize(stream())); }

  context(const context&) = delete;
  context& operator=(const context&) = delete;
  ~context() {
    if (blas_) cublasDestroy(blas_);
  }

 private:
  context() {
    int device = 0;
    SPLITMASK_CUDA_CHECK(cudaGetDevice(&device));
    SPLITMASK_CUDA_CHECK(
        cudaDeviceGetAttribute(&multiprocessors_, cudaDevAttrMultiProcessorCount, device));
    SPLITMASK_CUBLAS_CHECK(cublasCreate(&blas_));
    try {
      SPLITMASK_CUBLAS_CHECK(cublasSetStream(blas_, stream()));
      // Exact fp32 products unless a caller opts into TF32.
      SPLITMASK_CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
    } catch (...) {
      cublasDestroy(blas_);
      throw;
    }
  }

  cublasHandle_t blas_ = nullptr;
  int multiprocessors_ = 0;
};

}  // namespace splitmask::backend::cuda
