// Multi-head self-attention between the QKV and output projections (both are linear ops):
// per image and head, softmax(q k^T / sqrt(Dh)) v. The QKV layout is timm's: a token's row of
// qkv holds [q | k | v], each split into H heads of Dh. Heads are gathered into contiguous
// (B·H, n, Dh) matrices so that each product is one batched GEMM.
//
//   qkv (B, n, 3D)   out (B, n, D)   q, k, v (B·H, n, Dh)   probs (B·H, n, n)
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <type_traits>

#include "splitmask/backend/cpu/gemm.hpp"
#include "splitmask/core/error.hpp"
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

  // Assigning views writes elements: a struct of views is bound, never assigned.
  attention_saved& operator=(const attention_saved&) = delete;
};

/// Temporaries of both passes (views into a workspace that all blocks share).
template <class T, std::size_t N, std::size_t D, std::size_t H>
struct attention_scratch {
  tensor_view<T, extents<dynamic, N, D / H>> heads;       // (B·H, n, Dh): P v, then d(P v)
  tensor_view<T, extents<dynamic, N, D / H>> dq, dk, dv;  // (B·H, n, Dh)
  tensor_view<T, extents<dynamic, N, N>> d_probs;         // (B·H, n, n)

  attention_scratch& operator=(const attention_scratch&) = delete;  // see attention_saved
};

namespace detail {
// Moves between token rows (B, n, L), columns [offset, offset + D) of each row, and per-head
// matrices (B·H, n, Dh): to_heads copies rows -> heads, from_heads the reverse.
template <std::size_t N, std::size_t H, std::size_t Dh, std::size_t L, bool ToHeads, class T>
void move_heads(const T* src, T* dst, std::size_t batch, std::size_t offset) {
  parallel_for(batch, N * H * Dh, [&](std::size_t b) {
    for (std::size_t h = 0; h < H; ++h)
      for (std::size_t t = 0; t < N; ++t) {
        const std::size_t head_row = ((b * H + h) * N + t) * Dh;
        const std::size_t token_row = (b * N + t) * L + offset + h * Dh;
        const T* from = src + (ToHeads ? token_row : head_row);
        T* to = dst + (ToHeads ? head_row : token_row);
        for (std::size_t c = 0; c < Dh; ++c) to[c] = from[c];
      }
  });
}
template <std::size_t N, std::size_t H, std::size_t Dh, std::size_t L, class T>
void to_heads(const T* rows, T* heads, std::size_t batch, std::size_t offset) {
  move_heads<N, H, Dh, L, true>(rows, heads, batch, offset);
}
template <std::size_t N, std::size_t H, std::size_t Dh, std::size_t L, class T>
void from_heads(const T* heads, T* rows, std::size_t batch, std::size_t offset) {
  move_heads<N, H, Dh, L, false>(heads, rows, batch, offset);
}

// Throws unless every saved and scratch matrix holds B·H heads.
template <class T, std::size_t N, std::size_t D, std::size_t H>
void check_heads(const attention_saved<T, N, D, H>& saved,
                 const attention_scratch<T, N, D, H>& scratch, std::size_t batch, const char* op) {
  const std::size_t bh = batch * H;
  const bool ok = saved.q.batch() == bh && saved.k.batch() == bh && saved.v.batch() == bh &&
                  saved.probs.batch() == bh && scratch.heads.batch() == bh &&
                  scratch.dq.batch() == bh && scratch.dk.batch() == bh &&
                  scratch.dv.batch() == bh && scratch.d_probs.batch() == bh;
  if (!ok)
    throw shape_error(std::string("splitmask::") + op + ": the saved and scratch matrices must " +
                      "hold B·H = " + std::to_string(bh) + " heads each");
}
}  // namespace detail

/// out = concat over heads of softmax(q k^T / sqrt(Dh)) v, with q, k, v the heads of qkv.
/// Uses scratch.heads; the other scratch matrices are backward's.
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
  if (vqkv.batch() != batch)
    throw shape_error("splitmask::attention_forward: out and qkv disagree on the batch");
  detail::check_heads(saved, scratch, batch, "attention_forward");
  detail::to_heads<N, H, Dh, 3 * D>(vqkv.data(), saved.q.data(), batch, 0);
  detail::to_heads<N, H, Dh, 3 * D>(vqkv.data(), saved.k.data(), batch, D);
  detail::to_heads<N, H, Dh, 3 * D>(vqkv.data(), saved.v.data(), batch, 2 * D);
  auto p = saved.probs;
  matmul(p, saved.q, transposed(saved.k), T(1) / std::sqrt(T(Dh)));
  p = exp(p - row_max(p));  // stable softmax, row by row
  p = p / row_sum(p);
  matmul(scratch.heads, p, saved.v);
  detail::from_heads<N, H, Dh, D>(scratch.heads.data(), vo.data(), batch, 0);
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
  if (vd.batch() != batch)
    throw shape_error("splitmask::attention_backward: d_qkv and d_out disagree on the batch");
  detail::check_heads(saved, scratch, batch, "attention_backward");
  const T scale = T(1) / std::sqrt(T(Dh));
  detail::to_heads<N, H, Dh, D>(vdo.data(), scratch.heads.data(), batch, 0);
  auto dp = scratch.d_probs;
  matmul(dp, scratch.heads, transposed(saved.v));
  matmul(scratch.dv, transposed(saved.probs), scratch.heads);
  dp = saved.probs * (dp - row_sum(dp * saved.probs));  // softmax backward, in place
  matmul(scratch.dq, dp, saved.k, scale);
  matmul(scratch.dk, transposed(dp), saved.q, scale);
  detail::from_heads<N, H, Dh, 3 * D>(scratch.dq.data(), vd.data(), batch, 0);
  detail::from_heads<N, H, Dh, 3 * D>(scratch.dk.data(), vd.data(), batch, D);
  detail::from_heads<N, H, Dh, 3 * D>(scratch.dv.data(), vd.data(), batch, 2 * D);
}

}  // namespace splitmask
