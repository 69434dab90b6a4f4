// The CUDA path of splitmask: device tensors, expression kernels, cuBLAS products, and the
// kernels of the model's ops (backend/cuda/ops.cuh), so that the model, the split sampler, AdamW
// and splitmask_trainer<Config, float, device::cuda> run on the GPU. Include it in translation
// units compiled by nvcc; the model's headers come with <splitmask/splitmask.hpp>, which a
// .cu file may include too (its host code is compiled by the host compiler).
#pragma once

#if !defined(__CUDACC__)
#error \
    "<splitmask/cuda.hpp> must be compiled by nvcc (a .cu file); use <splitmask/splitmask.hpp> for the CPU path"
#endif

#include "splitmask/backend/cpu/evaluate.hpp"
#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/backend/cuda/evaluate.cuh"
#include "splitmask/backend/cuda/gemm.cuh"
#include "splitmask/backend/cuda/memory.cuh"
#include "splitmask/backend/cuda/ops.cuh"
#include "splitmask/core/config.hpp"
#include "splitmask/core/device.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/core/extents.hpp"
#include "splitmask/core/rng.hpp"
#include "splitmask/ops/matmul.hpp"
#include "splitmask/tensor/copy.hpp"
#include "splitmask/tensor/expr/elementwise.hpp"
#include "splitmask/tensor/expr/random.hpp"
#include "splitmask/tensor/expr/reduce.hpp"
#include "splitmask/tensor/tensor.hpp"
#include "splitmask/tensor/tensor_view.hpp"
