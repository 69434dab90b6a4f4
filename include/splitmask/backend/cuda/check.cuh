// Every CUDA runtime and cuBLAS status is checked; a failure becomes a cuda_error naming the
// call, its file and line, and what the status means.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "splitmask/core/error.hpp"

namespace splitmask::backend::cuda {

[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* call, const char* file,
                                          int line) {
  std::string message = std::string("splitmask: ") + call + " failed at " + file + ":" +
                        std::to_string(line) + ": " + cudaGetErrorName(status) + " (" +
                        cudaGetErrorString(status) + ")";
  if (status == cudaErrorNoKernelImageForDevice || status == cudaErrorUnsupportedPtxVersion)
    message +=
        "; this build does not include the card's architecture: rebuild with "
        "-DCMAKE_CUDA_ARCHITECTURES=<the card's sm number, e.g. 90 for H100>";
  if (status == cudaErrorNoDevice || status == cudaErrorInsufficientDriver)
    message += "; no usable CUDA device or driver is present";
  throw cuda_error(message);
}

[[noreturn]] inline void throw_cublas_error(cublasStatus_t status, const char* call,
                                            const char* file, int line) {
  throw cuda_error(std::string("splitmask: ") + call + " failed at " + file + ":" +
                   std::to_string(line) + ": " + cublasGetStatusName(status) + " (" +
                   cublasGetStatusString(status) + ")");
}

}  // namespace splitmask::backend::cuda

#define SPLITMASK_CUDA_CHECK(call)                                                                \
  do {                                                                                            \
    const cudaError_t splitmask_status_ = (call);                                                 \
    if (splitmask_status_ != cudaSuccess)                                                         \
      ::splitmask::backend::cuda::throw_cuda_error(splitmask_status_, #call, __FILE__, __LINE__); \
  } while (0)

#define SPLITMASK_CUBLAS_CHECK(call)                                                     \
  do {                                                                                   \
    const cublasStatus_t splitmask_status_ = (call);                                     \
    if (splitmask_status_ != CUBLAS_STATUS_SUCCESS)                                      \
      ::splitmask::backend::cuda::throw_cublas_error(splitmask_status_, #call, __FILE__, \
                                                     __LINE__);                          \
  } while (0)
