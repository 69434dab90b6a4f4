// Multi-head self-attention between the QKV and output projections (both are linear ops):
// per image and head, softmax(q k^T / sqrt(Dh)) v. The QKV layout is timm's: a token's row of
// qkv holds [q | k | v], each split into H heads of Dh. Heads are gathered into contiguous
// (B·H, n, Dh) matrices so that each product is one batched GEMM.
//
//   qkv (B, n, 3D)   out (B, n, D)   q, k, v (B·H, n, Dh)   probs (B·H, n, n)
#pragma once

#include <cmath>
#include <cstddef>

#include "splitmask/backend/cpu/gemm.hpp"
#include "splitmask/ops/common.hpp"
#include "splitmask/ops/matmul.hpp"
#include "splitmask/tensor/expr/elementwise.hpp"
#include "splitmask/tensor/expr/reduce.hpp"
#include "splitmask/tensor/tensor_view.hpp"

namespace splitmask {

/// What attention_forward saves for backward (views into an activation arena).
template <class T, std::size_t N, std::size_t D, std::size_t H>
struct attention_saved {
  static_assert(D % H == 0, "splitmask: the width must be divisible by the heads");
  static constexpr std::size_t head_width = D / H;
  using heads_type = tensor_view<T, extents<dynamic, N, D / H>>;
  using scores_type = tensor_view<T, extents<dynamic, N, N>>;
  heads_type q, k, v;  // (B·H, n, Dh)
  scores_type probs;   // (B·H, n, n): softmax(q k^T / sqrt(Dh))
};

/// Temporaries of both passes (views into a workspace that all blocks share).
template <class T, std::size_t N, std::size_t D, std::size_t H>
struct attention_scratch {
  tensor_view<T, extents<dynamic, N, D / H>> heads;       // (B·H, n, Dh): P v, then d(P v)
  tensor_view<T, extents<dynamic, N, D / H>> dq, dk, dv;  // (B·H, n, Dh)
  tensor_view<T, extents<dynamic, N, N>> d_probs;         // (B·H, n, n)
};

namespace detail {
// heads(b·H + h, t, :) = rows(b, t, offset + h·Dh : offset + (h+1)·Dh)   (to_heads = true)
// and the reverse (to_heads = false). rows is (B, n, L).
template <std::size_t N, std::size_t H, std::size_t Dh, std::size_t L, class T>
void move_heads(T* heads, T* rows, std::size_t batch, std::size_t offset, bool to_heads) {
  parallel_for(batch, N * H * Dh, [&](std::size_t b) {
    for (std::size_t h = 0; h < H; ++h)
      for (std::size_t t = 0; t < N; ++t) {
        T* head_row = heads + ((b * H + h) * N + t) * Dh;
        T* token_row = rows + (b * N + t) * L + offset + h * Dh;
        if (to_heads) {
          for (std::size_t c = 0; c < Dh; ++c) head_row[c] = token_row[c];
        } else {
          for (std::size_t c = 0; c < Dh; ++c) token_row[c] = head_row[c];
        }
      }
  });
}
}  // namespace detail

/// out = concat over heads of softmax(q k^T / sqrt(Dh)) v, with q, k, v the heads of qkv.
template <class T, std::size_t N, std::size_t D, std::size_t H, class Out, class Qkv>
void attention_forward(Out&& out, const attention_saved<T, N, D, H>& saved,
                       const attention_scratch<T, N, D, H>& scratch, const Qkv& qkv) {
  const auto vo = out.view();
  const auto vqkv = qkv.view();
  detail::require_host<decltype(vo), decltype(vqkv)>();
  static_assert(
      std::is_same_v<typename decltype(vo)::extents_type, extents<dynamic, N, D>> &&
          std::is_same_v<typename decltype(vqkv)::extents_type, extents<dynamic, N, 3 * D>>,
      "splitmask::attention_forward: out is (B, n, D) and qkv (B, n, 3D)");
  constexpr std::size_t Dh = D / H;
  const std::size_t batch = vo.batch();
  if (vqkv.batch() != batch || saved.q.batch() != batch * H || saved.probs.batch() != batch * H ||
      scratch.heads.batch() != batch * H)
    throw shape_error("splitmask::attention_forward: out, qkv, saved and scratch disagree on B");
  T* qkv_data = const_cast<T*>(vqkv.data());  // only read: move_heads copies out of it
  detail::move_heads<N, H, Dh, 3 * D>(saved.q.data(), qkv_data, batch, 0, true);
  detail::move_heads<N, H, Dh, 3 * D>(saved.k.data(), qkv_data, batch, D, true);
  detail::move_heads<N, H, Dh, 3 * D>(saved.v.data(), qkv_data, batch, 2 * D, true);
  auto p = saved.probs;
  matmul(p, saved.q, transposed(saved.k), T(1) / std::sqrt(T(Dh)));
  p = exp(p - row_max(p));  // stable softmax, row by row
  p = p / row_sum(p);
  matmul(scratch.heads, p, saved.v);
  detail::move_heads<N, H, Dh, D>(scratch.heads.data(), vo.data(), batch, 0, false);
}

/// d_qkv (written) from d_out, the gradient of attention_forward's out.
///   dP = dO v^T, dS = P * (dP - rowsum(dP * P)), dq = dS k / sqrt(Dh), dk = dS^T q / sqrt(Dh),
///   dv = P^T dO.
template <class T, std::size_t N, std::size_t D, std::size_t H, class DQkv, class DOut>
void attention_backward(DQkv&& d_qkv, const attention_scratch<T, N, D, H>& scratch,
                        const DOut& d_out, const attention_saved<T, N, D, H>& saved) {
  const auto vd = d_qkv.view();
  const auto vdo = d_out.view();
  detail::require_host<decltype(vd), decltype(vdo)>();
  static_assert(std::is_same_v<typename decltype(vdo)::extents_type, extents<dynamic, N, D>> &&
                    std::is_same_v<typename decltype(vd)::extents_type, extents<dynamic, N, 3 * D>>,
                "splitmask::attention_backward: d_out is (B, n, D) and d_qkv (B, n, 3D)");
  constexpr std::size_t Dh = D / H;
  const std::size_t batch = vdo.batch();
  if (vd.batch() != batch || saved.q.batch() != batch * H || scratch.heads.batch() != batch * H)
    throw shape_error("splitmask::attention_backward: d_qkv, d_out, saved and scratch disagree");
  const T scale = T(1) / std::sqrt(T(Dh));
  detail::move_heads<N, H, Dh, D>(scratch.heads.data(), const_cast<T*>(vdo.data()), batch, 0, true);
  auto dp = scratch.d_probs;
  matmul(dp, scratch.heads, transposed(saved.v));
  matmul(scratch.dv, transposed(saved.probs), scratch.heads);
  dp = saved.probs * (dp - row_sum(dp * saved.probs));  // softmax backward, in place
  matmul(scratch.dq, dp, saved.k, scale);
  matmul(scratch.dk, transposed(dp), saved.q, scale);
  detail::move_heads<N, H, Dh, 3 * D>(scratch.dq.data(), vd.data(), batch, 0, false);
  detail::move_heads<N, H, Dh, 3 * D>(scratch.dk.data(), vd.data(), batch, D, false);
  detail::move_heads<N, H, Dh, 3 * D>(scratch.dv.data(), vd.data(), batch, 2 * D, false);
}

}  // namespace splitmask
