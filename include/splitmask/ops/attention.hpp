// Multi-head self-attention between the QKV and output projections (both are linear ops):
// per image and head, softmax(q k^T / sqrt(Dh)) v. The QKV layout is timm's: a token's row of
// qkv holds [q | k | v], each split into H heads of Dh. Each (image, head) is one task on the
// thread pool that reads its q, k, v in place (strided rows of qkv), keeps its n x n scores in
// cache and writes its columns of the output: no head copies, no n x n pass over memory beyond
// the saved probabilities. The shapes are checked at compile time; the CPU kernels take them at
// run time, so that every size shares one instantiation of Eigen's products (compile time grows
// with the token counts otherwise, and Eigen's blocked product runs the same either way).
// Tensors of other devices go to detail::device_ops.
//
//   qkv (B, n, 3D)   out (B, n, D)   probs, d_probs (B·H, n, n)
#pragma once

#include <Eigen/Core>
#include <cmath>
#include <cstddef>
#include <string>
#include <type_traits>

#include "splitmask/backend/cpu/simd.hpp"
#include "splitmask/core/config.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/ops/common.hpp"
#include "splitmask/tensor/tensor_view.hpp"

namespace splitmask {

/// What attention_forward saves for backward, besides qkv itself (views into an arena).
template <class T, std::size_t N, std::size_t D, std::size_t H, class Device = device::cpu>
struct attention_saved {
  static_assert(D % H == 0, "splitmask: the width must be divisible by the heads");
  static constexpr std::size_t head_width = D / H;
  tensor_view<T, extents<dynamic, N, N>, Device> probs;  // (B·H, n, n): softmax(q k^T / sqrt(Dh))

  // Assigning views writes elements: a struct of views is bound, never assigned.
  attention_saved& operator=(const attention_saved&) = delete;
};

/// Backward's temporary (a view into a workspace that all blocks share).
template <class T, std::size_t N, std::size_t D, std::size_t H, class Device = device::cpu>
struct attention_scratch {
  tensor_view<T, extents<dynamic, N, N>, Device> d_probs;  // (B·H, n, n)

  attention_scratch& operator=(const attention_scratch&) = delete;  // see attention_saved
};

namespace detail {
// A head's q, k, v or output: n rows of Dh that lie `stride` elements apart in token rows.
template <class T>
using head_rows = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                             Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using const_head_rows =
    Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
               Eigen::Unaligned, Eigen::OuterStride<>>;

// The sizes of one attention call: B images of n tokens of width D, in H heads.
struct attention_shape {
  std::size_t batch, n, width, heads;
  std::size_t head_width() const { return width / heads; }
};

// row = softmax(scale * row), stable (the maximum subtracted first).
template <class T>
void softmax_row(T* row, std::size_t n, T scale) {
  T max = row[0];
  for (std::size_t j = 1; j < n; ++j) max = row[j] > max ? row[j] : max;
  T sum = 0;
  if constexpr (std::is_same_v<T, float>) {
    backend::cpu::simd::for_each_pack(n, [&](std::size_t j, auto tag) {
      namespace simd = backend::cpu::simd;
      simd::store(row + j, simd::exp((simd::load(tag, row + j) - max) * scale));
    });
    for (std::size_t j = 0; j < n; ++j) sum += row[j];
  } else {
    for (std::size_t j = 0; j < n; ++j) sum += row[j] = std::exp((row[j] - max) * scale);
  }
  const T inv = T(1) / sum;
  for (std::size_t j = 0; j < n; ++j) row[j] *= inv;
}

template <class Probs>
void check_heads(const Probs& probs, std::size_t batch, std::size_t heads, const char* op) {
  if (probs.batch() != batch * heads)
    throw shape_error(std::string("splitmask::") + op + ": the probabilities must hold B·H = " +
                      std::to_string(batch * heads) + " heads");
}

template <class T>
SPLITMASK_KERNEL void attention_forward_cpu(T* out, T* probs, const T* qkv, attention_shape s) {
  const std::size_t n = s.n, D = s.width, H = s.heads, Dh = s.head_width();
  const auto rows = Eigen::Index(n), cols = Eigen::Index(Dh);
  const T scale = T(1) / std::sqrt(T(Dh));
  parallel_for(s.batch * H, n * n * Dh, [&](std::size_t bh) {
    const std::size_t b = bh / H, h = bh % H;
    const T* in = qkv + b * n * 3 * D + h * Dh;
    const Eigen::OuterStride<> qkv_stride{Eigen::Index(3 * D)};
    const const_head_rows<T> q(in, rows, cols, qkv_stride), k(in + D, rows, cols, qkv_stride),
        v(in + 2 * D, rows, cols, qkv_stride);
    T* p_data = probs + bh * n * n;
    head_rows<T> p(p_data, rows, rows, Eigen::OuterStride<>(rows));
    p.noalias() = q * k.transpose();
    for (std::size_t i = 0; i < n; ++i) softmax_row(p_data + i * n, n, scale);
    head_rows<T> o(out + b * n * D + h * Dh, rows, cols, Eigen::OuterStride<>(Eigen::Index(D)));
    o.noalias() = p * v;
  });
}

template <class T>
SPLITMASK_KERNEL void attention_backward_cpu(T* d_qkv, T* d_probs, const T* d_out, const T* probs,
                                             const T* qkv, attention_shape s) {
  const std::size_t n = s.n, D = s.width, H = s.heads, Dh = s.head_width();
  const auto rows = Eigen::Index(n), cols = Eigen::Index(Dh);
  const T scale = T(1) / std::sqrt(T(Dh));
  parallel_for(s.batch * H, 2 * n * n * Dh, [&](std::size_t bh) {
    const std::size_t b = bh / H, h = bh % H;
    const Eigen::OuterStride<> qkv_stride{Eigen::Index(3 * D)}, out_stride{Eigen::Index(D)},
        n_stride{rows};
    const T* in = qkv + b * n * 3 * D + h * Dh;
    const const_head_rows<T> q(in, rows, cols, qkv_stride), k(in + D, rows, cols, qkv_stride),
        v(in + 2 * D, rows, cols, qkv_stride);
    T* d_in = d_qkv + b * n * 3 * D + h * Dh;
    head_rows<T> dq(d_in, rows, cols, qkv_stride), dk(d_in + D, rows, cols, qkv_stride),
        dv(d_in + 2 * D, rows, cols, qkv_stride);
    const const_head_rows<T> d_o(d_out + b * n * D + h * Dh, rows, cols, out_stride);
    const T* p_data = probs + bh * n * n;
    T* ds_data = d_probs + bh * n * n;
    const const_head_rows<T> p(p_data, rows, rows, n_stride);
    head_rows<T> ds(ds_data, rows, rows, n_stride);
    ds.noalias() = d_o * v.transpose();  // dP, then dS in place
    dv.noalias() = p.transpose() * d_o;
    for (std::size_t i = 0; i < n; ++i) {  // softmax backward, in place
      T* d_row = ds_data + i * n;
      const T* p_row = p_data + i * n;
      T dot = 0;
      for (std::size_t j = 0; j < n; ++j) dot += d_row[j] * p_row[j];
      for (std::size_t j = 0; j < n; ++j) d_row[j] = p_row[j] * (d_row[j] - dot);
    }
    dq.noalias() = scale * (ds * k);
    dk.noalias() = scale * (ds.transpose() * q);
  });
}
}  // namespace detail

/// out = concat over heads of softmax(q k^T / sqrt(Dh)) v, with q, k, v the heads of qkv.
/// Backward needs qkv and saved.probs as they are on return.
template <class T, std::size_t N, std::size_t D, std::size_t H, class Dev, class Out, class Qkv>
void attention_forward(Out&& out, const attention_saved<T, N, D, H, Dev>& saved, const Qkv& qkv) {
  const auto views = detail::views_on_one_device(out, saved.probs, qkv);
  views([&](auto dev, auto vo, auto vp, auto vqkv) {
    using Device = decltype(dev);
    static_assert(
        std::is_same_v<typename decltype(vo)::extents_type, extents<dynamic, N, D>> &&
            std::is_same_v<typename decltype(vqkv)::extents_type, extents<dynamic, N, 3 * D>>,
        "splitmask::attention_forward: out is (B, n, D) and qkv (B, n, 3D)");
    const std::size_t batch = vo.batch();
    if (vqkv.batch() != batch)
      throw shape_error("splitmask::attention_forward: out and qkv disagree on the batch");
    detail::check_heads(vp, batch, H, "attention_forward");
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      detail::device_ops<Device>::template attention_forward<T, N, D, H>(vo.data(), vp.data(),
                                                                         vqkv.data(), batch);
    } else {
      detail::attention_forward_cpu<T>(vo.data(), vp.data(), vqkv.data(), {batch, N, D, H});
    }
  });
}

