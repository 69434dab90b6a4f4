// masked_decoder: MAE's light decoder, shared by SplitMask's two branches and by MAE. It gets the
// encoder's output on the input subset and predicts `Outputs` values at each output position:
//   y = embed(encoded)                         linear D -> Dd, (B, n_in, Dd)
//   x = mask token at all N positions, y scattered to the input positions, + sin-cos positions
//   z = LayerNorm(blocks(x))                   (B, N, Dd), `depth` pre-norm blocks
//   prediction = pred(z at the output positions)   linear Dd -> Outputs, (B, n_out, Outputs)
// SplitMask predicts token ids (Outputs = K logits) and pools z; MAE predicts pixels (Outputs =
// C·P·P). Names follow MAE's decoder: decoder_embed, mask_token, decoder_blocks.{i},
// decoder_norm, decoder_pred. Everything lives on the Device of the template.
//
// Legend: B batch, N patches, n_in / n_out the input and predicted subsets, D encoder width,
// Dd decoder width, O outputs per patch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "splitmask/core/error.hpp"
#include "splitmask/model/arena.hpp"
#include "splitmask/model/decoder_config.hpp"
#include "splitmask/model/init.hpp"
#include "splitmask/model/parameter_store.hpp"
#include "splitmask/model/transformer_block.hpp"
#include "splitmask/model/transformer_stack.hpp"
#include "splitmask/ops/layernorm.hpp"
#include "splitmask/ops/linear.hpp"
#include "splitmask/ops/position_embedding.hpp"
#include "splitmask/ops/tokens.hpp"
#include "splitmask/tensor/tensor.hpp"

namespace splitmask {

/// The decoder's parameters (or their gradients), with MAE's names; Sizes is a decoder_sizes.
template <class Sizes, std::size_t Outputs, class T, class Device = device::cpu>
struct decoder_parameters {
  static constexpr std::size_t D = Sizes::encoder_width, Dd = Sizes::width, O = Outputs;
  using block = transformer_block<T, Dd, Sizes::heads, Sizes::mlp_width, Device>;
  template <std::size_t... E>
  using view = tensor_view<T, extents<E...>, Device>;
  /// The same layout on another device.
  template <class Other>
  using on = decoder_parameters<Sizes, Outputs, T, Other>;

  view<Dd, D> embed_weight;  // (Dd, D)
  view<Dd> embed_bias;       // (Dd)
  view<Dd> mask_token;       // (Dd), named as (1, 1, Dd)
  std::vector<typename block::parameters> blocks =
      std::vector<typename block::parameters>(Sizes::depth);
  view<Dd> norm_weight, norm_bias;  // (Dd)
  view<O, Dd> pred_weight;          // (O, Dd)
  view<O> pred_bias;                // (O)

  // Assigning views writes elements: the struct is bound into an arena, never assigned.
  decoder_parameters& operator=(const decoder_parameters&) = delete;

  void bind(arena_cursor<T>& a) {
    a.place(embed_weight);
    a.place(embed_bias);
    a.place(mask_token);
    for (auto& b : blocks) b.bind(a);
    a.place(norm_weight);
    a.place(norm_bias);
    a.place(pred_weight);
    a.place(pred_bias);
  }

  template <class F>
  void for_each(F&& f) const {
    f(std::string("decoder_embed.weight"), embed_weight, parameter_role::weight);
    f(std::string("decoder_embed.bias"), embed_bias, parameter_role::bias);
    f(std::string("mask_token"), mask_token.template reshape<extents<1, 1, Dd>>(),
      parameter_role::embedding);
    for (std::size_t i = 0; i < blocks.size(); ++i)
      blocks[i].for_each("decoder_blocks." + std::to_string(i) + ".", f);
    f(std::string("decoder_norm.weight"), norm_weight, parameter_role::norm_scale);
    f(std::string("decoder_norm.bias"), norm_bias, parameter_role::bias);
    f(std::string("decoder_pred.weight"), pred_weight, parameter_role::weight);
    f(std::string("decoder_pred.bias"), pred_bias, parameter_role::bias);
  }
};

/// One branch's saved activations and workspace: n_in encoded tokens in, n_out predicted.
template <class Sizes, std::size_t Outputs, class T, std::size_t n_in, std::size_t n_out,
          class Device = device::cpu>
struct decoder_activations {
  static constexpr std::size_t N = Sizes::patches, Dd = Sizes::width, O = Outputs;
  using stack = transformer_stack<T, Dd, Sizes::heads, Sizes::mlp_width, Device>;
  template <std::size_t... E>
  using view = tensor_view<T, extents<E...>, Device>;

  std::size_t batch = 0;
  typename stack::template activations<N> body{Sizes::depth};  // blocks + norm: z
  view<dynamic, n_in, Dd> embedded;                            // (B, n_in, Dd)
  view<dynamic, n_out, Dd> predicted;                          // (B, n_out, Dd): z gathered
  view<dynamic, n_out, O> prediction;  // (B, n_out, O); the caller puts its gradient here
  view<dynamic, N, Dd> d_x;            // (B, N, Dd) backward's stream
  view<Dd> column_sums;                // (Dd) backward's scratch

  decoder_activations() = default;
  explicit decoder_activations(std::size_t batch_size) { resize(batch_size); }
  decoder_activations(const decoder_activations&) = delete;  // views into its own arena
  decoder_activations& operator=(const decoder_activations&) = delete;

  void resize(std::size_t batch_size) { resize_arena<T>(*this, memory_, batch_size); }

