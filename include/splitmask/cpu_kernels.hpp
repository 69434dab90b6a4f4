// The host kernels that every model size shares (the GEMM libraries and Eigen's products,
// attention, LayerNorm, column sums, token gathers), compiled once in a program of several
// translation units. A unit that includes this header after the library's headers declares
// their float instances extern: it calls them without compiling them. Exactly one unit of the
// program defines SPLITMASK_COMPILE_CPU_KERNELS before including it and compiles them. Programs
// of one unit need neither: every unit compiles what it uses otherwise.
//
//   // every unit                       // one unit
//   #include <splitmask/splitmask.hpp>  #define SPLITMASK_COMPILE_CPU_KERNELS
//   #include <splitmask/cpu_kernels.hpp>  #include <splitmask/cpu_kernels.hpp>
#pragma once

#include <cstdint>

#include "splitmask/backend/cpu/gemm.hpp"
#include "splitmask/core/backend.hpp"
#include "splitmask/ops/attention.hpp"
#include "splitmask/ops/layernorm.hpp"
#include "splitmask/ops/linear.hpp"
#include "splitmask/ops/tokens.hpp"

#if defined(SPLITMASK_COMPILE_CPU_KERNELS)
#define SPLITMASK_CPU_KERNEL_INSTANCE template
#else
#define SPLITMASK_CPU_KERNEL_INSTANCE extern template
#endif

namespace splitmask {
namespace backend::cpu {
SPLITMASK_CPU_KERNEL_INSTANCE void gemm_with<float>(gemm_library, const gemm_args<float>&);
}  // namespace backend::cpu

namespace detail {
SPLITMASK_CPU_KERNEL_INSTANCE void attention_forward_cpu<float>(float*, float*, const float*,
                                                                attention_shape);
SPLITMASK_CPU_KERNEL_INSTANCE void attention_backward_cpu<float>(float*, float*, const float*,
                                                                 const float*, const float*,
                                                                 attention_shape);
SPLITMASK_CPU_KERNEL_INSTANCE void layernorm_forward_cpu<float>(float*, float*, float*,
                                                                const float*, const float*,
                                                                const float*, std::size_t,
                                                                std::size_t, double);
SPLITMASK_CPU_KERNEL_INSTANCE void layernorm_backward_cpu<float>(float*, float*, float*,
                                                                 const float*, const float*,
                                                                 const float*, const float*,
                                                                 const float*, std::size_t,
                                                                 std::size_t, bool);
SPLITMASK_CPU_KERNEL_INSTANCE void add_column_sums_cpu<float>(float*, const float*, std::size_t,
                                                              std::size_t);
SPLITMASK_CPU_KERNEL_INSTANCE void gather_tokens_cpu<float, std::int32_t>(float*, const float*,
                                                                          const std::int32_t*,
                                                                          token_subset_size);
SPLITMASK_CPU_KERNEL_INSTANCE void scatter_tokens_cpu<float, std::int32_t>(float*, const float*,
                                                                           const std::int32_t*,
                                                                           token_subset_size, bool);
}  // namespace detail
}  // namespace splitmask

#undef SPLITMASK_CPU_KERNEL_INSTANCE
