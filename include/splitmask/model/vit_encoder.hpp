// The ViT encoder of a vit_config: patch embedding plus positions, `depth` pre-norm blocks and a
// final LayerNorm, run on any number n of tokens fixed at compile time (N for whole images, N_A
// or N_B for SplitMask's subsets). Parameters and gradients are two arenas of the same layout;
// each encoder_activations owns the saved activations and workspace for one n and one batch.
// Everything lives on the Device of the template (the host's by default).
//
//   images (B, C, S, S)   patches (B, N, C·P·P)   tokens (B, N, D)   x, out (B, n, D)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "splitmask/core/error.hpp"
#include "splitmask/core/rng.hpp"
#include "splitmask/model/arena.hpp"
#include "splitmask/model/init.hpp"
#include "splitmask/model/parameter_store.hpp"
#include "splitmask/model/transformer_block.hpp"
#include "splitmask/model/transformer_stack.hpp"
#include "splitmask/model/vit_config.hpp"
#include "splitmask/ops/layernorm.hpp"
#include "splitmask/ops/linear.hpp"
#include "splitmask/ops/patchify.hpp"
#include "splitmask/ops/position_embedding.hpp"
#include "splitmask/ops/tokens.hpp"
#include "splitmask/tensor/copy.hpp"
#include "splitmask/tensor/tensor.hpp"

namespace splitmask {

/// The encoder's parameters (one instance) or their gradients (another), with timm's names.
template <class Config, class T, class Device = device::cpu>
struct encoder_parameters {
  static_assert(is_vit_config_v<Config>, "splitmask: Config must be a splitmask::vit_config");
  static constexpr std::size_t N = Config::patches, D = Config::width;
  static constexpr std::size_t patch_length = Config::patch_length;
  using block = transformer_block<T, D, Config::heads, Config::mlp_width, Device>;
  static constexpr bool learned_position = Config::position == position_embedding::learned;
  template <std::size_t... E>
  using view = tensor_view<T, extents<E...>, Device>;
  /// The same layout on another device.
  template <class Other>
  using on = encoder_parameters<Config, T, Other>;

  view<D, patch_length> patch_embed_weight;  // (D, C·P·P) = (D, C, P, P)
  view<D> patch_embed_bias;                  // (D)
  view<N, D> position;                       // (N, D), learned only
  std::vector<typename block::parameters> blocks =
      std::vector<typename block::parameters>(Config::depth);
  view<D> norm_weight, norm_bias;  // (D)

  // Assigning views writes elements: the struct is bound into an arena, never assigned.
  encoder_parameters& operator=(const encoder_parameters&) = delete;

  void bind(arena_cursor<T>& a) {
    a.place(patch_embed_weight);
    a.place(patch_embed_bias);
    if constexpr (learned_position) a.place(position);
    for (auto& b : blocks) b.bind(a);
    a.place(norm_weight);
    a.place(norm_bias);
  }