  void bind(arena_cursor<T>& a) {
    body.batch = batch;
    body.bind(a);
    a.place(embedded, batch);
    a.place(predicted, batch);
    a.place(prediction, batch);
    a.place(d_x, batch);
    a.place(column_sums);
  }

 private:
  buffer<T, Device> memory_;
};

/// Adds nothing to the gradient of z (a decoder whose z feeds only its prediction).
struct no_extra_gradient {
  template <class DZ>
  void operator()(DZ&&) const {}
};

/// The decoder of encoder Encoder (a vit_config) with sizes Decoder (a decoder_config) and a
/// head of Outputs values per patch.
template <class Encoder, class Decoder, std::size_t Outputs, class T = float,
          class Device = device::cpu>
class masked_decoder
    : public parameter_store<
          decoder_parameters<decoder_sizes<Encoder, Decoder>, Outputs, T, Device>, T, Device> {
 public:
  using sizes = decoder_sizes<Encoder, Decoder>;
  using device_type = Device;
  using parameters = decoder_parameters<sizes, Outputs, T, Device>;
  using store = parameter_store<parameters, T, Device>;
  using block = typename parameters::block;
  using stack = transformer_stack<T, sizes::width, sizes::heads, sizes::mlp_width, Device>;
  template <std::size_t n_in, std::size_t n_out>
  using activations = decoder_activations<sizes, Outputs, T, n_in, n_out, Device>;
  static constexpr std::size_t N = Encoder::patches, D = Encoder::width;
  static constexpr std::size_t Dd = sizes::width, O = Outputs;

  /// Allocates parameters and gradients and initialises the parameters from `seed` (on RNG
  /// streams apart from the encoder's).
  explicit masked_decoder(std::uint64_t seed = 0) : store(seed, std::uint64_t{1} << 32) {
    tensor<T, extents<N, Dd>> host;
    sincos_position_embedding<Encoder::grid>(host);
    copy(position_, host);
  }

  static constexpr std::size_t parameter_count() { return sizes::parameters(Outputs); }

  /// One branch's forward: fills act.prediction (B, n_out, O) from the encoder's output on
  /// `index_in`, predicting at `index_out`; act.body.output holds z (B, N, Dd).
  template <std::size_t n_in, std::size_t n_out, class Encoded, class IndexIn, class IndexOut>
  void forward(activations<n_in, n_out>& act, const Encoded& encoded, const IndexIn& index_in,
               const IndexOut& index_out) const {
    if (act.batch != encoded.view().batch())
      throw shape_error(
          "splitmask::masked_decoder::forward: the encoded tokens and the activations "
          "disagree on the batch");
    linear_forward(act.embedded, encoded, params_.embed_weight, params_.embed_bias);
    auto x = act.body.input();
    x = params_.mask_token;  // every position, then the encoded tokens at theirs
    scatter_tokens(x, act.embedded, index_in);
    x = x + position_.view();
    stack::forward(params_.blocks, params_.norm_weight, params_.norm_bias, act.body,
                   sizes::layer_norm_eps);
    gather_tokens(act.predicted, act.body.output, index_out);
    linear_forward(act.prediction, act.predicted, params_.pred_weight, params_.pred_bias);
  }

  /// Backward of one branch from the prediction's gradient (in act.prediction, overwritten).
  /// add_d_z(d_z) adds the gradient of any other loss on z (SplitMask's pooled descriptor) to
  /// d_z (B, N, Dd). Writes d_encoded (B, n_in, D); parameter gradients accumulate.
  template <std::size_t n_in, std::size_t n_out, class DEncoded, class Encoded, class IndexIn,
            class IndexOut, class AddDZ = no_extra_gradient>
  void backward(activations<n_in, n_out>& act, DEncoded&& d_encoded, const Encoded& encoded,
                const IndexIn& index_in, const IndexOut& index_out, AddDZ&& add_d_z = {}) {
    auto d_predicted = act.predicted;  // the gathered z is no longer needed: reuse its memory
    linear_backward(d_predicted, grads_.pred_weight, grads_.pred_bias, act.prediction,
                    act.predicted, params_.pred_weight);
    act.d_x = T(0);
    scatter_tokens(act.d_x, d_predicted, index_out);
    add_d_z(act.d_x);
    stack::backward(params_.blocks, grads_.blocks, params_.norm_weight, grads_.norm_weight,
                    grads_.norm_bias, act.body, act.d_x, act.d_x);
    // The mask token sits at every position but the input ones.
    detail::add_column_sums(grads_.mask_token, as_rows(act.d_x));
    gather_tokens(act.embedded, act.d_x, index_in);  // d(embedded), over forward's values
    act.column_sums = T(0);
    detail::add_column_sums(act.column_sums, as_rows(act.embedded));
    grads_.mask_token = grads_.mask_token - act.column_sums;
    linear_backward(d_encoded, grads_.embed_weight, grads_.embed_bias, act.embedded, encoded,
                    params_.embed_weight);
  }

  /// Matrix-product FLOPs (2·M·N·K) of one branch's forward.
  static constexpr double forward_flops(double batch, double n_in, double n_out) {
    return 2.0 * batch * n_in * D * Dd + sizes::depth * block::forward_flops(batch, N) +
           2.0 * batch * n_out * Dd * O;
  }

 private:
  using store::grads_;
  using store::params_;

  tensor<T, extents<N, Dd>, Device> position_;  // fixed 2-D sin-cos, (N, Dd)
};

}  // namespace splitmask
