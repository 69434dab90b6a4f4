// The MAE objective (He et al., 2021): a random mask at the mask ratio (3/4 by default); the
// encoder runs on the visible patches only; a light decoder with mask tokens predicts the pixels
// of the masked patches; the loss is the mean squared error over them, each target patch
// normalised by its own mean and (unbiased) variance when norm_pix_loss is on, as MAE's recipe
// does. No tokenizer. Pixels are in our patch order (C, P, P), not MAE's (P, P, C).
//   tokens = embed(patches);  e = encoder(tokens[visible])
//   prediction = decoder(e -> masked positions)                  (B, N_m, C·P·P)
//   loss = mean((prediction - normalise(patches[masked]))²)
//
//   splitmask::mae_objective<>                                   // mask ratio 3/4, decoder
//   splitmask::mae_objective<std::ratio<3, 4>, splitmask::decoder_config<128, 4, 4>>
//
// Legend: B batch, N patches, N_v visible, N_m masked, D encoder width, L = C·P·P.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ratio>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "splitmask/comm/communicator.hpp"
#include "splitmask/model/decoder_config.hpp"
#include "splitmask/model/masked_decoder.hpp"
#include "splitmask/model/vit_encoder.hpp"
#include "splitmask/ops/tokens.hpp"
#include "splitmask/tensor/copy.hpp"
#include "splitmask/tensor/expr/elementwise.hpp"
#include "splitmask/tensor/expr/reduce.hpp"
#include "splitmask/tensor/tensor.hpp"
#include "splitmask/train/objective.hpp"

namespace splitmask {

template <class Objective, class Encoder, class T, class Device>
class mae_model;

/// MAE's run-time options.
struct mae_options {
  bool norm_pix_loss = true;  // each target patch standardised by its own statistics
};

template <class MaskRatio = std::ratio<3, 4>, class Decoder = decoder_config<>>
struct mae_objective {
  static constexpr const char* name = "mae";
  using mask_ratio = MaskRatio;  // masked share of the patches
  using decoder = Decoder;
  using options = mae_options;
  template <class Encoder, class T, class Device>
  using model = mae_model<mae_objective, Encoder, T, Device>;

  template <class Encoder, class F>
  static void for_each_size(F&& f) {
    using sizes = decoder_sizes<Encoder, Decoder>;
    f("mask_ratio", ratio_text<MaskRatio>());
    f("decoder_width", sizes::width);
    f("decoder_depth", sizes::depth);
    f("decoder_heads", sizes::heads);
  }
  template <class Options, class F>
  static void for_each_option(Options& o, F&& f) {
    f("norm_pix_loss", o.norm_pix_loss);
  }
};

template <class Objective, class Encoder, class T, class Device>
class mae_model {
 public:
  using split_sizes = patch_split<Encoder::patches, typename Objective::mask_ratio>;
  static constexpr std::size_t N = Encoder::patches, D = Encoder::width, L = Encoder::patch_length;
  static constexpr std::size_t N_v = split_sizes::kept, N_m = split_sizes::masked;
  using encoder_type = vit_encoder<Encoder, T, Device>;
  using decoder_type = masked_decoder<Encoder, typename Objective::decoder, L, T, Device>;

  mae_model(std::size_t batch, std::uint64_t seed, mae_options options)
      : options_(options),
        decoder_(seed),
        split_(batch, seed),
        tokens_(batch),
        d_tokens_(batch),
        x_(batch),
        d_x_(batch),
        d_e_(batch),
        encoder_act_(batch),
        decoder_act_(batch),
        target_(batch),
        centred_(batch),
        row_squares_(batch),
        host_row_squares_(std::is_same_v<Device, device::cpu> ? 0 : batch) {
    if (batch == 0) throw std::invalid_argument("splitmask: MAE's batch is empty");
  }

  template <class F>
  void for_each_store(F&& f) {
    f(decoder_);
  }

