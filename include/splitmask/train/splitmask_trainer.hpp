// splitmask_trainer: one SplitMask training step, everything preallocated for a batch size.
//   ids = tokenizer(patches)                      targets, no gradient
//   A, B = split(N positions)                     per image, seeded by (seed, step)
//   e_A = encoder(tokens[A]), e_B = encoder(tokens[B])
//   CE_A, z̄_A = decoder(e_A -> predicts ids[B]);  CE_B, z̄_B = decoder(e_B -> predicts ids[A])
//   loss = CE_A + CE_B + λ · InfoNCE(z̄_A, z̄_B)
// then backward through all of it, gradient clipping by global norm, and AdamW with a linear
// warm-up and cosine schedule. On a device (Device other than cpu) everything above runs there:
// a batch of host images is copied in once, and the host waits for the device only to read the
// split (checked on the host), the losses and the gradient norm.
//
// Legend: B batch, N patches, N_A / N_B subsets, D encoder width, Dd decoder width.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "splitmask/core/error.hpp"
#include "splitmask/model/splitmask_decoder.hpp"
#include "splitmask/model/vit_encoder.hpp"
#include "splitmask/ops/infonce.hpp"
#include "splitmask/ops/patchify.hpp"
#include "splitmask/ops/tokens.hpp"
#include "splitmask/tokenizer/device_tokenizer.hpp"
#include "splitmask/tokenizer/patch_tokenizer.hpp"
#include "splitmask/train/adamw.hpp"
#include "splitmask/train/pretrain_step.hpp"
#include "splitmask/train/split_sampler.hpp"

namespace splitmask {

template <class Config, class T = float, class Device = device::cpu>
class splitmask_trainer {
  static constexpr bool on_host = std::is_same_v<Device, device::cpu>;

 public:
  using config_type = Config;
  using value_type = T;
  using device_type = Device;
  static constexpr std::size_t N = Config::patches, D = Config::width, L = Config::patch_length;
  static constexpr std::size_t N_A = Config::subset_a, N_B = Config::subset_b;
  static constexpr std::size_t Dd = Config::decoder_width;
  using encoder_type = vit_encoder<Config, T, Device>;
  using decoder_type = splitmask_decoder<Config, T, Device>;
  using image_extents = typename encoder_type::image_extents;  // (B, C, S, S)
  using patch_extents = typename encoder_type::patch_extents;  // (B, N, L)

  splitmask_trainer(std::size_t batch, patch_tokenizer<Config> tokenizer,
                    pretrain_options options = {})
      : options_(options),
        batch_(batch),
        encoder_(options.seed),
        decoder_(options.seed),
        tokenizer_(std::move(tokenizer)),
        device_tokenizer_(tokenizer_),
        sampler_(options.seed),
        optimizer_(options.adamw),
        patches_(batch),
        ids_(batch),
        index_a_(batch),
        index_b_(batch),
        tokens_(batch),
        d_tokens_(batch),
        x_a_(batch),
        d_x_a_(batch),
        d_e_a_(batch),
        x_b_(batch),
        d_x_b_(batch),
        d_e_b_(batch),
        encoder_a_(batch),
        encoder_b_(batch),
        decoder_a_(batch),
        decoder_b_(batch),
        d_pooled_a_(batch),
        d_pooled_b_(batch),
        images_(on_host ? 0 : batch),
        host_index_a_(on_host ? 0 : batch),
        host_index_b_(on_host ? 0 : batch) {
    if (batch < 2)
      throw std::invalid_argument(
          "splitmask::splitmask_trainer: InfoNCE needs at least 2 images per batch");
    detail::check_options(options);
    detail::register_parameters(optimizer_, encoder_);
    detail::register_parameters(optimizer_, decoder_);
  }
  splitmask_trainer(const splitmask_trainer&) = delete;
  splitmask_trainer& operator=(const splitmask_trainer&) = delete;

