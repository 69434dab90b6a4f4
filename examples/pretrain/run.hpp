// The pre-training run of a compiled preset and objective, from a loaded dataset to the last
// checkpoint: plan, trainer (new, or resumed from a checkpoint), then the loop of batch, step,
// log and checkpoint. Resuming continues the very same run. A trainer on a GPU saves and
// resumes through a host twin, which holds only its state (a checkpoint is the same file
// whichever device wrote it).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <splitmask/data/augment.hpp>
#include <splitmask/data/batch_loader.hpp>
#include <splitmask/data/image_set.hpp>
#include <splitmask/io/checkpoint.hpp>
#include <splitmask/io/safetensors.hpp>
#include <splitmask/ops/patchify.hpp>
#include <splitmask/tokenizer/patch_tokenizer.hpp>
#include <splitmask/train/checkpoint.hpp>
#include <splitmask/train/trainer.hpp>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "../common/presets.hpp"
#include "objectives.hpp"
#include "run_log.hpp"
#include "runs.hpp"
#include "settings.hpp"

namespace splitmask::examples {

/// What a run knows before its first step: the data's statistics, the augmentation, its length
/// and options, and the metadata its checkpoints carry (settings and data statistics).
struct run_plan {
  channel_stats stats;
  augmentation augment;
  std::uint64_t per_epoch = 0, total = 0;  // batches per epoch (the last partial one dropped)
  pretrain_options options;
  nlohmann::json metadata;
};

/// Each rank's share of the global batch of `batch` images; throws std::invalid_argument when
/// the processes cannot share it equally.
inline std::size_t rank_batch(std::size_t batch, const communicator& comm) {
  const std::size_t ranks = std::size_t(comm.size());
  if (batch % ranks != 0)
    throw std::invalid_argument("--batch " + std::to_string(batch) +
                                " is the batch of all processes together: it must be a multiple "
                                "of their number, " +
                                std::to_string(ranks));
  return batch / ranks;
}

/// The plan of the run `s` on `set`: --epochs times the batches of an epoch when given, else
/// --steps; the recipe's learning rate 1.5e-3 · B / 256 unless --lr; warm-up 5% unless --warmup.
/// (Compiled once, in once.cpp.)
run_plan plan_run(const pretrain_settings& s, const image_set& set);

/// The tokenizer of a new run: its vocabulary is drawn (seeded) from up to vocabulary_images
/// training images, evenly spaced, normalised as the trainer sees them but not augmented, then
/// refined by spherical k-means. The images are already standardised: its statistics are 0, 1.
template <class Config, std::size_t K>
patch_tokenizer<Config, K> build_tokenizer(const image_set& set, const channel_stats& stats,
                                           const pretrain_settings& s) {
  constexpr std::size_t C = Config::channels, S = Config::image_size;
  constexpr std::size_t budget = std::size_t{256} << 20;  // bytes of images held for it
  const std::size_t count = std::max<std::size_t>(
      1, std::min({set.size(), s.vocabulary_images, budget / (C * S * S * sizeof(float))}));
  tensor<float, extents<dynamic, C, S, S>> images(count);
  for (std::size_t i = 0; i < count; ++i)
    augment_image(set, i * set.size() / count, stats, augmentation::none(), counter_rng(s.seed), 0,
                  images.data() + i * C * S * S, S);
  std::array<float, C> zero{}, one{};
  one.fill(1.0f);
  auto tokenizer = patch_tokenizer<Config, K>::sample(
      images, zero, one, s.seed, s.distinct_words ? word_draw::distinct : word_draw::any);
  const char* draws = s.distinct_words ? " (distinct draws)" : "";
  if (s.kmeans_iterations > 0) {
    tensor<float, extents<dynamic, Config::patches, Config::patch_length>> patches(count);
    patchify<Config::patch_size>(patches, images);
    const double similarity = tokenizer.refine(patches, s.kmeans_iterations);
    std::fprintf(stderr,
                 "tokenizer: %zu words%s from %zu images, %zu k-means iterations, mean "
                 "cosine similarity %.3f\n",
                 K, draws, count, s.kmeans_iterations, similarity);
  } else {
    std::fprintf(stderr, "tokenizer: %zu random patches%s from %zu images\n", K, draws, count);
  }
  return tokenizer;
}

namespace detail {

template <class Trainer>
using host_trainer_t = trainer<typename Trainer::objective_type, typename Trainer::config_type,
                               typename Trainer::value_type>;

template <class Trainer>
constexpr bool needs_tokenizer =
    splitmask::detail::has_tokenizer<typename Trainer::model_type>::value;

// The objective's options: its defaults, with the run's --objective-options in place. Throws
// std::invalid_argument for a name it does not have or a value of the wrong kind.
template <class Objective>
typename Objective::options objective_options_of(const nlohmann::json& given) {
  auto all = objective_options_json<Objective>(typename Objective::options{});
  for (const auto& [name, value] : given.items()) {
    if (!all.contains(name))
      throw std::invalid_argument("--objective-options " + name + ": the " + Objective::name +
                                  " objective's options are " +
                                  (all.empty() ? std::string("none") : all.dump()));
    all[name] = value;
  }
  try {
    return objective_options_from_json<Objective>(all);
  } catch (const nlohmann::json::exception&) {
    throw std::invalid_argument("--objective-options " + given.dump() +
                                ": a value of the wrong kind (the defaults: " +
                                objective_options_json<Objective>({}).dump() + ")");
  }
}

// A new trainer for the plan: the objective's options, and a tokenizer built from the data for
// an objective that has one.
template <class Trainer>
std::unique_ptr<Trainer> new_trainer(const pretrain_settings& s, std::size_t batch,
                                     const image_set& set, const run_plan& plan) {
  if constexpr (needs_tokenizer<Trainer>) {
    constexpr std::size_t K = Trainer::objective_type::vocabulary;
    using Config = typename Trainer::config_type;
    return std::make_unique<Trainer>(
        batch, plan.options,
        objective_options_of<typename Trainer::objective_type>(s.objective_options),
        build_tokenizer<Config, K>(set, plan.stats, s));
  } else {
    return std::make_unique<Trainer>(
        batch, plan.options,
        objective_options_of<typename Trainer::objective_type>(s.objective_options));
  }
}

// A trainer of `Trainer`'s type and the given batch, built as the checkpoint `file` describes.
template <class Trainer>
std::unique_ptr<Trainer> trainer_like(const safetensors_reader& file, const std::string& path,
                                      std::size_t batch) {
  using Objective = typename Trainer::objective_type;
  const auto info = read_checkpoint_info(file, path);
  const auto options = checkpoint_options(info);
  const auto objective = checkpoint_objective_options<Objective>(info);
  if constexpr (needs_tokenizer<Trainer>) {
    return std::make_unique<Trainer>(
        batch, options, objective,
        load_tokenizer<typename Trainer::config_type, Objective::vocabulary>(file, path));
  } else {
    return std::make_unique<Trainer>(batch, options, objective);
  }
}

// Where a trainer's state goes to and comes from a checkpoint: itself on the host, a host twin
// of batch 2 for a trainer on a device.
template <class Trainer, bool OnHost = std::is_same_v<typename Trainer::device_type, device::cpu>>
struct checkpoint_access {
  Trainer& trainer;
  Trainer& saved() { return trainer; }
  void load(const safetensors_reader& file, const std::string& path) {
    load_checkpoint(file, path, trainer);
  }
};
template <class Trainer>
struct checkpoint_access<Trainer, false> {
  Trainer& trainer;
  std::unique_ptr<host_trainer_t<Trainer>> twin;
  host_trainer_t<Trainer>& saved() {  // the trainer's state, copied to the twin
    twin->copy_state_from(trainer);
    return *twin;
  }
  void load(const safetensors_reader& file, const std::string& path) {
    load_checkpoint(file, path, *twin);
    trainer.copy_state_from(*twin);
  }
};

template <class Trainer>
checkpoint_access<Trainer> access(Trainer& trainer, const safetensors_reader* file,
                                  const std::string& path) {
  if constexpr (std::is_same_v<typename Trainer::device_type, device::cpu>) {
    return {trainer};
  } else if (file) {
    return {trainer, trainer_like<host_trainer_t<Trainer>>(*file, path, 2)};
  } else if constexpr (needs_tokenizer<Trainer>) {
    return {trainer, std::make_unique<host_trainer_t<Trainer>>(2, trainer.options(),
                                                               trainer.objective_options(),
                                                               trainer.objective().tokenizer())};
  } else {
    return {trainer, std::make_unique<host_trainer_t<Trainer>>(2, trainer.options(),
                                                               trainer.objective_options())};
  }
}

// The trainer of the checkpoint `path`, after checking that `set` is the data it was trained on.
template <class Trainer>
std::unique_ptr<Trainer> resumed_trainer(const std::string& path, std::size_t batch,
                                         const image_set& set, const run_plan& plan) {
  const auto file = safetensors_reader::open(path);
  const auto info = read_checkpoint_info(file, path);
  if (info.run.value("data_stats", nlohmann::json()) != plan.metadata["data_stats"] ||
      info.run.value("data_images", nlohmann::json()) != plan.metadata["data_images"])
    throw file_error(path + ": the data (" + set.source +
                     ") is not the data this run was trained on: its image count or "
                     "statistics differ");
  auto trainer = trainer_like<Trainer>(file, path, batch);
  access(*trainer, &file, path).load(file, path);
  return trainer;
}

}  // namespace detail

/// Runs (or continues, from control.resume) the pre-training `s` describes on `set` with the
/// trainer type Trainer. Returns the exit status: 0 done or stopped as asked, 3 a non-finite
/// loss, 130 interrupted.
template <class Trainer>
int train(const pretrain_settings& s, const image_set& set, const run_control& control) {
  communicator& comm = *control.comm;
  const run_plan plan = plan_run(s, set);
  const std::size_t batch = rank_batch(s.batch, comm);
  auto trainer = control.resume.empty()
                     ? detail::new_trainer<Trainer>(s, batch, set, plan)
                     : detail::resumed_trainer<Trainer>(control.resume, batch, set, plan);
  trainer->distribute(comm);  // rank 0's parameters, AdamW state and tokenizer for all
  auto checkpoints = detail::access(*trainer, nullptr, "");
  const std::uint64_t first = trainer->steps(), total = plan.total;
  run_log log(control.out, plan.metadata, s, set, plan.per_epoch, total, first, comm.rank() == 0);
  log.announce(trainer->options(), control.resume);
  if (first >= total) return log.already_complete();
  log.saved_as(control.resume, first);  // the last good checkpoint, until this run saves one
  auto save = [&] {                     // rank 0 writes; the others wait until the file is whole
    log.save(
        [&](const std::string& path, const nlohmann::json& run) {
          if (comm.rank() == 0) save_checkpoint(path, checkpoints.saved(), run);
        },
        trainer->steps());
    comm.barrier();
  };
  const std::uint64_t save_every =
      control.save_every > 0 ? control.save_every : std::max<std::uint64_t>(1, total / 10);
  batch_loader<typename Trainer::config_type> loader(
      set, s.batch, plan.stats, plan.augment, s.seed, first,
      data_shard{std::size_t(comm.rank()), std::size_t(comm.size())});
  for (std::uint64_t step = first; step < total; ++step) {
    const auto& images = loader.next();
    const auto start = std::chrono::steady_clock::now();
    step_losses losses;
    try {
      losses = trainer->step(images);
    } catch (const non_finite_loss& e) {
      return log.failed(e);
    }
    log.record(step + 1, losses, start);
    if (comm.any(stop_requested) && step + 1 < total) {  // every rank stops at this step
      save();
      return log.interrupted(step + 1);
    }
    if ((step + 1) % save_every == 0 || step + 1 == total) save();
    if (step + 1 < total && step + 1 - first == control.stop_after)
      return log.stopped_after(control.stop_after, trainer->steps(), save);
  }
  return log.done(total - first);
}

/// The presets among `all_presets` whose images are ImageSize x ImageSize (or, for ImageSize 0,
/// those compiled for the GPU).
template <std::size_t ImageSize, class... P>
auto presets_of(std::tuple<P...>) -> decltype(std::tuple_cat(
    std::declval<
        std::conditional_t<(ImageSize == 0 ? P::on_cuda : P::encoder::image_size == ImageSize),
                           std::tuple<P>, std::tuple<>>>()...));

template <std::size_t ImageSize>
int run_on_cpu(const pretrain_settings& s, const image_set& set, const run_control& control) {
  using presets = decltype(presets_of<ImageSize>(all_presets{}));
  return with_preset<presets>(s.preset, [&](auto p) {
    using P = typename decltype(p)::type;
    return with_objective<P>(s.objective, [&](auto objective) {
      return train<trainer<decltype(objective), typename P::encoder>>(s, set, control);
    });
  });
}

}  // namespace splitmask::examples
