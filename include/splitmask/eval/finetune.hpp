// finetune: a ViT encoder and a linear head trained end to end on labelled images, by the
// protocol SplitMask takes from BEiT: mean-pooled features normalised by a LayerNorm of their own
// (BEiT's fc_norm: it gives the head unit-scale inputs), AdamW with a linear warm-up and a
// cosine schedule, label smoothing, and layer-wise learning-rate decay (the patch embedding's
// rate is lr · decay^(depth + 1), block i's lr · decay^(depth - i), the final norm's, fc_norm's
// and the head's lr). Start it from a pre-trained encoder (load_encoder into encoder()) or a random
// one (the from-scratch baseline): everything else is the same.
//
//   images (B, C, S, S)   labels (B) in [0, classes)   pooled, normed (B, D)   logits (B, classes)
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "splitmask/core/error.hpp"
#include "splitmask/eval/linear_classifier.hpp"
#include "splitmask/model/vit_encoder.hpp"
#include "splitmask/ops/layernorm.hpp"
#include "splitmask/ops/patchify.hpp"
#include "splitmask/ops/tokens.hpp"
#include "splitmask/train/adamw.hpp"
#include "splitmask/train/pretrain_step.hpp"

namespace splitmask {

struct finetune_options {
  double lr = 1e-3;                   // peak learning rate (of the head and the last layers)
  std::uint64_t warmup_steps = 0;     // linear warm-up
  std::uint64_t total_steps = 0;      // cosine decay to final_lr at this step; 0: constant
  double final_lr = 1e-6;
  double layer_decay = 0.75;          // 1: the same rate everywhere
  double label_smoothing = 0.1;
  double clip = 0;                    // gradient clipping by global norm; 0: off (BEiT's)
  adamw_options adamw{0.9, 0.999, 1e-8, 0.05};
};

struct finetune_losses {
  double loss = 0;       // smoothed cross-entropy, mean over the batch
  double grad_norm = 0;  // before clipping
  double lr = 0;         // the peak rate this step used
};

template <class Config, class T = float>
class finetune_trainer {
 public:
  static constexpr std::size_t N = Config::patches, D = Config::width;
  using encoder_type = vit_encoder<Config, T>;

  /// Batches of `batch` images, `classes` classes; the encoder starts random from `seed`, the
  /// fc_norm at identity and the head at zero.
  finetune_trainer(std::size_t batch, std::size_t classes, finetune_options options,
                   std::uint64_t seed = 0)
      : options_(options),
        batch_(batch),
        encoder_(seed),
        head_(D, classes),
        d_weight_(row_matrix<T>::Zero(Eigen::Index(classes), Eigen::Index(D))),
        d_bias_(Eigen::Matrix<T, Eigen::Dynamic, 1>::Zero(Eigen::Index(classes))),
        optimizer_(options.adamw),
        patches_(batch),
        tokens_(batch),
        d_tokens_(batch),
        d_out_(batch),
        pooled_(batch),
        d_pooled_(batch),
        normed_(batch),
        mean_(batch),
        rstd_(batch),
        activations_(batch) {
    if (batch == 0) throw std::invalid_argument("splitmask::finetune_trainer: the batch is empty");
    if (!(options.lr > 0) || !(options.layer_decay > 0 && options.layer_decay <= 1) ||
        !(options.label_smoothing >= 0 && options.label_smoothing < 1) || !(options.clip >= 0))
      throw std::invalid_argument(
          "splitmask::finetune_trainer: needs lr > 0, layer decay in (0, 1], label smoothing in "
          "[0, 1) and clip >= 0");
    detail::register_parameters(optimizer_, encoder_, [&](const std::string& name) {
      return std::pow(options_.layer_decay, double(Config::depth + 1 - layer_of(name)));
    });
    norm_weight_.view() = T(1);
    norm_bias_.view() = T(0);
    optimizer_.add("fc_norm.weight", norm_weight_.data(), d_norm_weight_.data(), D, false);
    optimizer_.add("fc_norm.bias", norm_bias_.data(), d_norm_bias_.data(), D, false);
    optimizer_.add("head.weight", head_.weight.data(), d_weight_.data(),
                   std::size_t(head_.weight.size()), true);
    optimizer_.add("head.bias", head_.bias.data(), d_bias_.data(), std::size_t(head_.bias.size()),
                   false);
  }
  finetune_trainer(const finetune_trainer&) = delete;
  finetune_trainer& operator=(const finetune_trainer&) = delete;

  /// The layer a parameter belongs to for the learning-rate decay: 0 the embedding, i + 1 block
  /// i, depth + 1 the final norm (and the head).
  static std::size_t layer_of(const std::string& name) {
    const std::string prefix = "blocks.";
    if (name.compare(0, prefix.size(), prefix) == 0)
      return 1 + std::stoul(name.substr(prefix.size()));
    if (name.compare(0, 5, "norm.") == 0) return Config::depth + 1;
    return 0;
  }

