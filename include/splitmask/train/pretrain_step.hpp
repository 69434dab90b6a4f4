// What the pre-training objectives (SplitMask, BEiT) share: their options, the losses a step
// reports, the registration of a model's parameters with AdamW, and the update that ends a step
// (finite-loss check, clipping by global norm, learning-rate schedule, AdamW).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "splitmask/model/init.hpp"
#include "splitmask/train/adamw.hpp"

namespace splitmask {

struct pretrain_options {
  double lr = 1.5e-3;              // peak learning rate (the recipe: 1.5e-3 · B / 256)
  std::uint64_t warmup_steps = 0;  // linear warm-up
  std::uint64_t total_steps = 0;   // cosine decay to final_lr at this step; 0: constant lr
  double final_lr = 0;
  double clip = 3.0;    // gradient clipping by global norm; 0 turns it off
  double tau = 0.2;     // SplitMask: InfoNCE temperature
  double lambda = 1.0;  // SplitMask: weight of InfoNCE
  adamw_options adamw{};
  std::uint64_t seed = 0;  // initialisation and splits
};

/// What one step reports. BEiT has one cross-entropy, reported as ce_a.
struct step_losses {
  double ce_a = 0, ce_b = 0, infonce = 0, total = 0;
  double grad_norm = 0;  // before clipping
  double lr = 0;         // the learning rate of the update
};

namespace detail {

/// Registers every tensor of a model (anything with params(), flat_params(), flat_grads())
/// with the optimiser; weight decay follows each tensor's role.
template <class T, class Model>
void register_parameters(adamw<T>& optimizer, const Model& model) {
  const auto params = model.flat_params();
  const auto grads = model.flat_grads();
  model.params().for_each([&](const std::string& name, auto view, parameter_role role) {
    optimizer.add(name, view.data(), grads.data() + (view.data() - params.data()), view.size(),
                  decays(role));
  });
}

/// Ends a step whose gradients are computed: refuses a non-finite loss or gradient (nothing is
/// updated), clips by global norm, and applies AdamW at the scheduled learning rate.
template <class T>
void apply_update(adamw<T>& optimizer, const pretrain_options& options, step_losses& losses) {
  if (!std::isfinite(losses.total) || !std::isfinite(losses.grad_norm))
    throw std::runtime_error("splitmask: the loss or its gradient is not finite at step " +
                             std::to_string(optimizer.steps()) + " (loss " +
                             std::to_string(losses.total) + ", gradient norm " +
                             std::to_string(losses.grad_norm) +
                             "); lower the learning rate or check the data");
  const double scale =
      options.clip > 0 ? std::min(1.0, options.clip / (losses.grad_norm + 1e-6)) : 1.0;
  losses.lr = warmup_cosine_lr(options.lr, optimizer.steps(), options.warmup_steps,
                               options.total_steps, options.final_lr);
  optimizer.step(losses.lr, scale);
}

}  // namespace detail
}  // namespace splitmask
