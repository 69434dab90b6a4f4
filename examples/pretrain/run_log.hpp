// run_log: what a pre-training run tells and keeps besides its checkpoint: the opening line, the
// progress bar, one metrics record per step, the loss curve, and where the last good checkpoint
// is, for the messages that end a run (done, stopped, interrupted, a non-finite loss).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <splitmask/data/image_set.hpp>
#include <splitmask/train/pretrain_step.hpp>
#include <string>
#include <vector>

#include "../common/progress.hpp"
#include "../common/training_log.hpp"
#include "settings.hpp"

namespace splitmask::examples {

class run_log {
 public:
  /// The log of a run of `total` steps (per_epoch per epoch) that has done `first`.
  run_log(const std::string& out, nlohmann::json metadata, const pretrain_settings& s,
          const image_set& set, std::uint64_t per_epoch, std::uint64_t total, std::uint64_t first)
      : checkpoint_(out + "/checkpoint.safetensors"),
        curve_(out + "/loss.svg"),
        metadata_(std::move(metadata)),
        settings_(s),
        set_(set),
        per_epoch_(per_epoch),
        total_(total),
        first_(first),
        metrics_(out + "/metrics.jsonl", first),
        progress_(first, total, std::max<std::uint64_t>(1, total / 50)) {}

  /// The opening line: preset, objective, data, length and options.
  void announce(const pretrain_options& o, const std::string& resumed_from) const {
    const auto& s = settings_;
    std::fprintf(stderr,
                 "%s: %s on %zu images (%zux%zux%zu) from %s, batch %zu, %llu steps (%.2f "
                 "epochs), lr %.3g, warm-up %llu, seed %llu\n",
                 s.preset.c_str(), s.objective.c_str(), set_.size(), set_.height, set_.width,
                 set_.channels, set_.source.c_str(), s.batch, ull(total_),
                 double(total_) / double(per_epoch_), o.lr, ull(o.warmup_steps), ull(s.seed));
    if (first_ > 0)
      std::fprintf(stderr, "resuming from %s at step %llu\n", resumed_from.c_str(), ull(first_));
  }
  int already_complete() const {
    std::fprintf(stderr, "the run is already complete (%llu of %llu steps)\n", ull(first_),
                 ull(total_));
    return 0;
  }

  /// The last good checkpoint on disk and its step.
  void saved_as(const std::string& path, std::uint64_t step) {
    saved_path_ = path;
    saved_step_ = step;
  }
  /// Writes the checkpoint (write(path, metadata)) and the loss curve.
  template <class Write>
  void save(Write&& write, std::uint64_t step) {
    write(checkpoint_, metadata_);
    write_curve();
    saved_as(checkpoint_, step);
  }

  /// Step `step` (1-based) ended with `losses`; it started at `start`.
  void record(std::uint64_t step, const step_losses& losses,
              std::chrono::steady_clock::time_point start) {
    const double dt =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    seconds_per_step_ = step == first_ + 1 ? dt : 0.9 * seconds_per_step_ + 0.1 * dt;
    const double speed = double(settings_.batch) / seconds_per_step_;
    nlohmann::json r{{"step", step}, {"epoch", double(step) / double(per_epoch_)}};
    std::string text = losses.count > 1 ? "loss " + number(losses.total) + " (" : "";
    for (const auto& term : losses) {
      r[term.key] = term.value;
      text += (losses.count > 1 && &term != losses.begin() ? " " : "") + std::string(term.label) +
              " " + number(term.value);
    }
    text += losses.count > 1 ? ")" : "";
    if (series_.empty()) series_ = series_of(losses);
    r["total"] = losses.total;
    r["grad_norm"] = losses.grad_norm;
    r["lr"] = losses.lr;
    r["images_per_s"] = speed;
    r["elapsed_s"] = progress_.elapsed();
    metrics_.append(r);
    progress_.update(step, text, speed);
  }

  int failed(const non_finite_loss& e) {
    progress_.interrupt();
    write_curve();
    std::fprintf(stderr, "error: %s\n", e.what());
    if (!saved_path_.empty())
      std::fprintf(stderr, "the last good checkpoint is %s (step %llu)\n", saved_path_.c_str(),
                   ull(saved_step_));
    else
      std::fprintf(stderr, "no checkpoint was written before it\n");
    return 3;
  }
  int interrupted(std::uint64_t step) {
    progress_.interrupt();
    std::fprintf(stderr, "interrupted after step %llu; saved %s; continue with --resume %s\n",
                 ull(step), checkpoint_.c_str(), checkpoint_.c_str());
    return 130;
  }
  template <class Save>
  int stopped_after(std::uint64_t steps, std::uint64_t step, Save&& save) {
    progress_.interrupt();
    if (saved_step_ != step) save();
    std::fprintf(stderr, "stopped after %llu steps (--stop-after); continue with --resume %s\n",
                 ull(steps), checkpoint_.c_str());
    return 0;
  }
  int done(std::uint64_t steps) const {
    std::fprintf(stderr, "done: %llu steps in %s; checkpoint %s, metrics %s, loss curve %s\n",
                 ull(steps), format_duration(progress_.elapsed()).c_str(), checkpoint_.c_str(),
                 metrics_.path().c_str(), curve_.c_str());
    return 0;
  }

 private:
  static unsigned long long ull(std::uint64_t x) { return static_cast<unsigned long long>(x); }
  static std::string number(double x) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", x);
    return text;
  }
  // The curve's lines: the one term, or the total and each term.
  static std::vector<std::string> series_of(const step_losses& losses) {
    std::vector<std::string> series;
    if (losses.count > 1) series.push_back("total");
    for (const auto& term : losses) series.push_back(term.key);
    return series;
  }
  void write_curve() const {
    if (series_.empty()) return;
    write_loss_curve_svg(curve_, metrics_.records(), series_,
                         settings_.preset + " · " + settings_.objective + " · batch " +
                             std::to_string(settings_.batch));
  }

  std::string checkpoint_, curve_;
  nlohmann::json metadata_;
  const pretrain_settings& settings_;
  const image_set& set_;
  std::uint64_t per_epoch_, total_, first_;
  metrics_log metrics_;
  progress_bar progress_;
  std::vector<std::string> series_;
  std::string saved_path_;
  std::uint64_t saved_step_ = 0;
  double seconds_per_step_ = 0;
};

}  // namespace splitmask::examples
