// The pre-norm Transformer block of ViT, shared by the encoder and the SplitMask decoder:
//   x += proj(attention(qkv(LN1(x))));   x += fc2(GELU(fc1(LN2(x))))
// with the residual adds fused into the projections' GEMMs. Parameters, saved activations and
// the workspace are views into arenas on the block's device; the token count n is a
// compile-time constant.
//
// Legend: B batch, n tokens (N, N_A or N_B), D width, H heads, Dh = D/H, M MLP width.
#pragma once

#include <cstddef>
#include <string>

#include "splitmask/model/arena.hpp"
#include "splitmask/model/init.hpp"
#include "splitmask/ops/attention.hpp"
#include "splitmask/ops/gelu.hpp"
#include "splitmask/ops/layernorm.hpp"
#include "splitmask/ops/linear.hpp"

namespace splitmask {

template <class T, std::size_t D, std::size_t H, std::size_t M, class Device = device::cpu>
struct transformer_block {
  template <std::size_t... E>
  using view = tensor_view<T, extents<E...>, Device>;

  /// The block's parameters (and, as a second instance, their gradients); timm's names.
  struct parameters {
    view<D> norm1_weight, norm1_bias;  // (D)
    view<3 * D, D> qkv_weight;         // (3D, D)
    view<3 * D> qkv_bias;              // (3D)
    view<D, D> proj_weight;            // (D, D)
    view<D> proj_bias;                 // (D)
    view<D> norm2_weight, norm2_bias;  // (D)
    view<M, D> fc1_weight;             // (M, D)
    view<M> fc1_bias;                  // (M)
    view<D, M> fc2_weight;             // (D, M)
    view<D> fc2_bias;                  // (D)

    // Assigning views writes elements: structs of views are bound into arenas, never assigned.
    parameters& operator=(const parameters&) = delete;

    void bind(arena_cursor<T>& a) {
      a.place(norm1_weight);
      a.place(norm1_bias);
      a.place(qkv_weight);
      a.place(qkv_bias);
      a.place(proj_weight);
      a.place(proj_bias);
      a.place(norm2_weight);
      a.place(norm2_bias);
      a.place(fc1_weight);
      a.place(fc1_bias);
      a.place(fc2_weight);
      a.place(fc2_bias);
    }
    /// f(name, view, role) for each tensor, names under `prefix` (e.g. "blocks.3.").
    template <class F>
    void for_each(const std::string& prefix, F&& f) const {
      f(prefix + "norm1.weight", norm1_weight, parameter_role::norm_scale);
      f(prefix + "norm1.bias", norm1_bias, parameter_role::bias);
      f(prefix + "attn.qkv.weight", qkv_weight, parameter_role::weight);
      f(prefix + "attn.qkv.bias", qkv_bias, parameter_role::bias);
      f(prefix + "attn.proj.weight", proj_weight, parameter_role::weight);
      f(prefix + "attn.proj.bias", proj_bias, parameter_role::bias);
      f(prefix + "norm2.weight", norm2_weight, parameter_role::norm_scale);
      f(prefix + "norm2.bias", norm2_bias, parameter_role::bias);
      f(prefix + "mlp.fc1.weight", fc1_weight, parameter_role::weight);
      f(prefix + "mlp.fc1.bias", fc1_bias, parameter_role::bias);
      f(prefix + "mlp.fc2.weight", fc2_weight, parameter_role::weight);
      f(prefix + "mlp.fc2.bias", fc2_bias, parameter_role::bias);
    }
  };

  /// What forward saves for backward, for one block on n tokens.
  template <std::size_t n>
  struct activations {
    std::size_t batch = 0;
    view<dynamic, n, D> input;                   // (B, n, D) the residual stream entering
    view<dynamic, n, 1> norm1_mean, norm1_rstd;  // (B, n, 1)
    view<dynamic, n, D> norm1_out;               // (B, n, D)
    view<dynamic, n, 3 * D> qkv;                 // (B, n, 3D)
    attention_saved<T, n, D, H, Device> attention;  // probs (B·H, n, n)
    view<dynamic, n, D> attention_out;           // (B, n, D) before the projection
    view<dynamic, n, D> middle;                  // (B, n, D) the residual stream after attention
    view<dynamic, n, 1> norm2_mean, norm2_rstd;  // (B, n, 1)
    view<dynamic, n, D> norm2_out;               // (B, n, D)
    view<dynamic, n, M> fc1_out;                 // (B, n, M) before GELU
    view<dynamic, n, M> gelu_out;                // (B, n, M)

    activations& operator=(const activations&) = delete;  // see parameters

