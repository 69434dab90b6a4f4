// The model's ops on CUDA tensors: device_ops<device::cuda> is what ops/*.hpp, the split
// sampler, the device tokenizer and AdamW call for tensors on the device, after their host-side
// shape checks. Each entry forwards raw pointers and compile-time sizes to one kernel launcher
// of backend/cuda/kernels/; this file only adds what joins them to the library's types (AdamW's
// chunk table).
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/backend/cuda/kernels/adamw.cuh"
#include "splitmask/backend/cuda/kernels/attention.cuh"
#include "splitmask/backend/cuda/kernels/column_sums.cuh"
#include "splitmask/backend/cuda/kernels/cross_entropy.cuh"
#include "splitmask/backend/cuda/kernels/infonce.cuh"
#include "splitmask/backend/cuda/kernels/layernorm.cuh"
#include "splitmask/backend/cuda/kernels/patchify.cuh"
#include "splitmask/backend/cuda/kernels/split_sampler.cuh"
#include "splitmask/backend/cuda/kernels/tokenizer.cuh"
#include "splitmask/backend/cuda/kernels/tokens.cuh"
#include "splitmask/backend/cuda/memory.cuh"
#include "splitmask/core/backend.hpp"
#include "splitmask/core/device.hpp"
#include "splitmask/tensor/storage.hpp"

namespace splitmask::detail {

template <>
struct device_ops<device::cuda> {
  // ---- LayerNorm, column sums (bias gradients) ----
  template <class T, std::size_t D>
  static void layernorm_forward(T* y, T* mean, T* rstd, const T* x, const T* gamma, const T* beta,
                                std::size_t rows, double eps) {
    backend::cuda::kernels::layernorm_forward<T, D>(y, mean, rstd, x, gamma, beta, rows, eps);
  }
  template <class T, std::size_t D>
  static void layernorm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean,
                                 const T* rstd, const T* gamma, std::size_t rows, bool accumulate) {
    backend::cuda::kernels::layernorm_backward<T, D>(dx, dgamma, dbeta, dy, x, mean, rstd, gamma,
                                                     rows, accumulate);
  }
  template <class T>
  static void add_column_sums(T* sums, const T* matrix, std::size_t rows, std::size_t cols) {
    backend::cuda::kernels::add_column_sums<T>(sums, matrix, rows, cols);
  }

  // ---- Attention ----
  template <class T, std::size_t N, std::size_t D, std::size_t H>
  static void attention_forward(T* out, T* probs, const T* qkv, std::size_t batch) {
    backend::cuda::kernels::attention_forward<T, N, D, H>(out, probs, qkv, batch);
  }
  template <class T, std::size_t N, std::size_t D, std::size_t H>
  static void attention_backward(T* d_qkv, T* d_probs, const T* d_out, const T* probs, const T* qkv,
                                 std::size_t batch) {
    backend::cuda::kernels::attention_backward<T, N, D, H>(d_qkv, d_probs, d_out, probs, qkv,
                                                           batch);
  }

  // ---- Losses: the mean cross-entropy and InfoNCE come back to the host (they wait) ----
  template <class T, std::size_t K>
  static double cross_entropy_forward(T* lse, const T* logits, const std::int32_t* targets,
                                      std::size_t rows) {
    return backend::cuda::kernels::cross_entropy_forward<T, K>(lse, logits, targets, rows);
  }
  template <class T, std::size_t K>
  static void cross_entropy_backward(T* d_logits, const T* logits, const T* lse,
                                     const std::int32_t* targets, std::size_t rows, T g) {
    backend::cuda::kernels::cross_entropy_backward<T, K>(d_logits, logits, lse, targets, rows, g);
  }
  template <class T, std::size_t D>
  static double infonce_forward(T* q_a, T* q_b, T* norm_a, T* norm_b, T* row_softmax,
                                T* column_softmax, double* work, const T* p_a, const T* p_b,
                                std::size_t batch, double tau) {
    return backend::cuda::kernels::infonce_forward<T, D>(
        q_a, q_b, norm_a, norm_b, row_softmax, column_softmax, work, p_a, p_b, batch, tau);
  }
  template <class T, std::size_t D>
  static void infonce_backward(T* dp_a, T* dp_b, const T* q_a, const T* q_b, const T* norm_a,
                               const T* norm_b, const T* row_softmax, const T* column_softmax,
                               double* work, std::size_t batch, double tau, double scale) {
    backend::cuda::kernels::infonce_backward<T, D>(
        dp_a, dp_b, q_a, q_b, norm_a, norm_b, row_softmax, column_softmax, work, batch, tau, scale);
  }