  /// One training step on `images` (B, C, S, S), on the host or on the trainer's device:
  /// tokens, split, forward, backward, clipping, AdamW. Throws (before updating anything) when
  /// the loss is not finite.
  template <class Images>
  step_losses step(const Images& images) {
    const auto vi = images.view();
    check_batch(vi.batch(), "step");
    if constexpr (!on_host && std::is_same_v<typename decltype(vi)::device_type, device::cpu>) {
      copy(images_, vi);  // the batch's one copy to the device
      patchify<Config::patch_size>(patches_, images_);
    } else {
      patchify<Config::patch_size>(patches_, vi);
    }
    if constexpr (on_host) {
      tokenizer_.assign(ids_, patches_);
    } else {
      device_tokenizer_.assign(ids_, patches_);
    }
    sampler_.sample(index_a_, index_b_, optimizer_.steps() * batch_);
    return step_with(patches_, ids_, index_a_, index_b_);
  }

  /// One step with given patches (B, N, L), token ids (B, N) and split (B, N_A), (B, N_B).
  template <class Patches, class Ids, class IA, class IB>
  step_losses step_with(const Patches& patches, const Ids& ids, const IA& index_a,
                        const IB& index_b) {
    step_losses losses = compute_gradients(patches, ids, index_a, index_b);
    detail::apply_update(optimizer_, options_, losses);
    return losses;
  }

  /// Forward and backward only: the losses and, in the encoder's and decoder's gradients, the
  /// gradient of the total loss (zeroed first). No update.
  template <class Patches, class Ids, class IA, class IB>
  step_losses compute_gradients(const Patches& patches, const Ids& ids, const IA& index_a,
                                const IB& index_b) {
    check_batch(patches.view().batch(), "compute_gradients");
    if constexpr (on_host) {
      detail::check_split<N>(index_a, index_b);
    } else {  // a look at the split on the host: the device's kernels cannot see overlaps
      copy(host_index_a_, index_a);
      copy(host_index_b_, index_b);
      detail::check_split<N>(host_index_a_, host_index_b_);
    }
    encoder_.zero_grads();
    decoder_.zero_grads();
    step_losses losses;
    encoder_.embed(tokens_, patches);
    gather_tokens(x_a_, tokens_, index_a);
    gather_tokens(x_b_, tokens_, index_b);
    const auto e_a = encoder_.forward(encoder_a_, x_a_);
    const auto e_b = encoder_.forward(encoder_b_, x_b_);
    losses.ce_a = decoder_.forward(decoder_a_, e_a, index_a, index_b, ids);
    losses.ce_b = decoder_.forward(decoder_b_, e_b, index_b, index_a, ids);
    losses.infonce = infonce_forward(infonce_, decoder_a_.pooled, decoder_b_.pooled, options_.tau);
    losses.total = losses.ce_a + losses.ce_b + options_.lambda * losses.infonce;

    infonce_backward(d_pooled_a_, d_pooled_b_, infonce_, options_.lambda);
    decoder_.backward(decoder_a_, d_e_a_, d_pooled_a_, 1.0, e_a, index_a, index_b);
    decoder_.backward(decoder_b_, d_e_b_, d_pooled_b_, 1.0, e_b, index_b, index_a);
    encoder_.backward(encoder_a_, d_x_a_, d_e_a_);
    encoder_.backward(encoder_b_, d_x_b_, d_e_b_);
    d_tokens_ = T(0);  // A and B are disjoint and cover every position
    scatter_tokens(d_tokens_, d_x_a_, index_a);
    scatter_tokens(d_tokens_, d_x_b_, index_b);
    encoder_.embed_backward(d_tokens_, patches);
    losses.grad_norm = optimizer_.gradient_norm();
    return losses;
  }

  /// Matrix-product FLOPs (2·M·N·K) of one step: the forward of both branches, their backward
  /// as twice that (the patch embedding's once: no input gradient), and the tokenizer's GEMM.
  static constexpr double step_flops(double batch) {
    const double body = encoder_type::forward_flops(batch, N_A, false) +
                        encoder_type::forward_flops(batch, N_B, false) +
                        decoder_type::forward_flops(batch, N_A, N_B) +
                        decoder_type::forward_flops(batch, N_B, N_A);
    const double embedding = 2.0 * batch * N * L * D;
    return 3 * body + 2 * embedding + 2.0 * batch * N * L * Config::vocabulary;
  }

