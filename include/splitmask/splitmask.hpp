// The CPU path of splitmask in one include: shapes, tensors, expressions, matmul, random
// numbers. <splitmask/cuda.hpp> adds the CUDA path (nvcc only).
#pragma once

#include "splitmask/backend/cpu/evaluate.hpp"
#include "splitmask/backend/cpu/gemm.hpp"
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