    void bind(arena_cursor<T>& a) {
      const std::size_t b = batch, bh = batch * H;
      a.place(input, b);
      a.place(norm1_mean, b);
      a.place(norm1_rstd, b);
      a.place(norm1_out, b);
      a.place(qkv, b);
      a.place(attention.probs, bh);
      a.place(attention_out, b);
      a.place(middle, b);
      a.place(norm2_mean, b);
      a.place(norm2_rstd, b);
      a.place(norm2_out, b);
      a.place(fc1_out, b);
      a.place(gelu_out, b);
    }
  };

  /// Backward's temporaries, which every block of a stack reuses, for n tokens.
  template <std::size_t n>
  struct workspace {
    std::size_t batch = 0;
    view<dynamic, n, 3 * D> d_qkv;            // (B, n, 3D)
    attention_scratch<T, n, D, H, Device> attention;  // (B·H, n, n)
    view<dynamic, n, D> d_tokens;             // (B, n, D) d(attention_out), then d(norm out)
    view<dynamic, n, M> d_hidden;             // (B, n, M) d(gelu_out), then d(fc1_out)

    workspace& operator=(const workspace&) = delete;  // see parameters

    void bind(arena_cursor<T>& a) {
      const std::size_t b = batch, bh = batch * H;
      a.place(d_qkv, b);
      a.place(attention.d_probs, bh);
      a.place(d_tokens, b);
      a.place(d_hidden, b);
    }
  };

  /// out = block(act.input); act receives what backward needs. out may be the next block's
  /// act.input.
  template <std::size_t n, class Out>
  static void forward(const parameters& p, activations<n>& act, Out&& out, double eps) {
    layernorm_forward(act.norm1_out, act.norm1_mean, act.norm1_rstd, act.input, p.norm1_weight,
                      p.norm1_bias, eps);
    linear_forward(act.qkv, act.norm1_out, p.qkv_weight, p.qkv_bias);
    attention_forward(act.attention_out, act.attention, act.qkv);
    linear_forward_residual(act.middle, act.input, act.attention_out, p.proj_weight, p.proj_bias);
    layernorm_forward(act.norm2_out, act.norm2_mean, act.norm2_rstd, act.middle, p.norm2_weight,
                      p.norm2_bias, eps);
    linear_forward(act.fc1_out, act.norm2_out, p.fc1_weight, p.fc1_bias);
    gelu_forward(act.gelu_out, act.fc1_out);
    linear_forward_residual(out, act.middle, act.gelu_out, p.fc2_weight, p.fc2_bias);
  }

  /// On entry d_x is the gradient of the block's output; on return, of its input. Parameter
  /// gradients accumulate into g.
  template <std::size_t n, class DX>
  static void backward(const parameters& p, const parameters& g, const activations<n>& act,
                       const workspace<n>& ws, DX&& d_x) {
    // The MLP branch; d_x passes through the residual unchanged and gains LN2's gradient.
    linear_backward(ws.d_hidden, g.fc2_weight, g.fc2_bias, d_x, act.gelu_out, p.fc2_weight);
    gelu_backward(ws.d_hidden, ws.d_hidden, act.fc1_out);
    linear_backward(ws.d_tokens, g.fc1_weight, g.fc1_bias, ws.d_hidden, act.norm2_out,
                    p.fc1_weight);
    layernorm_backward(d_x, g.norm2_weight, g.norm2_bias, ws.d_tokens, act.middle, act.norm2_mean,
                       act.norm2_rstd, p.norm2_weight, write_mode::accumulate);
    // The attention branch, likewise.
    linear_backward(ws.d_tokens, g.proj_weight, g.proj_bias, d_x, act.attention_out, p.proj_weight);
    attention_backward(ws.d_qkv, ws.attention, ws.d_tokens, act.attention, act.qkv);
    linear_backward(ws.d_tokens, g.qkv_weight, g.qkv_bias, ws.d_qkv, act.norm1_out, p.qkv_weight);
    layernorm_backward(d_x, g.norm1_weight, g.norm1_bias, ws.d_tokens, act.input, act.norm1_mean,
                       act.norm1_rstd, p.norm1_weight, write_mode::accumulate);
  }

  /// 2·M·N·K floating-point operations of the forward's matrix products for `batch` images of
  /// n tokens: QKV, scores, weighted sum, projection, MLP.
  static constexpr double forward_flops(double batch, double n) {
    const double rows = batch * n;
    return 2 * rows * D * (3.0 * D) + 2 * 2 * batch * n * n * D + 2 * rows * D * D +
           2 * 2 * rows * D * M;
  }
};

}  // namespace splitmask