  /// Copies the state of a trainer of the same config on any device: parameters, AdamW's
  /// moments and step count, and the tokenizer (a device trainer saves and resumes checkpoints
  /// through a host twin this way). Options and batch stay this trainer's.
  template <class OtherDevice>
  void copy_state_from(splitmask_trainer<Config, T, OtherDevice>& other) {
    copy(encoder_.flat_params(), other.encoder().flat_params());
    copy(decoder_.flat_params(), other.decoder().flat_params());
    copy(optimizer_.first_moment(), other.optimizer().first_moment());
    copy(optimizer_.second_moment(), other.optimizer().second_moment());
    optimizer_.set_steps(other.optimizer().steps());
    set_tokenizer(std::as_const(other).tokenizer());
  }

  encoder_type& encoder() { return encoder_; }
  decoder_type& decoder() { return decoder_; }
  const patch_tokenizer<Config>& tokenizer() const { return tokenizer_; }
  /// The tokenizer to change in place, on the host only: a device trainer's copy of it changes
  /// through set_tokenizer.
  template <bool Host = on_host, std::enable_if_t<Host, int> = 0>
  patch_tokenizer<Config>& tokenizer() {
    return tokenizer_;
  }
  void set_tokenizer(const patch_tokenizer<Config>& tokenizer) {
    tokenizer_ = patch_tokenizer<Config>(tokenizer);
    device_tokenizer_ = device_tokenizer_type(tokenizer_);
  }
  adamw<T, Device>& optimizer() { return optimizer_; }
  const pretrain_options& options() const { return options_; }
  std::size_t batch() const { return batch_; }
  std::uint64_t steps() const { return optimizer_.steps(); }

 private:
  void check_batch(std::size_t b, const char* what) const {
    if (b != batch_)
      throw shape_error("splitmask::splitmask_trainer::" + std::string(what) + ": got " +
                        std::to_string(b) + " images; this trainer was sized for " +
                        std::to_string(batch_));
  }

  template <class E>
  using device_tensor = tensor<T, E, Device>;
  template <class E>
  using device_ids = tensor<std::int32_t, E, Device>;
  // The host trainer assigns tokens with the tokenizer itself.
  using device_tokenizer_type =
      std::conditional_t<on_host, no_device_tokenizer, device_tokenizer<Config, Device>>;

  pretrain_options options_;
  std::size_t batch_;
  encoder_type encoder_;
  decoder_type decoder_;
  patch_tokenizer<Config> tokenizer_;
  device_tokenizer_type device_tokenizer_;
  split_sampler<Config> sampler_;
  adamw<T, Device> optimizer_;
  device_tensor<patch_extents> patches_;                          // (B, N, L)
  device_ids<extents<dynamic, N>> ids_;                           // (B, N)
  device_ids<extents<dynamic, N_A>> index_a_;                     // (B, N_A)
  device_ids<extents<dynamic, N_B>> index_b_;                     // (B, N_B)
  device_tensor<extents<dynamic, N, D>> tokens_, d_tokens_;       // (B, N, D)
  device_tensor<extents<dynamic, N_A, D>> x_a_, d_x_a_, d_e_a_;  // (B, N_A, D)
  device_tensor<extents<dynamic, N_B, D>> x_b_, d_x_b_, d_e_b_;  // (B, N_B, D)
  encoder_activations<Config, T, N_A, Device> encoder_a_;
  encoder_activations<Config, T, N_B, Device> encoder_b_;
  decoder_activations<Config, T, N_A, N_B, Device> decoder_a_;
  decoder_activations<Config, T, N_B, N_A, Device> decoder_b_;
  infonce_state<T, Dd, Device> infonce_;
  device_tensor<extents<dynamic, Dd>> d_pooled_a_, d_pooled_b_;  // (B, Dd)
  // A device trainer's only: the batch's images, and the split seen from the host.
  device_tensor<image_extents> images_;                        // (B, C, S, S)
  tensor<std::int32_t, extents<dynamic, N_A>> host_index_a_;  // (B, N_A)
  tensor<std::int32_t, extents<dynamic, N_B>> host_index_b_;  // (B, N_B)
};

}  // namespace splitmask
