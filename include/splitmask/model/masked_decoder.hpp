// The SplitMask decoder, shared by both branches. Branch A gets the encoder's output on subset A
// and predicts the token ids of subset B (branch B the reverse):
//   y = embed(encoded)                         linear D -> Dd, (B, n_in, Dd)
//   x = mask token at all N positions, y scattered to the input positions, + sin-cos positions
//   z = LayerNorm(blocks(x))                   (B, N, Dd), `decoder_depth` pre-norm blocks
//   logits = pred(z at the output positions)   linear Dd -> K, (B, n_out, K), cross-entropy
//   pooled = mean over all N positions of z    (B, Dd), the branch's global descriptor
// Names follow MAE's decoder: decoder_embed, mask_token, decoder_blocks.{i}, decoder_norm,
// decoder_pred. Everything lives on the Device of the template (the host's by default).
//
// Legend: B batch, N patches, n_in / n_out the input and predicted subsets, D encoder width,
// Dd decoder width, K vocabulary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "splitmask/core/error.hpp"
#include "splitmask/model/arena.hpp"
#include "splitmask/model/init.hpp"
#include "splitmask/model/parameter_store.hpp"
#include "splitmask/model/transformer_block.hpp"
#include "splitmask/model/transformer_stack.hpp"
#include "splitmask/model/vit_config.hpp"
#include "splitmask/ops/cross_entropy.hpp"
#include "splitmask/ops/layernorm.hpp"
#include "splitmask/ops/linear.hpp"
#include "splitmask/ops/position_embedding.hpp"
#include "splitmask/ops/tokens.hpp"
#include "splitmask/tensor/tensor.hpp"

namespace splitmask {

/// The decoder's parameters (or their gradients), with MAE's names.
template <class Config, class T, class Device = device::cpu>
struct decoder_parameters {
  static constexpr std::size_t D = Config::width, Dd = Config::decoder_width;
  static constexpr std::size_t K = Config::vocabulary;
  using block =
      transformer_block<T, Dd, Config::decoder_heads, Config::decoder_mlp_width, Device>;
  template <std::size_t... E>
  using view = tensor_view<T, extents<E...>, Device>;
  /// The same layout on another device.
  template <class Other>
  using on = decoder_parameters<Config, T, Other>;

  view<Dd, D> embed_weight;  // (Dd, D)
  view<Dd> embed_bias;       // (Dd)
  view<Dd> mask_token;       // (Dd), named as (1, 1, Dd)
  std::vector<typename block::parameters> blocks =
      std::vector<typename block::parameters>(Config::decoder_depth);
  view<Dd> norm_weight, norm_bias;  // (Dd)
  view<K, Dd> pred_weight;          // (K, Dd)
  view<K> pred_bias;                // (K)

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
template <class Config, class T, std::size_t n_in, std::size_t n_out, class Device = device::cpu>
struct decoder_activations {
  static constexpr std::size_t N = Config::patches, Dd = Config::decoder_width;
  static constexpr std::size_t K = Config::vocabulary;
  using stack =
      transformer_stack<T, Dd, Config::decoder_heads, Config::decoder_mlp_width, Device>;
  template <std::size_t... E>
  using view = tensor_view<T, extents<E...>, Device>;

  std::size_t batch = 0;
  typename stack::template activations<N> body{Config::decoder_depth};  // blocks + norm: z
  view<dynamic, n_in, Dd> embedded;                                     // (B, n_in, Dd)
  view<dynamic, n_out, Dd> predicted;                      // (B, n_out, Dd): z gathered
  view<dynamic, n_out, K> logits;                          // (B, n_out, K), then d_logits
  view<dynamic> lse;                                       // (B·n_out)
  view<dynamic, Dd> pooled;                                // (B, Dd)
  view<dynamic, N, Dd> d_x;                                // (B, N, Dd) backward's stream
  view<Dd> column_sums;                                    // (Dd) backward's scratch
  tensor<std::int32_t, extents<dynamic>, Device> targets;  // (B·n_out) token ids

  decoder_activations() = default;
  explicit decoder_activations(std::size_t batch_size) { resize(batch_size); }
  decoder_activations(const decoder_activations&) = delete;  // views into its own arena
  decoder_activations& operator=(const decoder_activations&) = delete;

  void resize(std::size_t batch_size) {
    resize_arena<T>(*this, memory_, batch_size);
    if (targets.size() != batch_size * n_out)
      targets = tensor<std::int32_t, extents<dynamic>, Device>(batch_size * n_out);
  }

  void bind(arena_cursor<T>& a) {
    body.batch = batch;
    body.bind(a);
    a.place(embedded, batch);
    a.place(predicted, batch);
    a.place(logits, batch);
    a.place(lse, batch * n_out);
    a.place(pooled, batch);
    a.place(d_x, batch);
    a.place(column_sums);
  }

