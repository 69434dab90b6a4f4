// The per-device customisation points. Each backend specialises these primary templates for its
// device tag; using a device whose backend is not included is a compile error that says which
// header to include.
//   allocator<D>          zeroed allocation and release             (tensor/storage.hpp,
//   backend/cuda) copier<Dst, Src>      byte copies between devices               (tensor/copy.hpp,
//   backend/cuda) evaluate_backend<D>   the loop of `destination = expression`    (backend/cpu,
//   backend/cuda) gemm_backend<D>       the matrix products behind matmul         (backend/cpu,
//   backend/cuda)
#pragma once

#include "splitmask/core/device.hpp"

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
