// The BEiT objective on SplitMask's components, for comparing the two as the paper does. One
// view per image: the masked patches (the mask ratio's share, drawn by the same split sampler)
// are replaced by a learned mask token before the positions are added; the encoder runs on all
// N tokens; a linear head on the encoder's output predicts the token ids of the masked patches
// (cross-entropy). Same tokenizer as SplitMask. BEiT masks blocks of patches; here the masked
// positions are uniform at random.
//
// Legend: B batch, N patches, N_B masked, D width, K vocabulary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ratio>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "splitmask/core/device.hpp"
#include "splitmask/model/arena.hpp"
#include "splitmask/model/init.hpp"
#include "splitmask/model/parameter_store.hpp"
#include "splitmask/model/vit_encoder.hpp"
#include "splitmask/ops/cross_entropy.hpp"
#include "splitmask/ops/linear.hpp"
#include "splitmask/ops/tokens.hpp"
#include "splitmask/train/objective.hpp"
#include "splitmask/train/objectives/token_targets.hpp"

namespace splitmask {

/// BEiT's own parameters beside the encoder: the mask token and the prediction head.
template <std::size_t D, std::size_t K, class T, class Device = device::cpu>
struct beit_head_parameters {
  template <std::size_t... E>
  using view = tensor_view<T, extents<E...>, Device>;
  template <class Other>
  using on = beit_head_parameters<D, K, T, Other>;

  view<D> mask_token;      // (D), named as (1, 1, D)
  view<K, D> head_weight;  // (K, D)
  view<K> head_bias;       // (K)

  beit_head_parameters& operator=(const beit_head_parameters&) = delete;  // views: bind only

  void bind(arena_cursor<T>& a) {
    a.place(mask_token);
    a.place(head_weight);
    a.place(head_bias);
  }
  template <class F>
  void for_each(F&& f) const {
    f(std::string("mask_token"), mask_token.template reshape<extents<1, 1, D>>(),
      parameter_role::embedding);
    f(std::string("lm_head.weight"), head_weight, parameter_role::weight);
    f(std::string("lm_head.bias"), head_bias, parameter_role::bias);
  }
};

/// The head as a model of its own (parameters and gradients), for the optimiser; its RNG
/// streams are apart from the encoder's.
template <std::size_t D, std::size_t K, class T, class Device = device::cpu>
class beit_head : public parameter_store<beit_head_parameters<D, K, T, Device>, T, Device> {
 public:
  explicit beit_head(std::uint64_t seed)
      : parameter_store<beit_head_parameters<D, K, T, Device>, T, Device>(seed,
                                                                          std::uint64_t{2} << 32) {}
};

template <class Objective, class Encoder, class T, class Device>
class beit_model;

/// BEiT has no run-time options of its own.
struct beit_options {};

template <std::size_t Vocabulary = 512, class MaskRatio = std::ratio<1, 2>>
struct beit_objective {
  static constexpr const char* name = "beit";
  static constexpr std::size_t vocabulary = Vocabulary;  // K
  using mask_ratio = MaskRatio;                          // masked share of the patches
  using options = beit_options;
  template <class Encoder, class T, class Device>
  using model = beit_model<beit_objective, Encoder, T, Device>;

