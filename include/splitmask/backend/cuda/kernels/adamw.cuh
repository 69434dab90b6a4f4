// CUDA kernels for train/adamw.hpp: one AdamW update of every parameter segment in a single
// launch, and the global sum of squared gradients (for the gradient norm) in two. The segments
// are cut on the host into chunks of at most adamw_chunk_size elements of one segment each,
// stored once in device memory; a block handles a chunk.
//
// The update does the CPU's operations in the CPU's order and precision (T where it uses T,
// double for the per-segment scalars); every operation is an explicitly rounded intrinsic, so
// the compiler fuses nothing into an FMA and -use_fast_math cannot make the division or the
// square root approximate: the bits equal a CPU build that does not contract a·b + c either
// (only the flush of denormals under -ftz=true could differ). The squared-gradient sum is
// accumulated in double and is deterministic (fixed block shape, partial sums added in a fixed
// tree), but not bit-equal to the CPU's sequential sum.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/backend/cuda/evaluate.cuh"
#include "splitmask/backend/cuda/kernels/reduce.cuh"
#include "splitmask/core/config.hpp"

namespace splitmask::backend::cuda::kernels {

/// Elements per chunk: 16 per thread of a 256-thread block.
inline constexpr std::size_t adamw_chunk_size = 4096;

/// A run of at most adamw_chunk_size elements of one parameter segment (device pointers).
template <class T>
struct adamw_chunk {
  T* values;
  const T* gradients;
  std::size_t moment_offset;  // of values[0] in the moment buffers
  unsigned count;             // elements, 1..adamw_chunk_size
  int decay;                  // nonzero: the segment takes weight decay
  double lr_scale;            // the segment's learning rate is lr · lr_scale
};

/// A parameter segment as adamw registers it (device pointers; moment_offset its offset into
/// the moment buffers, adamw::segment::offset).
template <class T>
struct adamw_segment_ref {
  T* values;
  const T* gradients;
  std::size_t size;
  bool decay;
  double lr_scale;
  std::size_t moment_offset;
};

/// The chunks of `segments`, in segment order, each segment cut into runs of adamw_chunk_size
/// (the last one shorter); empty segments give none. Copy the result to device memory once.
template <class T>
std::vector<adamw_chunk<T>> make_adamw_chunks(const std::vector<adamw_segment_ref<T>>& segments) {
  std::vector<adamw_chunk<T>> chunks;
  for (const auto& s : segments)
    for (std::size_t begin = 0; begin < s.size; begin += adamw_chunk_size)
      chunks.push_back({s.values + begin, s.gradients + begin, s.moment_offset + begin,
                        static_cast<unsigned>(std::min(adamw_chunk_size, s.size - begin)),
                        s.decay ? 1 : 0, s.lr_scale});
  return chunks;
}

/// One step's scalars. step counts from 1 (already incremented, as adamw::steps() after it).
struct adamw_scalars {
  double lr, beta1, beta2, eps, weight_decay, grad_scale;
  std::uint64_t step;
};

namespace detail {
// Rounded arithmetic that the compiler may not fuse (a·b + c stays two roundings). On the host
// (a check of the kernel's arithmetic against adamw::step) the plain operators.
#if defined(__CUDA_ARCH__)
__device__ inline float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ inline float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ inline double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ inline float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ inline double sub_rn(double a, double b) { return __dsub_rn(a, b); }
__device__ inline float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ inline double div_rn(double a, double b) { return __ddiv_rn(a, b); }
__device__ inline float sqrt_rn(float a) { return __fsqrt_rn(a); }
__device__ inline double sqrt_rn(double a) { return __dsqrt_rn(a); }
#else
template <class T>
__host__ inline T mul_rn(T a, T b) { return a * b; }
template <class T>
__host__ inline T add_rn(T a, T b) { return a + b; }
template <class T>
__host__ inline T sub_rn(T a, T b) { return a - b; }
template <class T>
__host__ inline T div_rn(T a, T b) { return a / b; }
__host__ inline float sqrt_rn(float a) { return std::sqrt(a); }
__host__ inline double sqrt_rn(double a) { return std::sqrt(a); }
#endif

/// The step's scalars as the kernel uses them: the T ones converted on the host exactly as the
/// CPU converts them, the bias corrections computed there with the CPU's std::pow and std::sqrt.
template <class T>
struct adamw_kernel_scalars {
  double lr, weight_decay, correction1;  // correction1 = 1 - b1^t
  T b1, b2, one_minus_b1, one_minus_b2;  // T(b1), T(b2), 1 - T(b1), 1 - T(b2)
  T grad_scale, inv_c2, eps;             // T(grad_scale), T(1 / sqrt(1 - b2^t)), T(eps)
};
}  // namespace detail

namespace detail {
/// A chunk's step size and decay factor, as adamw::step computes its segment's:
/// segment_lr = lr·lr_scale; step_size = T(segment_lr / correction1); decay = T(1 -
/// segment_lr·wd), or 1 for a segment without decay.
template <class T>
SPLITMASK_HD inline void adamw_chunk_factors(const adamw_kernel_scalars<T>& s, double lr_scale,
                                             bool decays, T& step_size, T& decay) {
  const double segment_lr = mul_rn(s.lr, lr_scale);
  step_size = static_cast<T>(div_rn(segment_lr, s.correction1));
  decay = decays ? static_cast<T>(sub_rn(1.0, mul_rn(segment_lr, s.weight_decay))) : T(1);
}

/// One element's update, in adamw::step's order of operations:
///   g' = g·scale;  m = b1·m + (1 - b1)·g';  v = b2·v + ((1 - b2)·g')·g'
///   p = p·decay - (step_size·m) / (sqrt(v)·inv_c2 + eps)
template <class T>
SPLITMASK_HD inline void adamw_element(T& p, T& m, T& v, T g, const adamw_kernel_scalars<T>& s,
                                       T step_size, T decay) {
  const T gs = mul_rn(g, s.grad_scale);
  const T mi = add_rn(mul_rn(s.b1, m), mul_rn(s.one_minus_b1, gs));
  const T vi = add_rn(mul_rn(s.b2, v), mul_rn(mul_rn(s.one_minus_b2, gs), gs));
  m = mi;
  v = vi;
  const T denominator = add_rn(mul_rn(sqrt_rn(vi), s.inv_c2), s.eps);
  p = sub_rn(mul_rn(p, decay), div_rn(mul_rn(step_size, mi), denominator));
}

/// The kernel's scalars for one step, computed on the host with the CPU's expressions (the
/// same std::pow and std::sqrt, the same conversions to T).
template <class T>
adamw_kernel_scalars<T> make_adamw_kernel_scalars(const adamw_scalars& s) {
  const double b1 = s.beta1, b2 = s.beta2;
  const double correction1 = 1 - std::pow(b1, double(s.step));
  const double correction2_sqrt = std::sqrt(1 - std::pow(b2, double(s.step)));
  adamw_kernel_scalars<T> k{};
  k.lr = s.lr;
  k.weight_decay = s.weight_decay;
  k.correction1 = correction1;
  k.b1 = T(b1);
  k.b2 = T(b2);
  k.one_minus_b1 = 1 - k.b1;  // in T, as the CPU's (1 - tb1)
  k.one_minus_b2 = 1 - k.b2;
  k.grad_scale = T(s.grad_scale);
  k.inv_c2 = T(1 / correction2_sqrt);
  k.eps = T(s.eps);
  return k;
}
}  // namespace detail

// A block per chunk (chunks beyond gridDim.x by a loop); a thread per element. The chunks of one
// call cover disjoint elements, so no two threads touch the same p, m or v.
template <class T>
__global__ void __launch_bounds__(threads_per_block)
    adamw_update_kernel(const adamw_chunk<T>* __restrict__ chunks, std::size_t chunk_count,
                        T* __restrict__ first_moment, T* __restrict__ second_moment,
                        const detail::adamw_kernel_scalars<T> s) {
  for (std::size_t ci = blockIdx.x; ci < chunk_count; ci += gridDim.x) {
    const adamw_chunk<T> chunk = chunks[ci];
    T step_size, decay;
    detail::adamw_chunk_factors(s, chunk.lr_scale, chunk.decay != 0, step_size, decay);
    T* m = first_moment + chunk.moment_offset;
    T* v = second_moment + chunk.moment_offset;
    for (unsigned e = threadIdx.x; e < chunk.count; e += blockDim.x)
      detail::adamw_element(chunk.values[e], m[e], v[e], chunk.gradients[e], s, step_size, decay);
  }
}

// Pass 1: a block per chunk writes the chunk's sum of g² (double) to partial[chunk].
template <class T>
__global__ void __launch_bounds__(threads_per_block)
    gradient_squares_kernel(const adamw_chunk<T>* __restrict__ chunks, std::size_t chunk_count,
                            double* __restrict__ partial) {
  __shared__ double shared[warp_lanes];
  for (std::size_t ci = blockIdx.x; ci < chunk_count; ci += gridDim.x) {  // same for the block
    const adamw_chunk<T> chunk = chunks[ci];
    double sum = 0;
    for (unsigned e = threadIdx.x; e < chunk.count; e += blockDim.x) {
      const double g = static_cast<double>(chunk.gradients[e]);
      sum += g * g;
    }
    sum = block_sum(sum, shared);  // ends with a barrier: shared is free for the next chunk
    if (threadIdx.x == 0) partial[ci] = sum;
  }
}

/// One AdamW step over every chunk (a device array of chunk_count chunks from
/// make_adamw_chunks): values, and the moments at each chunk's moment_offset, updated as
/// adamw::step(s.lr, s.grad_scale) does at step s.step.
template <class T>
void adamw_update(const adamw_chunk<T>* chunks, std::size_t chunk_count, T* first_moment,
                  T* second_moment, const adamw_scalars& s) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "splitmask: adamw_update works on float or double");
  if (chunk_count == 0) return;
  const auto k = detail::make_adamw_kernel_scalars<T>(s);
  auto& ctx = context::current();
  adamw_update_kernel<T><<<grid_for(chunk_count, 1, ctx), threads_per_block, 0, ctx.stream()>>>(
      chunks, chunk_count, first_moment, second_moment, k);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
}

/// The sum over every chunk's gradients of g², accumulated in double; waits for the device.
/// Deterministic: the same chunks give the same bits on every call.
template <class T>
double gradient_sum_of_squares(const adamw_chunk<T>* chunks, std::size_t chunk_count) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "splitmask: gradient_sum_of_squares works on float or double");
  if (chunk_count == 0) return 0;
  auto& ctx = context::current();
  // partial[0 .. chunk_count) then the total; valid for this call only.
  auto* partial = static_cast<double*>(ctx.scratch((chunk_count + 1) * sizeof(double)));
  double* total = partial + chunk_count;
  gradient_squares_kernel<T><<<grid_for(chunk_count, 1, ctx), threads_per_block, 0,
                               ctx.stream()>>>(chunks, chunk_count, partial);
  SPLITMASK_CUDA_CHECK(cudaGetLastError());
  return sum_to_host(partial, chunk_count, total);
}

}  // namespace splitmask::backend::cuda::kernels