  template <class Patches>
  void prepare(const Patches&, std::uint64_t first_image) {
    split_.draw(first_image);
  }
  /// Given visible (B, N_v) and masked positions (B, N_m) (tests).
  template <class Visible, class Masked>
  void set_masks(const Visible& visible, const Masked& masked) {
    split_.set(visible, masked);
  }

  template <class Patches>
  step_losses forward_backward(encoder_type& encoder, const Patches& patches) {
    const auto& visible = split_.a();
    const auto& masked = split_.b();
    encoder.embed(tokens_, patches);
    gather_tokens(x_, tokens_, visible);
    const auto e = encoder.forward(encoder_act_, x_);
    decoder_.forward(decoder_act_, e, visible, masked);
    targets(patches, masked);
    auto d_prediction = decoder_act_.prediction;  // the difference, then the gradient
    d_prediction = d_prediction - target_;
    const double count = double(d_prediction.size());
    step_losses losses;
    losses.add("mse", "MSE", sum_of_squares(d_prediction) / count);
    losses.total = losses["mse"];
    d_prediction = d_prediction * T(2.0 / count);
    decoder_.backward(decoder_act_, d_e_, e, visible, masked);
    encoder.backward(encoder_act_, d_x_, d_e_);
    d_tokens_ = T(0);  // masked patches reached no embedding
    scatter_tokens(d_tokens_, d_x_, visible);
    encoder.embed_backward(d_tokens_, patches);
    return losses;
  }

  /// Matrix-product FLOPs of one step: encoder on N_v tokens and decoder, forward and twice
  /// that backward, and the patch embedding (all N patches) forward and its weight gradient.
  static constexpr double step_flops(double batch) {
    const double body = encoder_type::forward_flops(batch, N_v, false) +
                        decoder_type::forward_flops(batch, N_v, N_m);
    return 3 * body + 2 * (2.0 * batch * N * L * D);
  }

  template <class Other>
  void copy_state_from(const Other&) {}
  /// Nothing beyond the parameters to share with other ranks (trainer::distribute).
  void distribute(communicator&) {}

  decoder_type& decoder() { return decoder_; }
  const mae_options& options() const { return options_; }

 private:
  template <class E>
  using device_tensor = tensor<T, E, Device>;

  // target_ = the masked patches' pixels, each standardised by its own mean and unbiased
  // variance under norm_pix_loss.
  template <class Patches, class Masked>
  void targets(const Patches& patches, const Masked& masked) {
    gather_tokens(target_, patches, masked);
    if (options_.norm_pix_loss) {
      centred_ = target_ - row_mean(target_);
      target_ = centred_ * rsqrt(row_sum_squares(centred_) / T(L - 1) + T(1e-6));
    }
  }

  // Σ x² in double, from per-row sums.
  template <class X>
  double sum_of_squares(const X& x) {
    row_squares_ = row_sum_squares(x);
    const T* rows = row_squares_.data();
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      copy(host_row_squares_, row_squares_);
      rows = host_row_squares_.data();
    }
    double sum = 0;
    for (std::size_t i = 0; i < row_squares_.size(); ++i) sum += double(rows[i]);
    return sum;
  }

  mae_options options_;
  decoder_type decoder_;
  patch_split_state<N, N_v, Device> split_;
  device_tensor<extents<dynamic, N, D>> tokens_, d_tokens_;  // (B, N, D)
  device_tensor<extents<dynamic, N_v, D>> x_, d_x_, d_e_;    // (B, N_v, D)
  typename encoder_type::template activations<N_v> encoder_act_;
  typename decoder_type::template activations<N_v, N_m> decoder_act_;
  device_tensor<extents<dynamic, N_m, L>> target_, centred_;  // (B, N_m, L)
  device_tensor<extents<dynamic, N_m, 1>> row_squares_;       // (B, N_m, 1)
  tensor<T, extents<dynamic, N_m, 1>> host_row_squares_;      // a device's, on the host
};

}  // namespace splitmask
