// A stack of pre-norm transformer blocks followed by a LayerNorm: the body of the encoder and of
// the SplitMask decoder. Its activations (each block's, the shared workspace, the final norm's)
// are views bound into an arena by the owner; the input goes in blocks[0].input and the result
// comes out in output.
//
// Legend: B batch, n tokens, D width, H heads, M MLP width.
#pragma once

#include <cstddef>
#include <vector>

#include "splitmask/model/arena.hpp"
#include "splitmask/model/transformer_block.hpp"
#include "splitmask/ops/layernorm.hpp"

namespace splitmask {

template <class T, std::size_t D, std::size_t H, std::size_t M, class Device = device::cpu>
struct transformer_stack {
  using block = transformer_block<T, D, H, M, Device>;
  template <std::size_t... E>
  using view = tensor_view<T, extents<E...>, Device>;
  using block_parameters = std::vector<typename block::parameters>;

  /// Saved activations and workspace for `depth` blocks on n tokens.
  template <std::size_t n>
  struct activations {
    std::size_t batch = 0;
    std::vector<typename block::template activations<n>> blocks;
    typename block::template workspace<n> workspace;
    view<dynamic, n, D> final_input;           // (B, n, D) last block's output
    view<dynamic, n, 1> norm_mean, norm_rstd;  // (B, n, 1)
    view<dynamic, n, D> output;                // (B, n, D) after the norm

    explicit activations(std::size_t depth) : blocks(depth) {}
    activations& operator=(const activations&) = delete;  // views: bound, never assigned

    /// The stack's input, (B, n, D): write it before forward.
    const view<dynamic, n, D>& input() const { return blocks.front().input; }

    void bind(arena_cursor<T>& a) {
      for (auto& b : blocks) {
        b.batch = batch;
        b.bind(a);
      }
      workspace.batch = batch;
      workspace.bind(a);
      a.place(final_input, batch);
      a.place(norm_mean, batch);
      a.place(norm_rstd, batch);
      a.place(output, batch);
    }
  };

  /// act.output = LayerNorm(blocks(act.input())).
  template <std::size_t n, class G, class B>
  static void forward(const block_parameters& p, const G& norm_weight, const B& norm_bias,
                      activations<n>& act, double eps) {
    for (std::size_t i = 0; i < p.size(); ++i) {
      const auto& next = i + 1 < p.size() ? act.blocks[i + 1].input : act.final_input;
      block::forward(p[i], act.blocks[i], next, eps);
    }
    layernorm_forward(act.output, act.norm_mean, act.norm_rstd, act.final_input, norm_weight,
                      norm_bias, eps);
  }

  /// d_x (written) = the gradient of the input, from d_out, the output's (d_out may be d_x
  /// itself). Parameter gradients accumulate into g and the norm's gradients.
  template <std::size_t n, class G, class DG, class DB, class DX, class DOut>
  static void backward(const block_parameters& p, const block_parameters& g, const G& norm_weight,
                       const DG& d_norm_weight, const DB& d_norm_bias, const activations<n>& act,
                       DX&& d_x, const DOut& d_out) {
    layernorm_backward(d_x, d_norm_weight, d_norm_bias, d_out, act.final_input, act.norm_mean,
                       act.norm_rstd, norm_weight);
    for (std::size_t i = p.size(); i-- > 0;)
      block::backward(p[i], g[i], act.blocks[i], act.workspace, d_x);
  }
};

}  // namespace splitmask