  template <class Encoder, class F>
  static void for_each_size(F&& f) {
    f("vocabulary", Vocabulary);
    f("mask_ratio", ratio_text<MaskRatio>());
  }
  template <class Options, class F>
  static void for_each_option(Options&, F&&) {}
};

template <class Objective, class Encoder, class T, class Device>
class beit_model
    : public token_targets<Encoder, Objective::vocabulary,
                           patch_split<Encoder::patches, typename Objective::mask_ratio>::kept,
                           Device> {
 public:
  using split_sizes = patch_split<Encoder::patches, typename Objective::mask_ratio>;
  static constexpr std::size_t N = Encoder::patches, D = Encoder::width, L = Encoder::patch_length;
  static constexpr std::size_t N_A = split_sizes::kept, N_B = split_sizes::masked;
  static constexpr std::size_t K = Objective::vocabulary;
  using encoder_type = vit_encoder<Encoder, T, Device>;
  using head_type = beit_head<D, K, T, Device>;
  using tokenizer_type = patch_tokenizer<Encoder, K>;
  using targets_type = token_targets<Encoder, K, N_A, Device>;

  beit_model(std::size_t batch, std::uint64_t seed, beit_options, tokenizer_type tokenizer)
      : targets_type(batch, seed, std::move(tokenizer)),
        head_(seed),
        tokens_(batch),
        d_tokens_(batch),
        d_out_(batch),
        predicted_(batch),
        d_masked_(batch),
        logits_(batch),
        lse_(batch * N_B),
        ids_(batch * N_B),
        activations_(batch) {
    if (batch == 0) throw std::invalid_argument("splitmask: BEiT's batch is empty");
  }

  template <class F>
  void for_each_store(F&& f) {
    f(head_);
  }

  template <class Patches>
  step_losses forward_backward(encoder_type& encoder, const Patches& patches) {
    const auto& masked = this->split().b();  // the visible ones are split().a()
    const auto& hp = head_.params();
    const auto& hg = head_.grads();
    // Forward: mask tokens replace the masked patches' embeddings, then positions.
    encoder.embed_patches(tokens_, patches);
    d_masked_ = hp.mask_token;  // (B, N_B, D), every row the mask token
    scatter_tokens(tokens_, d_masked_, masked);
    encoder.add_position(tokens_);
    const auto out = encoder.forward(activations_, tokens_);
    gather_tokens(predicted_, out, masked);
    linear_forward(logits_, predicted_, hp.head_weight, hp.head_bias);
    gather_ids(ids_, this->ids(), masked);
    step_losses losses;
    losses.add("ce", "CE", cross_entropy_forward(lse_, logits_, ids_));
    losses.total = losses["ce"];
    // Backward.
    cross_entropy_backward(logits_, logits_, lse_, ids_);
    linear_backward(predicted_, hg.head_weight, hg.head_bias, logits_, predicted_,
                    hp.head_weight);  // predicted_ now holds its gradient
    d_out_ = T(0);
    scatter_tokens(d_out_, predicted_, masked);
    encoder.backward(activations_, d_tokens_, d_out_);
    encoder.add_position_backward(d_tokens_);
    gather_tokens(d_masked_, d_tokens_, masked);  // the mask token's share
    detail::add_column_sums(hg.mask_token, as_rows(d_masked_));
    d_masked_ = T(0);
    scatter_tokens(d_tokens_, d_masked_, masked);  // masked patches reached no embedding
    encoder.embed_patches_backward(d_tokens_, patches);
    return losses;
  }

  /// Matrix-product FLOPs of one step: the encoder on all N tokens and the head, forward and
  /// twice that backward (the patch embedding's once), and the tokenizer's GEMM.
  static constexpr double step_flops(double batch) {
    const double body = encoder_type::forward_flops(batch, N, false) + 2.0 * batch * N_B * D * K;
    return 3 * body + 2 * (2.0 * batch * N * L * D) + 2.0 * batch * N * L * K;
  }

  head_type& head() { return head_; }

 private:
  template <class E>
  using device_tensor = tensor<T, E, Device>;

  head_type head_;
  device_tensor<extents<dynamic, N, D>> tokens_, d_tokens_, d_out_;  // (B, N, D)
  device_tensor<extents<dynamic, N_B, D>> predicted_, d_masked_;     // (B, N_B, D)
  device_tensor<extents<dynamic, N_B, K>> logits_;                   // (B, N_B, K)
  device_tensor<extents<dynamic>> lse_;                              // (B·N_B)
  tensor<std::int32_t, extents<dynamic>, Device> ids_;               // (B·N_B)
  typename encoder_type::template activations<N> activations_;
};

}  // namespace splitmask