 private:
  buffer<T, Device> memory_;
};

template <class Config, class T = float, class Device = device::cpu>
class splitmask_decoder
    : public parameter_store<decoder_parameters<Config, T, Device>, T, Device> {
 public:
  using device_type = Device;
  using parameters = decoder_parameters<Config, T, Device>;
  using store = parameter_store<parameters, T, Device>;
  using block = typename parameters::block;
  using stack = transformer_stack<T, Config::decoder_width, Config::decoder_heads,
                                  Config::decoder_mlp_width, Device>;
  template <std::size_t n_in, std::size_t n_out>
  using activations = decoder_activations<Config, T, n_in, n_out, Device>;
  static constexpr std::size_t N = Config::patches, D = Config::width;
  static constexpr std::size_t Dd = Config::decoder_width, K = Config::vocabulary;

  /// Allocates parameters and gradients and initialises the parameters from `seed` (on RNG
  /// streams apart from the encoder's).
  explicit splitmask_decoder(std::uint64_t seed = 0) : store(seed, std::uint64_t{1} << 32) {
    tensor<T, extents<N, Dd>> host;
    sincos_position_embedding<Config::grid>(host);
    copy(position_, host);
  }

  static constexpr std::size_t parameter_count() { return Config::decoder_parameters; }

  /// One branch: returns the mean cross-entropy of the predictions at `index_out` against
  /// `ids` (B, N); act.pooled receives the mean of z over all positions.
  template <std::size_t n_in, std::size_t n_out, class Encoded, class IndexIn, class IndexOut,
            class Ids>
  double forward(activations<n_in, n_out>& act, const Encoded& encoded, const IndexIn& index_in,
                 const IndexOut& index_out, const Ids& ids) const {
    const auto vi = ids.view();
    static_assert(std::is_same_v<typename decltype(vi)::extents_type, extents<dynamic, N>> &&
                      std::is_same_v<typename decltype(vi)::value_type, std::int32_t>,
                  "splitmask::splitmask_decoder: the token ids are int32 (B, N)");
    const std::size_t batch = encoded.view().batch();
    if (act.batch != batch || vi.batch() != batch)
      throw shape_error(
          "splitmask::splitmask_decoder::forward: the encoded tokens, the ids and "
          "the activations disagree on the batch");
    linear_forward(act.embedded, encoded, params_.embed_weight, params_.embed_bias);
    auto x = act.body.input();
    x = params_.mask_token;  // every position, then the encoded tokens at theirs
    scatter_tokens(x, act.embedded, index_in);
    x = x + position_.view();
    stack::forward(params_.blocks, params_.norm_weight, params_.norm_bias, act.body,
                   Config::layer_norm_eps);
    mean_tokens_forward(act.pooled, act.body.output);
    gather_tokens(act.predicted, act.body.output, index_out);
    linear_forward(act.logits, act.predicted, params_.pred_weight, params_.pred_bias);
    gather_ids(act.targets, vi, index_out);
    return cross_entropy_forward(act.lse, act.logits, act.targets);
  }

  /// Backward of one branch for the loss ce_scale · CE + (the loss whose gradient with respect
  /// to act.pooled is d_pooled). Writes d_encoded (B, n_in, D); parameter gradients accumulate.
  /// Overwrites act.logits.
  template <std::size_t n_in, std::size_t n_out, class DEncoded, class DPooled, class Encoded,
            class IndexIn, class IndexOut>
  void backward(activations<n_in, n_out>& act, DEncoded&& d_encoded, const DPooled& d_pooled,
                double ce_scale, const Encoded& encoded, const IndexIn& index_in,
                const IndexOut& index_out) {
    cross_entropy_backward(act.logits, act.logits, act.lse, act.targets, ce_scale);
    auto d_predicted = act.predicted;  // the gathered z is no longer needed: reuse its memory
    linear_backward(d_predicted, grads_.pred_weight, grads_.pred_bias, act.logits, act.predicted,
                    params_.pred_weight);
    act.d_x = T(0);
    scatter_tokens(act.d_x, d_predicted, index_out);
    mean_tokens_backward(act.d_x, d_pooled, write_mode::accumulate);
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
    return 2.0 * batch * n_in * D * Dd + Config::decoder_depth * block::forward_flops(batch, N) +
           2.0 * batch * n_out * Dd * K;
  }

 private:
  using store::grads_;
  using store::params_;

  tensor<T, extents<N, Dd>, Device> position_;  // fixed 2-D sin-cos, (N, Dd)
};

}  // namespace splitmask
