// What every preset's unit calls, compiled once for the whole pretrainer: the host kernels that
// all model sizes share (<splitmask/cpu_kernels.hpp>), the run's plan and its log.
#define SPLITMASK_COMPILE_CPU_KERNELS
#include <splitmask/cpu_kernels.hpp>

#include "run.hpp"

namespace splitmask::examples {
namespace {
unsigned long long ull(std::uint64_t x) { return static_cast<unsigned long long>(x); }

std::string number(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", x);
  return text;
}

// The curve's lines: the one term, or the total and each term.
std::vector<std::string> series_of(const step_losses& losses) {
  std::vector<std::string> series;
  if (losses.count > 1) series.push_back("total");
  for (const auto& term : losses) series.push_back(term.key);
  return series;
}
}  // namespace

run_plan plan_run(const pretrain_settings& s, const image_set& set) {
  run_plan plan;
  plan.stats = compute_channel_stats(set);
  plan.augment.min_scale = s.min_scale;
  plan.augment.flip = s.flip;
  plan.per_epoch = set.size() / s.batch;
  if (plan.per_epoch == 0)
    throw file_error(set.source + ": " + std::to_string(set.size()) + " images hold no batch of " +
                     std::to_string(s.batch) + "; lower --batch");
  plan.total = s.epochs > 0 ? s.epochs * plan.per_epoch : s.steps;
  if (s.warmup >= 0 && std::uint64_t(s.warmup) > plan.total)
    throw std::invalid_argument("--warmup " + std::to_string(s.warmup) +
                                " is longer than the run's " + std::to_string(plan.total) +
                                " steps");
  plan.options.lr = s.lr > 0 ? s.lr : 1.5e-3 * double(s.batch) / 256;
  plan.options.warmup_steps = s.warmup >= 0 ? std::uint64_t(s.warmup) : plan.total / 20;
  plan.options.total_steps = plan.total;
  plan.options.seed = s.seed;
  plan.metadata = to_json(s);
  plan.metadata["data_stats"] = {{"mean", plan.stats.mean}, {"std", plan.stats.std}};
  plan.metadata["data_images"] = set.size();
  return plan;
}

run_log::run_log(const std::string& out, nlohmann::json metadata, const pretrain_settings& s,
                 const image_set& set, std::uint64_t per_epoch, std::uint64_t total,
                 std::uint64_t first, bool speaks)
    : checkpoint_(out + "/checkpoint.safetensors"),
      curve_(out + "/loss.svg"),
      metadata_(std::move(metadata)),
      settings_(s),
      set_(set),
      per_epoch_(per_epoch),
      total_(total),
      first_(first),
      speaks_(speaks),
      metrics_(speaks ? std::make_unique<metrics_log>(out + "/metrics.jsonl", first) : nullptr),
      progress_(first, total, std::max<std::uint64_t>(1, total / 50)) {}

void run_log::announce(const pretrain_options& o, const std::string& resumed_from) const {
  if (!speaks_) return;
  const auto& s = settings_;
  std::fprintf(stderr,
               "%s: %s on %zu images (%zux%zux%zu) from %s, batch %zu, %llu steps (%.2f "
               "epochs), lr %.3g, warm-up %llu, seed %llu\n",
               s.preset.c_str(), s.objective.c_str(), set_.size(), set_.height, set_.width,
               set_.channels, set_.source.c_str(), s.batch, ull(total_),
               double(total_) / double(per_epoch_), o.lr, ull(o.warmup_steps), ull(s.seed));
  if (!s.objective_options.empty())
    std::fprintf(stderr, "%s options (others at their defaults): %s\n", s.objective.c_str(),
                 s.objective_options.dump().c_str());
  if (first_ > 0)
    std::fprintf(stderr, "resuming from %s at step %llu\n", resumed_from.c_str(), ull(first_));
}

int run_log::already_complete() const {
  if (!speaks_) return 0;
  std::fprintf(stderr, "the run is already complete (%llu of %llu steps)\n", ull(first_),
               ull(total_));
  return 0;
}

void run_log::record(std::uint64_t step, const step_losses& losses,
                     std::chrono::steady_clock::time_point start) {
  if (!speaks_) return;
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
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
  metrics_->append(r);
  progress_.update(step, text, speed);
}

int run_log::failed(const non_finite_loss& e) {
  if (!speaks_) return 3;
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

int run_log::interrupted(std::uint64_t step) {
  if (!speaks_) return 130;
  progress_.interrupt();
  std::fprintf(stderr, "interrupted after step %llu; saved %s; continue with --resume %s\n",
               ull(step), checkpoint_.c_str(), checkpoint_.c_str());
  return 130;
}

int run_log::done(std::uint64_t steps) const {
  if (!speaks_) return 0;
  std::fprintf(stderr, "done: %llu steps in %s; checkpoint %s, metrics %s, loss curve %s\n",
               ull(steps), format_duration(progress_.elapsed()).c_str(), checkpoint_.c_str(),
               metrics_->path().c_str(), curve_.c_str());
  return 0;
}

void run_log::write_curve() const {
  if (!speaks_ || series_.empty()) return;
  write_loss_curve_svg(curve_, metrics_->records(), series_,
                       settings_.preset + " · " + settings_.objective + " · batch " +
                           std::to_string(settings_.batch));
}

}  // namespace splitmask::examples