  /// f(name, view, role) for every tensor, in a fixed order, with timm's names and shapes
  /// (the patch embedding as (D, C, P, P), learned positions as (1, N, D)).
  template <class F>
  void for_each(F&& f) const {
    constexpr std::size_t C = Config::channels, P = Config::patch_size;
    f(std::string("patch_embed.proj.weight"),
      patch_embed_weight.template reshape<extents<D, C, P, P>>(), parameter_role::weight);
    f(std::string("patch_embed.proj.bias"), patch_embed_bias, parameter_role::bias);
    if constexpr (learned_position)
      f(std::string("pos_embed"), position.template reshape<extents<1, N, D>>(),
        parameter_role::embedding);
    for (std::size_t i = 0; i < blocks.size(); ++i)
      blocks[i].for_each("blocks." + std::to_string(i) + ".", f);
    f(std::string("norm.weight"), norm_weight, parameter_role::norm_scale);
    f(std::string("norm.bias"), norm_bias, parameter_role::bias);
  }
};

/// Saved activations and workspace of the encoder for n tokens per image and a batch, in an
/// arena of their own (the stack's fields: blocks, workspace, final_input, norm statistics,
/// output).
template <class Config, class T, std::size_t n, class Device = device::cpu>
struct encoder_activations : transformer_stack<T, Config::width, Config::heads, Config::mlp_width,
                                               Device>::template activations<n> {
  using base = typename transformer_stack<T, Config::width, Config::heads, Config::mlp_width,
                                          Device>::template activations<n>;

  encoder_activations() : base(Config::depth) {}
  explicit encoder_activations(std::size_t batch_size) : base(Config::depth) { resize(batch_size); }
  // Neither copied nor moved: its views point into its own arena (and assigning views would
  // write elements rather than rebind them). Hold it by value where it is used, or by pointer.
  encoder_activations(const encoder_activations&) = delete;
  encoder_activations& operator=(const encoder_activations&) = delete;

  /// Sizes everything for `batch_size` images (reallocating only when it changes).
  void resize(std::size_t batch_size) {
    resize_arena<T>(static_cast<base&>(*this), memory_, batch_size);
  }

  /// Bytes held.
  std::size_t bytes() const { return memory_.size() * sizeof(T); }

 private:
  buffer<T, Device> memory_;
};

template <class Config, class T = float, class Device = device::cpu>
class vit_encoder : public parameter_store<encoder_parameters<Config, T, Device>, T, Device> {
  static_assert(is_vit_config_v<Config>, "splitmask: Config must be a splitmask::vit_config");
  static_assert(std::is_floating_point_v<T>, "splitmask: the encoder computes in float or double");

 public:
  using config = Config;
  using value_type = T;
  using device_type = Device;
  using parameters = encoder_parameters<Config, T, Device>;
  using store = parameter_store<parameters, T, Device>;
  template <std::size_t n>
  using activations = encoder_activations<Config, T, n, Device>;
  using block = typename parameters::block;
  using stack = transformer_stack<T, Config::width, Config::heads, Config::mlp_width, Device>;
  static constexpr std::size_t N = Config::patches, D = Config::width;
  static constexpr std::size_t C = Config::channels, S = Config::image_size;
  static constexpr std::size_t P = Config::patch_size, patch_length = Config::patch_length;
  using image_extents = extents<dynamic, C, S, S>;          // (B, C, S, S)
  using patch_extents = extents<dynamic, N, patch_length>;  // (B, N, C·P·P)
  using token_extents = extents<dynamic, N, D>;             // (B, N, D)

  /// Allocates parameters and gradients and initialises the parameters from `seed`.
  explicit vit_encoder(std::uint64_t seed = 0) : store(seed, 0) {
    if constexpr (Config::position == position_embedding::sincos) {
      tensor<T, extents<N, D>> host;
      sincos_position_embedding<Config::grid>(host);
      copy(fixed_position_, host);
    }
  }

  /// Number of parameters (without the arena's alignment padding).
  static constexpr std::size_t parameter_count() { return Config::encoder_parameters; }

  /// The positional embedding added to the tokens: fixed sin-cos or the learned parameter.
  tensor_view<const T, extents<N, D>, Device> position() const {
    if constexpr (Config::position == position_embedding::learned) {
      return params_.position;
    } else {
      return fixed_position_.view();
    }
  }

  /// tokens = patches W_pe^T + b_pe + position.
  template <class Tokens, class Patches>
  void embed(Tokens&& tokens, const Patches& patches) const {
    embed_patches(tokens, patches);
    add_position(tokens);
  }
  /// Accumulates the patch embedding's (and learned positions') gradients from d_tokens.
  template <class DTokens, class Patches>
  void embed_backward(const DTokens& d_tokens, const Patches& patches) {
    embed_patches_backward(d_tokens, patches);
    add_position_backward(d_tokens);
  }

