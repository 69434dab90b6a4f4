// beit_trainer: the BEiT objective on SplitMask's components, for comparing the two as the paper
// does. One view per image: the patches of subset B (the config's mask ratio, drawn by the same
// split sampler) are replaced by a learned mask token before the positions are added; the
// encoder runs on all N tokens; a linear head on the encoder's output predicts the token ids of
// the masked patches (cross-entropy). Same tokenizer, optimiser, schedule and clipping.
// BEiT masks blocks of patches; here the masked positions are uniform at random.
//
// Legend: B batch, N patches, N_B masked, D width, K vocabulary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "splitmask/core/device.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/model/arena.hpp"
#include "splitmask/model/init.hpp"
#include "splitmask/model/parameter_store.hpp"
#include "splitmask/model/vit_encoder.hpp"
#include "splitmask/ops/cross_entropy.hpp"
#include "splitmask/ops/linear.hpp"
#include "splitmask/ops/patchify.hpp"
#include "splitmask/ops/tokens.hpp"
#include "splitmask/tokenizer/patch_tokenizer.hpp"
#include "splitmask/train/adamw.hpp"
#include "splitmask/train/pretrain_step.hpp"
#include "splitmask/train/split_sampler.hpp"

namespace splitmask {

/// BEiT's own parameters beside the encoder: the mask token and the prediction head.
template <class Config, class T>
struct beit_head_parameters {
  static constexpr std::size_t D = Config::width, K = Config::vocabulary;
  tensor_view<T, extents<D>> mask_token;      // (D), named as (1, 1, D)
  tensor_view<T, extents<K, D>> head_weight;  // (K, D)
  tensor_view<T, extents<K>> head_bias;       // (K)

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
template <class Config, class T>
class beit_head : public parameter_store<beit_head_parameters<Config, T>, T> {
 public:
  explicit beit_head(std::uint64_t seed)
      : parameter_store<beit_head_parameters<Config, T>, T>(seed, std::uint64_t{2} << 32) {}
};

template <class Config, class T = float>
class beit_trainer {
 public:
  using config_type = Config;
  using value_type = T;
  using device_type = device::cpu;  // BEiT runs on the host
  static constexpr std::size_t N = Config::patches, D = Config::width, L = Config::patch_length;
  static constexpr std::size_t N_A = Config::subset_a, N_B = Config::subset_b;
  static constexpr std::size_t K = Config::vocabulary;
  using encoder_type = vit_encoder<Config, T>;

  beit_trainer(std::size_t batch, patch_tokenizer<Config> tokenizer, pretrain_options options = {})
      : options_(options),
        batch_(batch),
        encoder_(options.seed),
        head_(options.seed),
        tokenizer_(std::move(tokenizer)),
        sampler_(options.seed),
        optimizer_(options.adamw),
        patches_(batch),
        ids_(batch),
        visible_(batch),
        masked_(batch),
        tokens_(batch),
        d_tokens_(batch),
        d_out_(batch),
        predicted_(batch),
        d_masked_(batch),
        logits_(batch),
        lse_(batch * N_B),
        targets_(batch * N_B),
        activations_(batch) {
    if (batch == 0) throw std::invalid_argument("splitmask::beit_trainer: the batch is empty");
    detail::check_options(options);
    detail::register_parameters(optimizer_, encoder_);
    detail::register_parameters(optimizer_, head_);
  }
  beit_trainer(const beit_trainer&) = delete;
  beit_trainer& operator=(const beit_trainer&) = delete;

  /// One training step on images (B, C, S, S).
  template <class Images>
  step_losses step(const Images& images) {
    check_batch(images.view().batch());
    patchify<Config::patch_size>(patches_, images);
    tokenizer_.assign(ids_, patches_);
    sampler_.sample(visible_, masked_, optimizer_.steps() * batch_);
    return step_with(patches_, ids_, masked_);
  }

  /// One step with given patches (B, N, L), ids (B, N) and masked positions (B, N_B).
  template <class Patches, class Ids, class Masked>
  step_losses step_with(const Patches& patches, const Ids& ids, const Masked& masked) {
    step_losses losses = compute_gradients(patches, ids, masked);
    detail::apply_update(optimizer_, options_, losses);
    return losses;
  }

