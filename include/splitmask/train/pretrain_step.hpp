// What every training step shares (pre-training's objectives and fine-tuning): the options, the
// losses a step reports, the registration of a model's parameters with AdamW, and the update that
// ends a step (finite-loss check, clipping by global norm, learning-rate schedule, AdamW).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "splitmask/core/error.hpp"
#include "splitmask/model/init.hpp"
#include "splitmask/train/adamw.hpp"

namespace splitmask {

struct pretrain_options {
  double lr = 1.5e-3;              // peak learning rate (the recipe: 1.5e-3 · B / 256)
  std::uint64_t warmup_steps = 0;  // linear warm-up
  std::uint64_t total_steps = 0;   // cosine decay to final_lr at this step; 0: constant lr
  double final_lr = 0;
  double clip = 3.0;  // gradient clipping by global norm; 0 turns it off
  adamw_options adamw{};
  std::uint64_t seed = 0;  // initialisation, masks and splits
};

/// One term of an objective's loss: its key in metrics ("ce_a"), its label in messages ("CE_A").
struct loss_term {
  const char* key = "";
  const char* label = "";
  double value = 0;
};

/// What one step reports: the objective's loss terms, their weighted sum, the gradient norm
/// (before clipping) and the learning rate of the update.
struct step_losses {
  static constexpr std::size_t max_terms = 4;
  std::array<loss_term, max_terms> terms{};
  std::size_t count = 0;
  double total = 0, grad_norm = 0, lr = 0;

  void add(const char* key, const char* label, double value) {
    if (count == max_terms) throw std::logic_error("splitmask::step_losses: too many terms");
    terms[count++] = {key, label, value};
  }
  /// The value of the term `key`; throws std::out_of_range for a key the objective lacks.
  double operator[](std::string_view key) const {
    for (std::size_t i = 0; i < count; ++i)
      if (key == terms[i].key) return terms[i].value;
    throw std::out_of_range("splitmask::step_losses: no loss term '" + std::string(key) + "'");
  }
  const loss_term* begin() const { return terms.data(); }
  const loss_term* end() const { return terms.data() + count; }
};

/// Thrown by a step whose loss or gradient is NaN or infinite; the message names the term and
/// the step, counted from 1 (the step that failed, as a training log numbers it).
class non_finite_loss : public error {
 public:
  using error::error;
};

namespace detail {

/// Throws std::invalid_argument, naming the option, for options no step could use.
inline void check_options(const pretrain_options& o) {
  auto fail = [](const std::string& what) {
    throw std::invalid_argument("splitmask::pretrain_options: " + what);
  };
  if (!(o.lr >= 0) || !(o.final_lr >= 0)) fail("lr and final_lr must be >= 0");
  if (o.total_steps != 0 && o.total_steps < o.warmup_steps)
    fail("total_steps (" + std::to_string(o.total_steps) + ") is shorter than warmup_steps (" +
         std::to_string(o.warmup_steps) + ")");
  if (!(o.clip >= 0)) fail("clip must be >= 0 (0 turns clipping off)");
  const auto& a = o.adamw;
  if (!(a.beta1 >= 0 && a.beta1 < 1 && a.beta2 >= 0 && a.beta2 < 1))
    fail("AdamW's betas must lie in [0, 1)");
  if (!(a.eps > 0) || !(a.weight_decay >= 0)) fail("AdamW's eps must be > 0, weight decay >= 0");
}

// Marks image i's positions of one index (B, n) in `seen`; throws shape_error for a position
// out of [0, N) or already marked.
template <std::size_t N, class View>
void mark_positions(bool (&seen)[N], const View& index, std::size_t i) {
  constexpr std::size_t n = View::extents_type::last;
  for (std::size_t j = 0; j < n; ++j) {
    const auto p = index.data()[i * n + j];
    if (static_cast<long long>(p) < 0 || static_cast<std::size_t>(p) >= N ||
        seen[static_cast<std::size_t>(p)])
      throw shape_error("splitmask: position " + std::to_string(p) + " of image " +
                        std::to_string(i) + " is out of range or named twice");
    seen[static_cast<std::size_t>(p)] = true;
  }
}

/// Throws shape_error unless each image's positions in `index` are distinct and in [0, N).
template <std::size_t N, class Index>
void check_distinct(const Index& index) {
  const auto v = index.view();
  for (std::size_t i = 0; i < v.batch(); ++i) {
    bool seen[N] = {};
    mark_positions(seen, v, i);
  }
}

/// Throws shape_error unless index_a and index_b split each image's N positions: disjoint and
/// covering (an overlap would silently drop gradient in the scatter).
template <std::size_t N, class IA, class IB>
void check_split(const IA& index_a, const IB& index_b) {
  const auto a = index_a.view();
  const auto b = index_b.view();
  static_assert(decltype(a)::extents_type::last + decltype(b)::extents_type::last == N,
                "splitmask: the two subsets must hold N positions together");
  for (std::size_t i = 0; i < a.batch(); ++i) {
    bool seen[N] = {};
    mark_positions(seen, a, i);
    mark_positions(seen, b, i);
  }
}

/// The learning rate of every tensor unscaled.
struct same_learning_rate {
  double operator()(const std::string&) const { return 1.0; }
};

/// Registers every tensor of a model (a parameter_store)
/// with the optimiser; weight decay follows each tensor's role, and lr_scale(name) scales its
/// learning rate (fine-tuning's layer-wise decay).
template <class T, class Device, class Model, class LrScale = same_learning_rate>
void register_parameters(adamw<T, Device>& optimizer, const Model& model, LrScale lr_scale = {}) {
  for (const auto& t : model.tensors())
    optimizer.add(t.name, t.data, t.grad, t.size, decays(t.role), lr_scale(t.name));
}

/// Clips the gradients by global norm (options.clip; 0: off) and applies AdamW at the rate of
/// the warm-up + cosine schedule for this step (options.lr, warmup_steps, total_steps,
/// final_lr: pre-training's or fine-tuning's options); returns that rate.
template <class T, class Device, class Options>
double scheduled_update(adamw<T, Device>& optimizer, const Options& options, double grad_norm) {
  const double scale = options.clip > 0 ? std::min(1.0, options.clip / (grad_norm + 1e-6)) : 1.0;
  const double lr = warmup_cosine_lr(options.lr, optimizer.steps(), options.warmup_steps,
                                     options.total_steps, options.final_lr);
  optimizer.step(lr, scale);
  return lr;
}

/// Ends a step whose gradients are computed: refuses a non-finite loss or gradient (nothing is
/// updated), clips by global norm, and applies AdamW at the scheduled learning rate.
template <class T, class Device>
void apply_update(adamw<T, Device>& optimizer, const pretrain_options& options,
                  step_losses& losses) {
  auto refuse = [&](const char* name, double value) {
    if (!std::isfinite(value))
      throw non_finite_loss(std::string("splitmask: the ") + name + " is " + std::to_string(value) +
                            " at step " + std::to_string(optimizer.steps() + 1) +
                            " (nothing was updated); lower the learning rate or check the data");
  };
  for (const auto& term : losses) refuse(term.label, term.value);
  refuse("total loss", losses.total);
  refuse("gradient norm", losses.grad_norm);
  losses.lr = scheduled_update(optimizer, options, losses.grad_norm);
}

}  // namespace detail
}  // namespace splitmask
