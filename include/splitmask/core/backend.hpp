// The per-device customisation points. Each backend specialises these primary templates for its
// device tag; using a device whose backend is not included is a compile error that says which
// header to include.
//   allocator<D>         zeroed allocation and release (tensor/storage.hpp, backend/cuda)
//   copier<Dst, Src>     byte copies between devices (tensor/copy.hpp, backend/cuda)
//   evaluate_backend<D>  the loop of `destination = expression` (backend/cpu, backend/cuda)
//   gemm_backend<D>      the products behind matmul, given a gemm_args (backend/cpu, /cuda)
#pragma once

#include <cstddef>

#include "splitmask/core/device.hpp"

namespace splitmask {

/// What the GEMM backends receive: row-major, contiguous matrices, `batch` of each at strides
/// m*k (A), k*n (B) and m*n (C).
template <class T>
struct gemm_args {
  bool transpose_a = false;
  bool transpose_b = false;
  std::size_t m = 0, n = 0, k = 0;
  T alpha = 1;
  const T* a = nullptr;  // (m, k), or (k, m) when transpose_a
  const T* b = nullptr;  // (k, n), or (n, k) when transpose_b
  T beta = 0;
  T* c = nullptr;  // (m, n)
  std::size_t batch = 1;
};

}  // namespace splitmask

namespace splitmask::detail {

template <class Device>
struct allocator {
  static_assert(dependent_false<Device>,
                "splitmask: no allocator for this device. CUDA tensors need <splitmask/cuda.hpp> "
                "in a translation unit compiled by nvcc");
};

template <class Dst, class Src>
struct copier {
  static_assert(dependent_false<Dst, Src>,
                "splitmask: copies involving CUDA tensors need <splitmask/cuda.hpp> in a "
                "translation unit compiled by nvcc");
};

template <class Device>
struct evaluate_backend {
  static_assert(dependent_false<Device>,
                "splitmask: no evaluation backend for this device. CUDA tensors need "
                "<splitmask/cuda.hpp> in a translation unit compiled by nvcc");
};

template <class Device>
struct gemm_backend {
  static_assert(dependent_false<Device>,
                "splitmask: no GEMM backend for this device: include <splitmask/splitmask.hpp> "
                "(CPU) or <splitmask/cuda.hpp> (CUDA, cuBLAS, compiled by nvcc)");
};

template <class Device>
struct device_ops {
  static_assert(dependent_false<Device>,
                "splitmask: the model's ops on CUDA tensors need <splitmask/cuda.hpp> in a "
                "translation unit compiled by nvcc");
};

}  // namespace splitmask::detail