  /// Forward and backward only; the gradients of the loss (zeroed first), no update.
  template <class Patches, class Ids, class Masked>
  step_losses compute_gradients(const Patches& patches, const Ids& ids, const Masked& masked) {
    check_batch(patches.view().batch());
    const auto vi = ids.view();
    static_assert(std::is_same_v<typename decltype(vi)::extents_type, extents<dynamic, N>> &&
                      std::is_same_v<typename decltype(vi)::value_type, std::int32_t>,
                  "splitmask::beit_trainer: the token ids are int32 (B, N)");
    if (vi.batch() != batch_ || masked.view().batch() != batch_)
      throw shape_error(
          "splitmask::beit_trainer: the ids or the masked positions disagree with "
          "the batch");
    detail::check_distinct<N>(masked);
    encoder_.zero_grads();
    head_.zero_grads();
    const auto& hp = head_.params();
    const auto& hg = head_.grads();
    // Forward: mask tokens replace the masked patches' embeddings, then positions.
    encoder_.embed_patches(tokens_, patches);
    d_masked_ = hp.mask_token;  // (B, N_B, D), every row the mask token
    scatter_tokens(tokens_, d_masked_, masked);
    encoder_.add_position(tokens_);
    const auto out = encoder_.forward(activations_, tokens_);
    gather_tokens(predicted_, out, masked);
    linear_forward(logits_, predicted_, hp.head_weight, hp.head_bias);
    gather_ids(targets_, vi, masked);
    step_losses losses;
    losses.ce_a = cross_entropy_forward(lse_, logits_, targets_);
    losses.total = losses.ce_a;
    // Backward.
    cross_entropy_backward(logits_, logits_, lse_, targets_);
    linear_backward(predicted_, hg.head_weight, hg.head_bias, logits_, predicted_,
                    hp.head_weight);  // predicted_ now holds its gradient
    d_out_ = T(0);
    scatter_tokens(d_out_, predicted_, masked);
    encoder_.backward(activations_, d_tokens_, d_out_);
    encoder_.add_position_backward(d_tokens_);
    gather_tokens(d_masked_, d_tokens_, masked);  // the mask token's share
    detail::add_column_sums(hg.mask_token, as_rows(d_masked_));
    d_masked_ = T(0);
    scatter_tokens(d_tokens_, d_masked_, masked);  // masked patches reached no embedding
    encoder_.embed_patches_backward(d_tokens_, patches);
    losses.grad_norm = optimizer_.gradient_norm();
    return losses;
  }

  encoder_type& encoder() { return encoder_; }
  beit_head<Config, T>& head() { return head_; }
  const patch_tokenizer<Config>& tokenizer() const { return tokenizer_; }
  patch_tokenizer<Config>& tokenizer() { return tokenizer_; }
  adamw<T>& optimizer() { return optimizer_; }
  const pretrain_options& options() const { return options_; }
  std::size_t batch() const { return batch_; }
  std::uint64_t steps() const { return optimizer_.steps(); }

 private:
  void check_batch(std::size_t b) const {
    if (b != batch_)
      throw shape_error("splitmask::beit_trainer: got " + std::to_string(b) +
                        " images; this trainer was sized for " + std::to_string(batch_));
  }

  pretrain_options options_;
  std::size_t batch_;
  encoder_type encoder_;
  beit_head<Config, T> head_;
  patch_tokenizer<Config> tokenizer_;
  split_sampler<Config> sampler_;
  adamw<T> optimizer_;
  tensor<T, typename encoder_type::patch_extents> patches_;      // (B, N, L)
  tensor<std::int32_t, extents<dynamic, N>> ids_;                // (B, N)
  tensor<std::int32_t, extents<dynamic, N_A>> visible_;          // (B, N_A)
  tensor<std::int32_t, extents<dynamic, N_B>> masked_;           // (B, N_B)
  tensor<T, extents<dynamic, N, D>> tokens_, d_tokens_, d_out_;  // (B, N, D)
  tensor<T, extents<dynamic, N_B, D>> predicted_, d_masked_;     // (B, N_B, D)
  tensor<T, extents<dynamic, N_B, K>> logits_;                   // (B, N_B, K)
  tensor<T, extents<dynamic>> lse_;                              // (B·N_B)
  tensor<std::int32_t, extents<dynamic>> targets_;               // (B·N_B)
  encoder_activations<Config, T, N> activations_;
};

}  // namespace splitmask
