// The SplitMask objective (El-Nouby et al., 2021):
//   ids = tokenizer(patches)                      targets, no gradient
//   A, B = split(N positions)                     per image, seeded by the image's number
//   e_A = encoder(tokens[A]), e_B = encoder(tokens[B])
//   CE_A, z̄_A = decoder(e_A -> predicts ids[B]);  CE_B, z̄_B = decoder(e_B -> predicts ids[A])
//   loss = CE_A + CE_B + λ · InfoNCE(z̄_A, z̄_B)
// with the masked_decoder shared by both branches and its output pooled over all N positions.
//
//   splitmask::splitmask_objective<512>                       // K, mask ratio 1/2, decoder
//   splitmask::splitmask_objective<256, std::ratio<1, 2>, splitmask::decoder_config<96, 2, 3>>
//
// Legend: B batch, N patches, N_A / N_B subsets, D encoder width, Dd decoder width, K vocabulary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <ratio>
#include <stdexcept>
#include <string>
#include <utility>

#include "splitmask/comm/communicator.hpp"
#include "splitmask/model/decoder_config.hpp"
#include "splitmask/model/masked_decoder.hpp"
#include "splitmask/model/vit_encoder.hpp"
#include "splitmask/ops/cross_entropy.hpp"
#include "splitmask/ops/infonce.hpp"
#include "splitmask/ops/tokens.hpp"
#include "splitmask/train/objective.hpp"
#include "splitmask/train/objectives/token_targets.hpp"

namespace splitmask {

template <class Objective, class Encoder, class T, class Device>
class splitmask_model;

/// SplitMask's run-time options.
struct splitmask_options {
  double tau = 0.2;     // InfoNCE temperature
  double lambda = 1.0;  // weight of InfoNCE
};

template <std::size_t Vocabulary = 512, class MaskRatio = std::ratio<1, 2>,
          class Decoder = decoder_config<>>
struct splitmask_objective {
  static constexpr const char* name = "splitmask";
  static constexpr std::size_t vocabulary = Vocabulary;  // K
  using mask_ratio = MaskRatio;                          // N_B / N
  using decoder = Decoder;
  using options = splitmask_options;
  template <class Encoder, class T, class Device>
  using model = splitmask_model<splitmask_objective, Encoder, T, Device>;

