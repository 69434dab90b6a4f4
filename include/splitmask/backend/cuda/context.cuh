// The CUDA state a host thread works with: its stream, its cuBLAS handle, the device's
// multiprocessor count, a scratch buffer for kernels' partial results (grown when a larger one
// is asked for, so it is sized by the first step and steady afterwards) and a device error
// counter that kernels raise on bad input (a position or token id out of range) and the host
// checks where it waits for the device anyway. For the device current when the thread first
// used CUDA through splitmask. Created on first use; creation fails with a clear cuda_error when no
// device is present. Work is ordered on the thread's stream: a device tensor shared between host
// threads needs a synchronize() by the thread that wrote it before another thread reads it.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <string>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/core/error.hpp"

namespace splitmask::backend::cuda {

/// How this thread's float products run (double products are always exact):
///   fp32  exact fp32 (the default)
///   tf32  TF32 tensor cores: 10-bit mantissas, fp32 accumulation, about 1e-3 relative error
///   bf16  the operands rounded to bf16 (8-bit mantissas) on the fly, fp32 accumulation and
///         result: the mixed-precision mode, where weights, activations, gradients and AdamW's
///         state stay fp32 and only the products' inputs are rounded
enum class matmul_precision { fp32, tf32, bf16 };

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

  /// Device memory of at least `bytes` for work queued on this thread's stream, valid until the
  /// next call. Grows (after the stream's work is done) only when asked for more than it holds.
  void* scratch(std::size_t bytes) {
    if (bytes > scratch_bytes_) {
      synchronize();
      if (scratch_) SPLITMASK_CUDA_CHECK(cudaFree(scratch_));
      scratch_ = nullptr;
      scratch_bytes_ = 0;
      SPLITMASK_CUDA_CHECK(cudaMalloc(&scratch_, bytes));
      scratch_bytes_ = bytes;
    }
    return scratch_;
  }

  /// The precision of float products (set_matmul_precision sets it with cuBLAS's math mode).
  matmul_precision precision() const noexcept { return precision_; }
  void set_precision(matmul_precision p) noexcept { precision_ = p; }

  /// The device counter that kernels raise (atomicAdd) when their input is out of range.
  unsigned* error_counter() const noexcept { return errors_; }

  /// Waits for the stream; throws shape_error naming `where` when a kernel raised the error
  /// counter since the last check (and clears it).
  void check_errors(const char* where) {
    unsigned count = 0;
    SPLITMASK_CUDA_CHECK(
        cudaMemcpyAsync(&count, errors_, sizeof count, cudaMemcpyDeviceToHost, stream()));
    synchronize();
    if (count == 0) return;
    SPLITMASK_CUDA_CHECK(cudaMemsetAsync(errors_, 0, sizeof(unsigned), stream()));
    throw shape_error(std::string("splitmask: ") + where + ": " + std::to_string(count) +
                      " positions or token ids on the device were out of range");
  }

  context(const context&) = delete;
  context& operator=(const context&) = delete;
  ~context() {
    if (scratch_) cudaFree(scratch_);
    if (errors_) cudaFree(errors_);
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
      SPLITMASK_CUDA_CHECK(cudaMalloc(&errors_, sizeof(unsigned)));
      SPLITMASK_CUDA_CHECK(cudaMemset(errors_, 0, sizeof(unsigned)));
    } catch (...) {
      if (errors_) cudaFree(errors_);
      cublasDestroy(blas_);
      throw;
    }
  }

  cublasHandle_t blas_ = nullptr;
  int multiprocessors_ = 0;
  void* scratch_ = nullptr;
  std::size_t scratch_bytes_ = 0;
  unsigned* errors_ = nullptr;
  matmul_precision precision_ = matmul_precision::fp32;
};

/// Sets the precision of this thread's float products (see matmul_precision).
inline void set_matmul_precision(matmul_precision p) {
  auto& ctx = context::current();
  SPLITMASK_CUBLAS_CHECK(cublasSetMathMode(
      ctx.blas(), p == matmul_precision::tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  ctx.set_precision(p);
}

}  // namespace splitmask::backend::cuda
