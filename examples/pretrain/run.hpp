// run_pretraining: one pre-training run of a compiled config, from a loaded dataset to the last
// checkpoint: tokenizer, trainer, threaded batch loader, progress, metrics, loss curve, and
// atomic checkpoints at intervals. Resuming from a checkpoint continues the very same run.
// A trainer on a GPU saves and resumes through a host twin of batch 2, which holds only its
// state (a checkpoint is the same file whichever device wrote it).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>
#include <splitmask/data/augment.hpp>
#include <splitmask/data/batch_loader.hpp>
#include <splitmask/data/image_set.hpp>
#include <splitmask/io/checkpoint.hpp>
#include <splitmask/io/safetensors.hpp>
#include <splitmask/ops/patchify.hpp>
#include <splitmask/tokenizer/patch_tokenizer.hpp>
#include <splitmask/train/beit_trainer.hpp>
#include <splitmask/train/splitmask_trainer.hpp>

#include "../common/progress.hpp"
#include "../common/training_log.hpp"
#include "settings.hpp"

namespace splitmask::examples {

/// Set by the SIGINT/SIGTERM handler: the run saves a checkpoint after the current step and ends.
inline std::atomic<bool> stop_requested{false};

/// How this invocation runs, beside the run's own settings (these may change on --resume).
struct run_control {
  std::string out;              // output folder
  std::string resume;           // a checkpoint to continue, or empty
  std::uint64_t save_every = 0;  // steps between checkpoints; 0: ten per run
  std::uint64_t stop_after = 0;  // end (with a checkpoint) after this many steps; 0: run to the end
  std::string device = "cpu";    // cpu or cuda
  std::string precision = "fp32";  // of the GPU's products: fp32, tf32 or bf16
};

/// Where a run writes: its checkpoint, metrics and loss curve.
struct run_files {
  std::string checkpoint, metrics, curve;
  explicit run_files(const std::string& out)
      : checkpoint(out + "/checkpoint.safetensors"),
        metrics(out + "/metrics.jsonl"),
        curve(out + "/loss.svg") {}
};

/// The run's total steps: --epochs times the batches of an epoch (the last partial batch of each
/// epoch is dropped) when given, else --steps.
inline std::uint64_t total_steps(const pretrain_settings& s, std::uint64_t batches_per_epoch) {
  return s.epochs > 0 ? s.epochs * batches_per_epoch : s.steps;
}

inline pretrain_options recipe_options(const pretrain_settings& s, std::uint64_t total) {
  pretrain_options o;
  o.lr = s.lr > 0 ? s.lr : 1.5e-3 * double(s.batch) / 256;  // the recipe's scaling with batch
  o.warmup_steps = s.warmup >= 0 ? std::uint64_t(s.warmup) : total / 20;
  o.total_steps = total;
  o.seed = s.seed;
  return o;
}

/// The tokenizer of a new run: its vocabulary is drawn (seeded) from up to vocabulary_images
/// training images, evenly spaced, normalised as the trainer sees them but not augmented, then
/// refined by spherical k-means. The images are already standardised: its statistics are 0, 1.
template <class Config>
patch_tokenizer<Config> build_tokenizer(const image_set& set, const channel_stats& stats,
                                        const pretrain_settings& s) {
  constexpr std::size_t C = Config::channels, S = Config::image_size;
  constexpr std::size_t budget = std::size_t{256} << 20;  // bytes of images held for it
  const std::size_t count = std::max<std::size_t>(
      1, std::min({set.size(), s.vocabulary_images, budget / (C * S * S * sizeof(float))}));
  tensor<float, extents<dynamic, C, S, S>> images(count);
  for (std::size_t i = 0; i < count; ++i)
    augment_image(set, i * set.size() / count, stats, augmentation::none(), counter_rng(s.seed),
                  0, images.data() + i * C * S * S, S);
  std::array<float, C> zero{}, one{};
  one.fill(1.0f);
  auto tokenizer = patch_tokenizer<Config>::sample(images, zero, one, s.seed);
  if (s.kmeans_iterations > 0) {
    tensor<float, extents<dynamic, Config::patches, Config::patch_length>> patches(count);
    patchify<Config::patch_size>(patches, images);
    const double similarity = tokenizer.refine(patches, s.kmeans_iterations);
    std::fprintf(stderr, "tokenizer: %zu words from %zu images, %zu k-means iterations, mean "
                 "cosine similarity %.3f\n", Config::vocabulary, count, s.kmeans_iterations,
                 similarity);
  }
  return tokenizer;
}

namespace detail {

inline nlohmann::json stats_json(const channel_stats& stats) {
  return {{"mean", stats.mean}, {"std", stats.std}};
}

// The loss terms as metrics fields and as text for the progress line.
inline void add_losses(nlohmann::json& record, const step_losses& l, bool splitmask) {
  if (splitmask) {
    record["ce_a"] = l.ce_a;
    record["ce_b"] = l.ce_b;
    record["infonce"] = l.infonce;
  } else {
    record["ce"] = l.ce_a;
  }
  record["total"] = l.total;
}
inline std::string loss_text(const step_losses& l, bool splitmask) {
  char text[128];
  if (splitmask)
    std::snprintf(text, sizeof text, "loss %.3f (CE_A %.3f CE_B %.3f NCE %.3f)", l.total, l.ce_a,
                  l.ce_b, l.infonce);
  else
    std::snprintf(text, sizeof text, "CE %.3f", l.total);
  return text;
}

// Where a trainer's state goes to and comes from a checkpoint: itself on the host, a host twin
// of batch 2 for a trainer on a device.
template <class Trainer, bool OnHost = std::is_same_v<typename Trainer::device_type, device::cpu>>
struct checkpoint_access {
  Trainer& trainer;
  Trainer& saved() { return trainer; }
  Trainer& to_load() { return trainer; }
  void loaded() {}
};
template <class Trainer>
struct checkpoint_access<Trainer, false> {
  using twin_type = splitmask_trainer<typename Trainer::config_type, typename Trainer::value_type>;
  Trainer& trainer;
  std::unique_ptr<twin_type> twin =
      std::make_unique<twin_type>(2, trainer.tokenizer(), trainer.options());
  twin_type& saved() {  // the trainer's state, copied to the twin
    twin->copy_state_from(trainer);
    return *twin;
  }
  twin_type& to_load() { return *twin; }
  void loaded() { trainer.copy_state_from(*twin); }
};

template <class Trainer>
int train(const pretrain_settings& s, const image_set& set, const run_control& control) {
  const std::string& resume = control.resume;
  using Config = typename Trainer::config_type;
  constexpr bool splitmask = !std::is_same_v<Trainer, beit_trainer<Config>>;
  const run_files files(control.out);
  const channel_stats stats = compute_channel_stats(set);
  augmentation augment;
  augment.min_scale = s.min_scale;
  augment.flip = s.flip;
  const std::uint64_t per_epoch = set.size() / s.batch;
  if (per_epoch == 0)
    throw file_error(set.source + ": " + std::to_string(set.size()) +
                     " images hold no batch of " + std::to_string(s.batch) + "; lower --batch");
  const std::uint64_t total = total_steps(s, per_epoch);
  if (s.warmup >= 0 && std::uint64_t(s.warmup) > total)
    throw std::invalid_argument("--warmup " + std::to_string(s.warmup) +
                                " is longer than the run's " + std::to_string(total) + " steps");
  const pretrain_options options = recipe_options(s, total);
  nlohmann::json run = to_json(s);
  run["data_stats"] = stats_json(stats);
  run["data_images"] = set.size();

  checkpoint_info resumed;
  std::unique_ptr<Trainer> trainer;
  if (resume.empty()) {
    trainer = std::make_unique<Trainer>(s.batch, build_tokenizer<Config>(set, stats, s), options);
  } else {
    const auto file = safetensors_reader::open(resume);
    resumed = read_checkpoint_info(file, resume);
    if (resumed.run.value("data_stats", nlohmann::json()) != run["data_stats"] ||
        resumed.run.value("data_images", nlohmann::json()) != run["data_images"])
      throw file_error(resume + ": the data (" + set.source +
                       ") is not the data this run was trained on: its image count or "
                       "statistics differ");
    trainer = std::make_unique<Trainer>(s.batch, load_tokenizer<Config>(file, resume),
                                        resumed.pretrain());
    checkpoint_access<Trainer> access{*trainer};
    load_checkpoint(file, resume, access.to_load());
    access.loaded();
  }
  checkpoint_access<Trainer> checkpoints{*trainer};
  const std::uint64_t first = trainer->steps();
  metrics_log metrics(files.metrics, first);
  std::fprintf(stderr,
               "%s: %s on %zu images (%zux%zux%zu) from %s, batch %zu, %llu steps (%.2f epochs), "
               "lr %.3g, warm-up %llu, seed %llu\n",
               s.preset.c_str(), s.objective.c_str(), set.size(), set.height, set.width,
               set.channels, set.source.c_str(), s.batch, static_cast<unsigned long long>(total),
               double(total) / double(per_epoch), trainer->options().lr,
               static_cast<unsigned long long>(trainer->options().warmup_steps),
               static_cast<unsigned long long>(s.seed));
  if (first > 0)
    std::fprintf(stderr, "resuming from %s at step %llu\n", resume.c_str(),
                 static_cast<unsigned long long>(first));
  if (first >= total) {
    std::fprintf(stderr, "the run is already complete (%llu of %llu steps)\n",
                 static_cast<unsigned long long>(first), static_cast<unsigned long long>(total));
    return 0;
  }

  const std::vector<std::string> series =
      splitmask ? std::vector<std::string>{"total", "ce_a", "ce_b", "infonce"}
                : std::vector<std::string>{"ce"};
  const std::string title = s.preset + " · " + s.objective + " · batch " + std::to_string(s.batch);
  // The last checkpoint of this run on disk: the one resumed from, until this run saves one.
  std::string saved_path = resume;
  std::uint64_t saved_step = first;
  auto save = [&] {
    save_checkpoint(files.checkpoint, checkpoints.saved(), run);
    write_loss_curve_svg(files.curve, metrics.records(), series, title);
    saved_path = files.checkpoint;
    saved_step = trainer->steps();
  };
  const std::uint64_t save_every =
      control.save_every > 0 ? control.save_every : std::max<std::uint64_t>(1, total / 10);
  batch_loader<Config> loader(set, s.batch, stats, augment, s.seed, first);
  progress_bar progress(first, total, std::max<std::uint64_t>(1, total / 50));
  double seconds_per_step = 0;
  for (std::uint64_t step = first; step < total; ++step) {
    const auto& images = loader.next();
    const auto t0 = std::chrono::steady_clock::now();
    step_losses losses;
    try {
      losses = trainer->step(images);
    } catch (const non_finite_loss& e) {
      progress.interrupt();
      write_loss_curve_svg(files.curve, metrics.records(), series, title);
      std::fprintf(stderr, "error: %s\n", e.what());
      if (!saved_path.empty())
        std::fprintf(stderr, "the last good checkpoint is %s (step %llu)\n", saved_path.c_str(),
                     static_cast<unsigned long long>(saved_step));
      else
        std::fprintf(stderr, "no checkpoint was written before it\n");
      return 3;
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    seconds_per_step = step == first ? dt : 0.9 * seconds_per_step + 0.1 * dt;
    nlohmann::json record{{"step", step + 1}, {"epoch", double(step + 1) / double(per_epoch)}};
    add_losses(record, losses, splitmask);
    record["grad_norm"] = losses.grad_norm;
    record["lr"] = losses.lr;
    record["images_per_s"] = double(s.batch) / seconds_per_step;
    record["elapsed_s"] = progress.elapsed();
    metrics.append(record);
    progress.update(step + 1, loss_text(losses, splitmask), double(s.batch) / seconds_per_step);
    if (stop_requested && step + 1 < total) {
      progress.interrupt();
      save();
      std::fprintf(stderr, "interrupted after step %llu; saved %s; continue with --resume %s\n",
                   static_cast<unsigned long long>(step + 1), files.checkpoint.c_str(),
                   files.checkpoint.c_str());
      return 130;
    }
    if ((step + 1) % save_every == 0 || step + 1 == total) save();
    if (step + 1 < total && step + 1 - first == control.stop_after) {
      progress.interrupt();
      if (saved_step != step + 1) save();
      std::fprintf(stderr, "stopped after %llu steps (--stop-after); continue with --resume %s\n",
                   static_cast<unsigned long long>(control.stop_after), files.checkpoint.c_str());
      return 0;
    }
  }
  std::fprintf(stderr, "done: %llu steps in %s; checkpoint %s, metrics %s, loss curve %s\n",
               static_cast<unsigned long long>(total - first),
               format_duration(progress.elapsed()).c_str(), files.checkpoint.c_str(),
               files.metrics.c_str(), files.curve.c_str());
  return 0;
}

}  // namespace detail

/// The same run on the GPU: defined by run_cuda.hpp, compiled by nvcc (instances_cuda.cu) for
/// the presets of SPLITMASK_PRETRAIN_CUDA_INSTANCES when CUDA is on.
template <class Config>
int run_pretraining_on_cuda(const pretrain_settings& s, const image_set& set,
                            const run_control& control);

/// Runs (or continues, from control.resume) the pre-training `s` describes on `set`, on the CPU.
/// Returns the exit status: 0 done or stopped as asked, 3 a non-finite loss, 130 interrupted.
template <class Config>
int run_pretraining(const pretrain_settings& s, const image_set& set, const run_control& control) {
  if (s.objective == "beit") return detail::train<beit_trainer<Config>>(s, set, control);
  return detail::train<splitmask_trainer<Config>>(s, set, control);
}

}  // namespace splitmask::examples