/// d_qkv (written) from d_out, the gradient of attention_forward's out; qkv and saved as the
/// forward left them.
///   dP = dO v^T, dS = P * (dP - rowsum(dP * P)), dq = dS k / sqrt(Dh), dk = dS^T q / sqrt(Dh),
///   dv = P^T dO.
template <class T, std::size_t N, std::size_t D, std::size_t H, class Dev, class DQkv, class DOut,
          class Qkv>
void attention_backward(DQkv&& d_qkv, const attention_scratch<T, N, D, H, Dev>& scratch,
                        const DOut& d_out, const attention_saved<T, N, D, H, Dev>& saved,
                        const Qkv& qkv) {
  const auto views = detail::views_on_one_device(d_qkv, scratch.d_probs, d_out, saved.probs, qkv);
  views([&](auto dev, auto vd, auto vdp, auto vdo, auto vp, auto vqkv) {
    using Device = decltype(dev);
    static_assert(
        std::is_same_v<typename decltype(vdo)::extents_type, extents<dynamic, N, D>> &&
            std::is_same_v<typename decltype(vd)::extents_type, extents<dynamic, N, 3 * D>> &&
            std::is_same_v<typename decltype(vqkv)::extents_type, extents<dynamic, N, 3 * D>>,
        "splitmask::attention_backward: d_out is (B, n, D), d_qkv and qkv (B, n, 3D)");
    const std::size_t batch = vdo.batch();
    if (vd.batch() != batch || vqkv.batch() != batch)
      throw shape_error(
          "splitmask::attention_backward: d_qkv, d_out and qkv disagree on the batch");
    detail::check_heads(vp, batch, H, "attention_backward");
    detail::check_heads(vdp, batch, H, "attention_backward");
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      detail::device_ops<Device>::template attention_backward<T, N, D, H>(
          vd.data(), vdp.data(), vdo.data(), vp.data(), vqkv.data(), batch);
    } else {
      detail::attention_backward_cpu<T>(vd.data(), vdp.data(), vdo.data(), vp.data(), vqkv.data(),
                                        {batch, N, D, H});
    }
  });
}

}  // namespace splitmask