  /// One step: gradients of the smoothed cross-entropy, clipping, AdamW at the scheduled rate.
  /// Throws non_finite_loss (nothing updated) when the loss or the gradient is not finite.
  template <class Images>
  finetune_losses step(const Images& images, const std::int32_t* labels) {
    finetune_losses losses = compute_gradients(images, labels);
    losses.grad_norm = optimizer_.gradient_norm();
    if (!std::isfinite(losses.loss) || !std::isfinite(losses.grad_norm))
      throw non_finite_loss("splitmask: the fine-tuning loss or gradient is not finite at step " +
                            std::to_string(optimizer_.steps() + 1) +
                            " (nothing was updated); lower the learning rate");
    losses.lr = detail::scheduled_update(optimizer_, options_, losses.grad_norm);
    return losses;
  }

  /// Forward and backward only: the loss, and the gradients of every parameter (written).
  template <class Images>
  finetune_losses compute_gradients(const Images& images, const std::int32_t* labels) {
    if (images.view().batch() != batch_)
      throw shape_error("splitmask::finetune_trainer: a batch of " +
                        std::to_string(images.view().batch()) + " images; the trainer takes " +
                        std::to_string(batch_));
    patchify<Config::patch_size>(patches_, images);
    encoder_.embed(tokens_, patches_);
    mean_tokens_forward(pooled_, encoder_.forward(activations_, tokens_));
    layernorm_forward(normed_, mean_, rstd_, pooled_, norm_weight_, norm_bias_,
                      Config::layer_norm_eps);
    const Eigen::Map<const row_matrix<T>> x(normed_.data(), Eigen::Index(batch_), Eigen::Index(D));
    finetune_losses losses;
    losses.loss =
        softmax_cross_entropy<T>(head_.logits(x), labels, options_.label_smoothing, &d_logits_);
    head_.backward(x, d_logits_, d_weight_, d_bias_, &d_x_);
    Eigen::Map<row_matrix<T>>(d_pooled_.data(), Eigen::Index(batch_), Eigen::Index(D)) = d_x_;
    d_norm_weight_.view() = T(0);
    d_norm_bias_.view() = T(0);
    layernorm_backward(d_pooled_, d_norm_weight_, d_norm_bias_, d_pooled_, pooled_, mean_, rstd_,
                       norm_weight_);
    mean_tokens_backward(d_out_, d_pooled_);
    encoder_.zero_grads();
    encoder_.backward(activations_, d_tokens_, d_out_);
    encoder_.embed_backward(d_tokens_, patches_);
    return losses;
  }

  /// The predicted class of each image (any batch size).
  template <class Images>
  std::vector<std::int32_t> predict(const Images& images) {
    const auto f = features_(encoder_, images);
    const std::size_t b = f.batch();
    tensor<T, extents<dynamic, D>> normed(b);
    tensor<T, extents<dynamic>> mean(b), rstd(b);
    layernorm_forward(normed, mean, rstd, f, norm_weight_, norm_bias_, Config::layer_norm_eps);
    return head_.predict(
        Eigen::Map<const row_matrix<T>>(normed.data(), Eigen::Index(b), Eigen::Index(D)));
  }

  encoder_type& encoder() { return encoder_; }
  linear_classifier<T>& head() { return head_; }
  const row_matrix<T>& head_weight_gradient() const { return d_weight_; }
  std::uint64_t steps() const { return optimizer_.steps(); }
  std::size_t batch() const { return batch_; }
  const adamw<T>& optimizer() const { return optimizer_; }
  adamw<T>& optimizer() { return optimizer_; }  // for finetune_state.hpp

 private:
  finetune_options options_;
  std::size_t batch_;
  encoder_type encoder_;
  linear_classifier<T> head_;
  row_matrix<T> d_weight_, d_logits_, d_x_;
  Eigen::Matrix<T, Eigen::Dynamic, 1> d_bias_;
  adamw<T> optimizer_;
  tensor<T, typename encoder_type::patch_extents> patches_;
  tensor<T, typename encoder_type::token_extents> tokens_, d_tokens_, d_out_;
  tensor<T, extents<dynamic, D>> pooled_, d_pooled_, normed_;
  tensor<T, extents<dynamic>> mean_, rstd_;
  tensor<T, extents<D>> norm_weight_, norm_bias_, d_norm_weight_, d_norm_bias_;  // fc_norm
  encoder_activations<Config, T, N> activations_;
  vit_features<Config, T> features_;
};

}  // namespace splitmask