  // ---- Token subsets, pooling, patches ----
  template <std::size_t N, std::size_t n, std::size_t W, class T>
  static void gather_tokens(T* subset, const T* all, const std::int32_t* index, std::size_t batch) {
    backend::cuda::kernels::gather_tokens<T, N, n, W>(subset, all, index, batch);
  }
  template <std::size_t N, std::size_t n, std::size_t W, class T>
  static void scatter_tokens(T* all, const T* subset, const std::int32_t* index, std::size_t batch,
                             bool accumulate) {
    backend::cuda::kernels::scatter_tokens<T, N, n, W>(all, subset, index, batch, accumulate);
  }
  template <std::size_t N, std::size_t n>
  static void gather_ids(std::int32_t* targets, const std::int32_t* ids, const std::int32_t* index,
                         std::size_t batch) {
    backend::cuda::kernels::gather_ids<N, n>(targets, ids, index, batch);
  }
  template <std::size_t n, std::size_t W, class T>
  static void mean_tokens_forward(T* pooled, const T* tokens, std::size_t batch) {
    backend::cuda::kernels::mean_tokens_forward<T, n, W>(pooled, tokens, batch);
  }
  template <std::size_t n, std::size_t W, class T>
  static void mean_tokens_backward(T* d_tokens, const T* d_pooled, std::size_t batch,
                                   bool accumulate) {
    backend::cuda::kernels::mean_tokens_backward<T, n, W>(d_tokens, d_pooled, batch, accumulate);
  }
  /// Images to patches (ToPatches) or back; the source is read-only.
  template <std::size_t C, std::size_t S, std::size_t P, bool ToPatches, class I, class Q>
  static void move_patches(I* images, Q* patches, std::size_t batch) {
    using T = std::remove_const_t<I>;
    backend::cuda::kernels::move_patches<T, C, S, P, ToPatches>(const_cast<T*>(images),
                                                                const_cast<T*>(patches), batch);
  }

  // ---- The tokenizer and the split ----
  template <std::size_t C, std::size_t P>
  static void standardise_patches(float* out, const float* patches, std::size_t rows,
                                  const std::array<float, C>& mean,
                                  const std::array<float, C>& std_dev) {
    backend::cuda::kernels::standardise_patches<C, P>(out, patches, rows, mean, std_dev);
  }
  template <std::size_t K>
  static void row_argmax(std::int32_t* ids, const float* scores, std::size_t rows) {
    backend::cuda::kernels::row_argmax<K>(ids, scores, rows);
  }
  template <std::size_t N, std::size_t N_A>
  static void sample_split(std::int32_t* index_a, std::int32_t* index_b, std::size_t batch,
                           std::uint64_t seed, std::uint64_t stream, std::uint64_t first_image) {
    backend::cuda::kernels::sample_split<N, N_A>(index_a, index_b, batch, seed, stream,
                                                 first_image);
  }

  /// Runs f with this thread's products in exact fp32 (the tokenizer's: its targets must not
  /// depend on the model's precision), then restores the precision.
  template <class F>
  static void with_exact_products(F&& f) {
    auto& ctx = backend::cuda::context::current();
    const auto saved = ctx.precision();
    if (saved == backend::cuda::matmul_precision::fp32) return f();
    backend::cuda::set_matmul_precision(backend::cuda::matmul_precision::fp32);
    try {
      f();
    } catch (...) {
      backend::cuda::set_matmul_precision(saved);
      throw;
    }
    backend::cuda::set_matmul_precision(saved);
  }

  // ---- AdamW: every segment in one launch, from a chunk table built at the first use ----
  template <class Segment, class T, class Options>
  static void adamw_step(const std::vector<Segment>& segments,
                         buffer<std::byte, device::cuda>& table, T* first, T* second,
                         const Options& options, std::uint64_t steps, double lr,
                         double grad_scale) {
    const auto chunks = chunk_table<T>(segments, table);
    backend::cuda::kernels::adamw_scalars s{
        lr, options.beta1, options.beta2, options.eps, options.weight_decay, grad_scale, steps};
    backend::cuda::kernels::adamw_update<T>(chunks.first, chunks.second, first, second, s);
  }
  /// The global L2 norm of the gradients; waits for the device and reports any kernel's
  /// out-of-range input of the step (the last place a step waits before its update).
  template <class Segment>
  static double adamw_gradient_norm(const std::vector<Segment>& segments,
                                    buffer<std::byte, device::cuda>& table) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(Segment::values)>>;
    const auto chunks = chunk_table<T>(segments, table);
    const double sum =
        backend::cuda::kernels::gradient_sum_of_squares<T>(chunks.first, chunks.second);
    backend::cuda::context::current().check_errors("the training step");
    return std::sqrt(sum);
  }

 private:
  // The device table of segments' chunks: built and copied once, then reused by every step.
  template <class T, class Segment>
  static std::pair<const backend::cuda::kernels::adamw_chunk<T>*, std::size_t> chunk_table(
      const std::vector<Segment>& segments, buffer<std::byte, device::cuda>& table) {
    using chunk = backend::cuda::kernels::adamw_chunk<T>;
    std::size_t count = 0;
    for (const auto& s : segments)
      count += (s.size + backend::cuda::kernels::adamw_chunk_size - 1) /
               backend::cuda::kernels::adamw_chunk_size;
    if (table.size() != count * sizeof(chunk)) {
      std::vector<backend::cuda::kernels::adamw_segment_ref<T>> refs;
      for (const auto& s : segments)
        refs.push_back({s.values, s.gradients, s.size, s.decay, s.lr_scale, s.offset});
      const auto chunks = backend::cuda::kernels::make_adamw_chunks<T>(refs);
      table = buffer<std::byte, device::cuda>(chunks.size() * sizeof(chunk));
      copier<device::cuda, device::cpu>::run(table.data(), chunks.data(), table.size());
    }
    return {reinterpret_cast<const chunk*>(table.data()), count};
  }
};

}  // namespace splitmask::detail