  /// f(name, value) for each size, with the encoder's as the decoder's defaults.
  template <class Encoder, class F>
  static void for_each_size(F&& f) {
    using sizes = decoder_sizes<Encoder, Decoder>;
    f("vocabulary", Vocabulary);
    f("mask_ratio", ratio_text<MaskRatio>());
    f("decoder_width", sizes::width);
    f("decoder_depth", sizes::depth);
    f("decoder_heads", sizes::heads);
  }
  /// f(name, field) for each run-time option of o (const or not).
  template <class Options, class F>
  static void for_each_option(Options& o, F&& f) {
    f("tau", o.tau);
    f("lambda", o.lambda);
  }
};

template <class Objective, class Encoder, class T, class Device>
class splitmask_model
    : public token_targets<Encoder, Objective::vocabulary,
                           patch_split<Encoder::patches, typename Objective::mask_ratio>::kept,
                           Device> {
 public:
  using split_sizes = patch_split<Encoder::patches, typename Objective::mask_ratio>;
  static constexpr std::size_t N = Encoder::patches, D = Encoder::width, L = Encoder::patch_length;
  static constexpr std::size_t N_A = split_sizes::kept, N_B = split_sizes::masked;
  static constexpr std::size_t K = Objective::vocabulary;
  using encoder_type = vit_encoder<Encoder, T, Device>;
  using decoder_type = masked_decoder<Encoder, typename Objective::decoder, K, T, Device>;
  using tokenizer_type = patch_tokenizer<Encoder, K>;
  using targets_type = token_targets<Encoder, K, N_A, Device>;
  static constexpr std::size_t Dd = decoder_type::Dd;

  splitmask_model(std::size_t batch, std::uint64_t seed, splitmask_options options,
                  tokenizer_type tokenizer)
      : targets_type(batch, seed, std::move(tokenizer)),
        batch_(batch),
        options_(options),
        decoder_(seed),
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
        branch_a_(batch),
        branch_b_(batch),
        d_pooled_a_(batch),
        d_pooled_b_(batch) {
    if (batch < 2)
      throw std::invalid_argument("splitmask: InfoNCE needs at least 2 images per batch");
    if (!(options.tau > 0)) throw std::invalid_argument("splitmask_options: tau must be > 0");
    if (!(options.lambda >= 0))
      throw std::invalid_argument("splitmask_options: lambda must be >= 0");
  }

  template <class F>
  void for_each_store(F&& f) {
    f(decoder_);
  }

  template <class Patches>
  step_losses forward_backward(encoder_type& encoder, const Patches& patches) {
    const auto& a = this->split().a();
    const auto& b = this->split().b();
    const auto& ids = this->ids();
    encoder.embed(tokens_, patches);
    gather_tokens(x_a_, tokens_, a);
    gather_tokens(x_b_, tokens_, b);
    const auto e_a = encoder.forward(encoder_a_, x_a_);
    const auto e_b = encoder.forward(encoder_b_, x_b_);
    step_losses losses;
    losses.add("ce_a", "CE_A", branch_a_.forward(decoder_, e_a, a, b, ids));
    losses.add("ce_b", "CE_B", branch_b_.forward(decoder_, e_b, b, a, ids));
    const double nce = infonce();
    losses.add("infonce", "InfoNCE", nce);
    losses.total = losses["ce_a"] + losses["ce_b"] + options_.lambda * nce;

    branch_a_.backward(decoder_, d_e_a_, d_pooled_a_, e_a, a, b);
    branch_b_.backward(decoder_, d_e_b_, d_pooled_b_, e_b, b, a);
    encoder.backward(encoder_a_, d_x_a_, d_e_a_);
    encoder.backward(encoder_b_, d_x_b_, d_e_b_);
    d_tokens_ = T(0);  // A and B are disjoint and cover every position
    scatter_tokens(d_tokens_, d_x_a_, a);
    scatter_tokens(d_tokens_, d_x_b_, b);
    encoder.embed_backward(d_tokens_, patches);
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
    return 3 * body + 2 * embedding + 2.0 * batch * N * L * K;
  }

  decoder_type& decoder() { return decoder_; }
  const splitmask_options& options() const { return options_; }

  /// One of comm's data-parallel ranks (trainer::distribute): rank 0's tokenizer, and InfoNCE
  /// over the global batch: every rank gathers all ranks' descriptors, computes the whole loss
  /// and keeps the gradient of its own rows, so the loss is the same for any number of ranks.
  void distribute(communicator& comm) {
    targets_type::distribute(comm);
    comm_ = &comm;
    global_.reset();
    if (comm.size() > 1) global_ = std::make_unique<global_descriptors>(batch_ * comm.size());
  }

 private:
  template <class E>
  using device_tensor = tensor<T, E, Device>;

  // One branch: the decoder's activations, the cross-entropy's and the pooled descriptor.
  template <std::size_t n_in, std::size_t n_out>
  struct branch {
    typename decoder_type::template activations<n_in, n_out> decoder;
    device_tensor<extents<dynamic>> lse;                     // (B·n_out)
    tensor<std::int32_t, extents<dynamic>, Device> targets;  // (B·n_out)
    device_tensor<extents<dynamic, Dd>> pooled;              // (B, Dd)

    explicit branch(std::size_t batch)
        : decoder(batch), lse(batch * n_out), targets(batch * n_out), pooled(batch) {}

    template <class Encoded, class In, class Out, class Ids>
    double forward(const decoder_type& d, const Encoded& encoded, const In& in, const Out& out,
                   const Ids& ids) {
      d.forward(decoder, encoded, in, out);
      mean_tokens_forward(pooled, decoder.body.output);
      gather_ids(targets, ids, out);
      return cross_entropy_forward(lse, decoder.prediction, targets);
    }
    template <class DEncoded, class DPooled, class Encoded, class In, class Out>
    void backward(decoder_type& d, DEncoded& d_encoded, const DPooled& d_pooled,
                  const Encoded& encoded, const In& in, const Out& out) {
      cross_entropy_backward(decoder.prediction, decoder.prediction, lse, targets);
      d.backward(decoder, d_encoded, encoded, in, out,
                 [&](auto& d_z) { mean_tokens_backward(d_z, d_pooled, write_mode::accumulate); });
    }
  };

  // InfoNCE of the pooled descriptors, and the gradient of λ·InfoNCE in d_pooled_a_ and
  // d_pooled_b_. Distributed, over all ranks' images (B·W rows): the rank's B rows of the
  // gradient, scaled by W because the trainer averages gradients over the W ranks.
  double infonce() {
    if (!global_) {
      const double nce =
          infonce_forward(infonce_, branch_a_.pooled, branch_b_.pooled, options_.tau);
      infonce_backward(d_pooled_a_, d_pooled_b_, infonce_, options_.lambda);
      return nce;
    }
    const std::size_t rows = batch_ * Dd, first = std::size_t(comm_->rank()) * rows;
    comm_->all_gather(branch_a_.pooled.data(), global_->pooled_a.data(), rows);
    comm_->all_gather(branch_b_.pooled.data(), global_->pooled_b.data(), rows);
    const double nce =
        infonce_forward(global_->state, global_->pooled_a, global_->pooled_b, options_.tau);
    infonce_backward(global_->d_a, global_->d_b, global_->state, options_.lambda * comm_->size());
    using rows_view = tensor_view<T, extents<dynamic, Dd>, Device>;
    copy(d_pooled_a_, rows_view(global_->d_a.data() + first, extents<dynamic, Dd>(batch_)));
    copy(d_pooled_b_, rows_view(global_->d_b.data() + first, extents<dynamic, Dd>(batch_)));
    return nce;
  }

  struct global_descriptors {
    explicit global_descriptors(std::size_t rows)
        : pooled_a(rows), pooled_b(rows), d_a(rows), d_b(rows) {}
    device_tensor<extents<dynamic, Dd>> pooled_a, pooled_b, d_a, d_b;  // (B·W, Dd)
    infonce_state<T, Dd, Device> state;
  };

  std::size_t batch_;
  communicator* comm_ = nullptr;
  std::unique_ptr<global_descriptors> global_;
  splitmask_options options_;
  decoder_type decoder_;
  device_tensor<extents<dynamic, N, D>> tokens_, d_tokens_;      // (B, N, D)
  device_tensor<extents<dynamic, N_A, D>> x_a_, d_x_a_, d_e_a_;  // (B, N_A, D)
  device_tensor<extents<dynamic, N_B, D>> x_b_, d_x_b_, d_e_b_;  // (B, N_B, D)
  typename encoder_type::template activations<N_A> encoder_a_;
  typename encoder_type::template activations<N_B> encoder_b_;
  branch<N_A, N_B> branch_a_;
  branch<N_B, N_A> branch_b_;
  infonce_state<T, Dd, Device> infonce_;
  device_tensor<extents<dynamic, Dd>> d_pooled_a_, d_pooled_b_;  // (B, Dd)
};

}  // namespace splitmask