  /// The two halves of embed, for objectives that change tokens in between (BEiT's mask
  /// tokens): tokens = patches W_pe^T + b_pe, then tokens += position.
  template <class Tokens, class Patches>
  void embed_patches(Tokens&& tokens, const Patches& patches) const {
    linear_forward(tokens, patches, params_.patch_embed_weight, params_.patch_embed_bias);
  }
  template <class Tokens>
  void add_position(Tokens&& tokens) const {
    auto v = tokens.view();
    v = v + position();
  }
  template <class DTokens, class Patches>
  void embed_patches_backward(const DTokens& d_tokens, const Patches& patches) {
    linear_backward_params(grads_.patch_embed_weight, grads_.patch_embed_bias, d_tokens, patches);
  }
  template <class DTokens>
  void add_position_backward(const DTokens& d_tokens) {
    if constexpr (Config::position == position_embedding::learned)  // sum over the batch
      detail::add_column_sums(grads_.position,
                              d_tokens.view().template reshape<extents<dynamic, N * D>>());
  }

  /// Runs the blocks and the final LayerNorm on x (B, n, D); returns act.output.
  template <std::size_t n, class X>
  tensor_view<T, extents<dynamic, n, D>, Device> forward(activations<n>& act, const X& x) const {
    const auto vx = x.view();
    static_assert(std::is_same_v<typename decltype(vx)::extents_type, extents<dynamic, n, D>>,
                  "splitmask::vit_encoder::forward: x must be (B, n, D) for activations<n>");
    if (vx.batch() != act.batch)
      throw shape_error("splitmask::vit_encoder::forward: x holds " + std::to_string(vx.batch()) +
                        " images but the activations were sized for " + std::to_string(act.batch));
    copy(act.input(), vx);
    stack::forward(params_.blocks, params_.norm_weight, params_.norm_bias, act,
                   Config::layer_norm_eps);
    return act.output;
  }

  /// d_x (written) from d_out, the gradient of forward's output; parameter gradients
  /// accumulate. `act` must hold the forward of the same x.
  template <std::size_t n, class DX, class DOut>
  void backward(const activations<n>& act, DX&& d_x, const DOut& d_out) {
    stack::backward(params_.blocks, grads_.blocks, params_.norm_weight, grads_.norm_weight,
                    grads_.norm_bias, act, d_x, d_out);
  }

  /// Matrix-product FLOPs (2·M·N·K) of one forward on n tokens per image, patch embedding
  /// included when `embedding`.
  static constexpr double forward_flops(double batch, double n, bool embedding = true) {
    return Config::depth * block::forward_flops(batch, n) +
           (embedding ? 2.0 * batch * N * patch_length * D : 0.0);
  }

 private:
  using store::grads_;
  using store::params_;

  tensor<T, extents<N, D>, Device> fixed_position_;
};

/// The representation used downstream: the mean over all N patches of the encoder's output
/// for whole images. Owns its workspace; resizes it when the batch changes.
template <class Config, class T = float>
class vit_features {
 public:
  using encoder_type = vit_encoder<Config, T>;
  static constexpr std::size_t N = Config::patches, D = Config::width;

  /// features (B, D) of images (B, C, S, S).
  template <class Images>
  tensor_view<T, extents<dynamic, D>> operator()(const encoder_type& encoder,
                                                 const Images& images) {
    const auto vi = images.view();
    static_assert(
        std::is_same_v<typename decltype(vi)::extents_type, typename encoder_type::image_extents>,
        "splitmask::vit_features: images must be (B, C, S, S) of the config");
    const std::size_t b = vi.batch();
    patches_.resize(b);
    tokens_.resize(b);
    pooled_.resize(b);
    activations_.resize(b);
    patchify<Config::patch_size>(patches_, vi);
    encoder.embed(tokens_, patches_);
    mean_tokens_forward(pooled_, encoder.forward(activations_, tokens_));
    return pooled_.view();
  }

 private:
  tensor<T, typename encoder_type::patch_extents> patches_;
  tensor<T, typename encoder_type::token_extents> tokens_;
  tensor<T, extents<dynamic, D>> pooled_;
  encoder_activations<Config, T, N> activations_;
};

}  // namespace splitmask
