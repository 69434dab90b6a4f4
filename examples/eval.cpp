// splitmask-eval: how good an encoder's features are for a labelled dataset, by the three
// measures SplitMask reports: k-NN and a linear probe on frozen mean-pooled features, and full
// fine-tuning with a linear head, on a class-balanced, seeded fraction of the training labels,
// measured on the test split. Without --checkpoint the encoder is random (the random-init and
// from-scratch baselines); --pixels measures the raw pixels instead (k-NN and linear only).
// --validation F measures on F of the training images instead, held out (the same images for
// every run), and never reads the test split: hyperparameters are chosen that way. --state FILE
// makes a long fine-tuning resumable: stopped (Ctrl-C, SIGTERM) or killed, the same command
// continues it from its last save, bit for bit on the same threads.
//
//   splitmask-eval --checkpoint runs/pretrain/checkpoint.safetensors --label-fraction 0.1
//                  --mode all --json runs/eval/splitmask-10.json
//   splitmask-eval --preset mini-28 --validation 0.1 --epochs 30 --lr 1e-3 --mode finetune
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <splitmask/data/augment.hpp>
#include <splitmask/data/batch_loader.hpp>
#include <splitmask/data/dataset.hpp>
#include <splitmask/eval/finetune.hpp>
#include <splitmask/eval/finetune_state.hpp>
#include <splitmask/eval/knn.hpp>
#include <splitmask/eval/label_fraction.hpp>
#include <splitmask/eval/linear_probe.hpp>
#include <splitmask/io/atomic_file.hpp>
#include <splitmask/io/checkpoint.hpp>
#include "common/presets.hpp"
#include "common/progress.hpp"
#include "common/stop_signal.hpp"
#include "common/first_images.hpp"
#include "common/gemm_option.hpp"
#include "common/threads.hpp"
#include "common/training_log.hpp"

namespace ex = splitmask::examples;
using splitmask::row_matrix;

namespace {

struct request {
  std::string checkpoint, data = "/usr/share/datasets/fashion-mnist", format = "auto";
  std::string preset = "mini-28", mode = "all", json;
  std::string state;  // the fine-tuning's state file (--state)
  std::uint64_t save_every = 0, stop_after = 0;
  bool pixels = false;
  double label_fraction = 1.0;
  double validation = 0;  // the held-out fraction of the training images; 0: measure on test
  std::uint64_t seed = 0;
  int threads = 0;
  std::size_t train_limit = 0, test_limit = 0;
  // k-NN
  std::size_t k = 20;
  // fine-tuning
  std::uint64_t steps = 1000;
  double epochs = 0;  // the budget in passes over the labelled images, instead of steps
  std::size_t batch = 64;
  double lr = 2e-3, warmup = 0.1, layer_decay = 0.75, smoothing = 0.1, weight_decay = 0.05;
  double min_scale = 0.8;  // milder than pre-training's 0.35: fine-tuning sees whole test images

  bool runs(const std::string& m) const {
    return mode == "all" || mode == m || (mode == "frozen" && (m == "knn" || m == "linear"));
  }
  // Fine-tuning steps: --steps, or --epochs passes over `labelled` images (the last one whole).
  std::uint64_t finetune_steps(std::size_t labelled, std::size_t batch_used) const {
    if (epochs <= 0) return steps;
    return std::max<std::uint64_t>(
        1, std::uint64_t(std::ceil(epochs * double(labelled) / double(batch_used))));
  }
  const char* evaluated_on() const { return validation > 0 ? "validation" : "test"; }
};

// The held-out training images are drawn with this seed whatever --seed is, so every run
// (encoder, label fraction, seed, hyperparameters) is measured on the same images.
constexpr std::uint64_t validation_seed = 0x76616c;

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The normalised pixels of every image, one row each: the raw-pixel baseline's features.
row_matrix<float> pixel_features(const splitmask::image_set& set,
                                 const splitmask::channel_stats& stats) {
  row_matrix<float> x(Eigen::Index(set.size()), Eigen::Index(set.image_bytes()));
  for (std::size_t i = 0; i < set.size(); ++i)
    splitmask::augment_image(set, i, stats, splitmask::augmentation::none(),
                             splitmask::counter_rng(0), 0, x.row(Eigen::Index(i)).data(),
                             set.height);
  return x;
}

// Calls f(first, images) for the images of `set` in batches, each (b, C, S, S) normalised with
// `stats` and not augmented, as evaluation sees them.
template <class Config, class F>
void for_each_batch(const splitmask::image_set& set, const splitmask::channel_stats& stats, F&& f) {
  constexpr std::size_t C = Config::channels, S = Config::image_size, batch = 256;
  splitmask::tensor<float, splitmask::extents<splitmask::dynamic, C, S, S>> images(batch);
  for (std::size_t first = 0; first < set.size(); first += batch) {
    const std::size_t b = std::min(batch, set.size() - first);
    if (images.batch() != b) images = decltype(images)(b);
    for (std::size_t i = 0; i < b; ++i)
      splitmask::augment_image(set, first + i, stats, splitmask::augmentation::none(),
                               splitmask::counter_rng(0), 0, images.data() + i * C * S * S, S);
    f(first, images);
  }
}

// Mean-pooled encoder features of every image of `set`.
template <class Config, class Encoder>
row_matrix<float> encoder_features(const Encoder& encoder, const splitmask::image_set& set,
                                   const splitmask::channel_stats& stats, const char* what) {
  constexpr std::size_t D = Config::width;
  row_matrix<float> out(Eigen::Index(set.size()), Eigen::Index(D));
  splitmask::vit_features<Config> features;
  for_each_batch<Config>(set, stats, [&](std::size_t first, const auto& images) {
    const auto f = features(encoder, images);
    std::copy(f.data(), f.data() + f.size(), out.row(Eigen::Index(first)).data());
    std::fprintf(stderr, "\rfeatures of the %s images: %zu/%zu", what, first + f.batch(),
                 set.size());
  });
  std::fprintf(stderr, "\n");
  return out;
}

// k-NN and the linear probe on given features; adds their results to `report`.
void frozen_evaluations(const request& r, const row_matrix<float>& train,
                        const std::vector<std::int32_t>& train_labels,
                        const row_matrix<float>& test, const std::vector<std::int32_t>& test_labels,
                        nlohmann::json& report) {
  if (r.runs("knn")) {
    const auto start = std::chrono::steady_clock::now();
    splitmask::knn_options o;
    o.k = r.k;
    const double acc =
        splitmask::accuracy(splitmask::knn_classify(train, train_labels, test, o), test_labels);
    report["knn"] = {{"accuracy", acc},
                     {"k", o.k},
                     {"temperature", o.temperature},
                     {"seconds", seconds_since(start)}};
    std::printf("k-NN (k %zu, cosine): %.2f%%\n", o.k, 100 * acc);
  }
  if (r.runs("linear")) {
    const auto start = std::chrono::steady_clock::now();
    splitmask::linear_probe_options o;
    o.seed = r.seed;
    const auto p = splitmask::linear_probe(train, train_labels, test, test_labels, o);
    report["linear"] = {{"accuracy", p.accuracy},
                        {"train_accuracy", p.train_accuracy},
                        {"l2", p.l2},
                        {"l2_grid", o.l2_grid},
                        {"held_out_accuracy", p.held_out_accuracy},
                        {"iterations", p.iterations},
                        {"seconds", seconds_since(start)}};
    std::printf("linear probe (L2 %g chosen on held-out labels): %.2f%%\n", p.l2,
                100 * p.accuracy);
  }
}

// FNV-1a (64 bits) of `bytes` bytes, continuing from `h`.
std::uint64_t fnv1a(const void* data, std::size_t bytes, std::uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

std::string hex(std::uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

// The settings that make a fine-tuning what it is, by option, and fingerprints of the labelled
// images it trains on (pixels and labels) and of the encoder it starts from (the pre-training
// read, or the random init): a saved state continues only under the same ones. --threads may
// change (the bits then may too).
template <class Encoder>
nlohmann::json finetune_settings(const request& r, std::uint64_t steps, std::size_t batch,
                                 const splitmask::image_set& labelled, const Encoder& encoder) {
  const auto params = encoder.flat_params();
  const std::uint64_t images = fnv1a(labelled.labels.data(), labelled.labels.size() * 4,
                                     fnv1a(labelled.pixels.data(), labelled.pixels.size()));
  return {{"--data", std::filesystem::absolute(r.data).lexically_normal().string()},
          {"--train-limit", r.train_limit},
          {"--validation", r.validation},
          {"--label-fraction", r.label_fraction},
          {"--seed", r.seed},
          {"--steps or --epochs", steps},
          {"--batch", batch},
          {"--lr", r.lr},
          {"--warmup", r.warmup},
          {"--layer-decay", r.layer_decay},
          {"--label-smoothing", r.smoothing},
          {"--weight-decay", r.weight_decay},
          {"--min-scale", r.min_scale},
          {"the labelled images", hex(images)},
          {"the starting encoder (--checkpoint, --preset)",
           hex(fnv1a(params.data(), params.size() * sizeof(*params.data())))}};
}

// Throws unless a saved fine-tuning's settings are this command's, naming the first that differs
// (the options first: their names sort before the fingerprints').
void check_same_settings(const std::string& state, const nlohmann::json& saved,
                         const nlohmann::json& now) {
  for (const auto& item : now.items())
    if (!saved.contains(item.key()) || saved[item.key()] != item.value())
      throw std::invalid_argument(
          "--state " + state + ": the saved fine-tuning has " + item.key() + " " +
          (saved.contains(item.key()) ? saved[item.key()].dump() : "unset") +
          ", this command " + item.value().dump() +
          "; give the saved run's settings to continue it, or remove " + state +
          " to start again");
}

// A fine-tuning's record over all its sittings: the loss curve, the loss summed since its last
// point, and the training time.
struct finetune_record {
  std::vector<nlohmann::json> curve;
  double window = 0;
  std::size_t in_window = 0;
  double seconds = 0;       // of the sittings before this one
  std::vector<int> threads;  // of each sitting

  nlohmann::json to_json(const nlohmann::json& settings, double this_sitting) const {
    return {{"settings", settings}, {"curve", curve},     {"window", window},
            {"in_window", in_window}, {"seconds", seconds + this_sitting},
            {"threads", threads}};
  }
  static finetune_record from_json(const nlohmann::json& j) {
    finetune_record f;
    f.curve = j.at("curve").get<std::vector<nlohmann::json>>();
    f.window = j.at("window").get<double>();
    f.in_window = j.at("in_window").get<std::size_t>();
    f.seconds = j.at("seconds").get<double>();
    j.at("threads").at(0);  // a json::out_of_range when no sitting is recorded
    f.threads = j.at("threads").get<std::vector<int>>();
    return f;
  }
};

// The trainer's state and record from --state, when that file exists (its settings checked
// first); the record so far, this sitting's threads added.
template <class Trainer>
finetune_record resume_finetuning(const request& r, Trainer& trainer,
                                  const nlohmann::json& settings, std::uint64_t steps) {
  finetune_record record;
  if (!r.state.empty() && std::filesystem::exists(r.state)) {
    try {
      const nlohmann::json saved = splitmask::read_finetune_state_run(r.state);
      check_same_settings(r.state, saved.at("settings"), settings);
      record = finetune_record::from_json(saved);
    } catch (const nlohmann::json::exception& e) {
      throw splitmask::file_error(r.state + ": the fine-tuning state's record is malformed (" +
                                  e.what() + ")");
    }
    splitmask::load_finetune_state(r.state, trainer);
    if (trainer.steps() >= steps)
      throw splitmask::file_error(r.state + ": saved at step " + std::to_string(trainer.steps()) +
                                  " of a fine-tuning of " + std::to_string(steps));
    std::fprintf(stderr, "fine-tuning: resuming from %s at step %llu of %llu\n", r.state.c_str(),
                 static_cast<unsigned long long>(trainer.steps()),
                 static_cast<unsigned long long>(steps));
    if (record.threads.back() != ex::threads_in_use())
      std::fprintf(stderr, "note: this sitting runs on %d threads, the last one on %d: the "
                   "result may differ in its last bits from an uninterrupted run's\n",
                   ex::threads_in_use(), record.threads.back());
  }
  record.threads.push_back(ex::threads_in_use());
  return record;
}

// The fine-tuning's report: accuracy, settings, loss curve, times over all sittings.
nlohmann::json finetune_result(const request& r, const splitmask::finetune_options& o, double acc,
                               std::uint64_t steps, std::size_t labelled, std::size_t batch,
                               const finetune_record& record, double train_seconds,
                               double this_sitting) {
  const auto& curve = record.curve;
  return {{"accuracy", acc},
          {"steps", steps},
          {"epochs", double(steps) * double(batch) / double(labelled)},
          {"batch", batch},
          {"lr", o.lr},
          {"warmup_steps", o.warmup_steps},
          {"layer_decay", o.layer_decay},
          {"label_smoothing", o.label_smoothing},
          {"weight_decay", o.adamw.weight_decay},
          {"min_scale", r.min_scale},
          {"final_loss", curve.empty() ? 0.0 : curve.back()["loss"].get<double>()},
          {"train_seconds", train_seconds},
          {"sittings", record.threads.size()},
          {"threads_by_sitting", record.threads},
          {"earlier_sittings_seconds", record.seconds},
          {"seconds", record.seconds + this_sitting},
          {"curve", curve}};
}

// Fine-tunes the encoder (pre-trained when `checkpoint` is given) with a linear head on the
// labelled images; adds the result and the loss curve to `report`. With --state, continues a
// saved fine-tuning and saves its own; false when it ended before its last step (--stop-after,
// or a stop signal), its state saved.
template <class Config>
bool finetune(const request& r, const splitmask::image_set& labelled,
              const splitmask::image_set& test, const splitmask::channel_stats& stats,
              std::size_t classes, nlohmann::json& report) {
  const auto start = std::chrono::steady_clock::now();
  const std::size_t batch = std::min(r.batch, labelled.size());
  const std::uint64_t steps = r.finetune_steps(labelled.size(), batch);
  splitmask::finetune_options o;
  o.lr = r.lr;
  o.total_steps = steps;
  o.warmup_steps = std::uint64_t(std::llround(r.warmup * double(steps)));
  o.layer_decay = r.layer_decay;
  o.label_smoothing = r.smoothing;
  o.adamw.weight_decay = r.weight_decay;
  splitmask::finetune_trainer<Config> trainer(batch, classes, o, r.seed);
  if (!r.checkpoint.empty()) splitmask::load_encoder(r.checkpoint, trainer.encoder());
  const auto settings = finetune_settings(r, steps, batch, labelled, trainer.encoder());
  finetune_record record = resume_finetuning(r, trainer, settings, steps);
  if (!r.state.empty()) ex::stop_on_signals();  // from here a stop saves the state first
  const std::uint64_t first = trainer.steps();
  auto save = [&] {
    splitmask::save_finetune_state(r.state, trainer,
                                   record.to_json(settings, seconds_since(start)));
  };
  const std::uint64_t save_every =
      r.save_every > 0 ? r.save_every : std::max<std::uint64_t>(1, steps / 10);
  splitmask::augmentation aug;
  aug.min_scale = r.min_scale;
  splitmask::batch_loader<Config> loader(labelled, batch, stats, aug, r.seed, first);
  ex::progress_bar progress(first, steps, std::max<std::uint64_t>(1, steps / 20));
  const std::uint64_t every = std::max<std::uint64_t>(1, steps / 200);
  for (std::uint64_t step = first + 1; step <= steps; ++step) {
    const auto& images = loader.next();
    const auto l = trainer.step(images, loader.labels().data());
    record.window += l.loss;
    ++record.in_window;
    if (step % every == 0 || step == steps) {
      record.curve.push_back(
          {{"step", step}, {"loss", record.window / double(record.in_window)}, {"lr", l.lr}});
      record.window = 0, record.in_window = 0;
    }
    char text[64];
    std::snprintf(text, sizeof text, "loss %.3f", l.loss);
    progress.update(step, text, double(batch * (step - first)) / seconds_since(start));
    if (r.state.empty() || step == steps) continue;
    const bool stop = ex::stop_requested || step - first == r.stop_after;
    if (stop || step % save_every == 0) save();
    if (stop) {
      progress.interrupt();
      std::fprintf(stderr, "fine-tuning %s after step %llu of %llu; saved %s; the same command "
                   "continues it\n", ex::stop_requested ? "interrupted" : "stopped (--stop-after)",
                   static_cast<unsigned long long>(step), static_cast<unsigned long long>(steps),
                   r.state.c_str());
      return false;
    }
  }
  const double train_seconds = record.seconds + seconds_since(start);
  // Accuracy on the test (or validation) images: whole, normalised, no augmentation.
  std::vector<std::int32_t> predicted;
  for_each_batch<Config>(test, stats, [&](std::size_t, const auto& images) {
    const auto p = trainer.predict(images);
    predicted.insert(predicted.end(), p.begin(), p.end());
  });
  const double acc = splitmask::accuracy(predicted, test.labels);
  report["finetune"] = finetune_result(r, o, acc, steps, labelled.size(), batch, record,
                                       train_seconds, seconds_since(start));
  std::printf("fine-tuning (%llu steps of %zu, %.3g epochs): %.2f%% on %s\n",
              static_cast<unsigned long long>(steps), batch,
              double(steps) * double(batch) / double(labelled.size()), 100 * acc,
              r.evaluated_on());
  if (!r.json.empty()) {
    const std::string svg = std::filesystem::path(r.json).replace_extension(".finetune.svg");
    ex::write_loss_curve_svg(svg, record.curve, {"loss"}, "fine-tuning loss");
  }
  return true;
}

// The data statistics the encoder was trained with (its checkpoint's), else the training set's.
splitmask::channel_stats data_stats(const splitmask::checkpoint_info* info,
                                    const splitmask::image_set& train) {
  return info ? splitmask::checkpoint_data_stats(*info, train.channels)
              : splitmask::compute_channel_stats(train);
}

struct dataset {
  splitmask::image_set train, test, labelled;  // labelled: the chosen fraction of train
  std::size_t classes = 0;
};

// The training split, and the test split or, with --validation, the held-out training images
// (the test split is then not opened).
dataset load(const request& r, std::size_t size, std::size_t channels) {
  dataset d;
  const auto format = splitmask::parse_data_format(r.format);
  d.train = ex::first_images(splitmask::load_image_set(r.data, "train", format, size, channels),
                         r.train_limit);
  if (r.validation > 0) {
    if (d.train.labels.empty())
      throw splitmask::file_error(d.train.source + ": has no labels; evaluation needs them");
    std::vector<std::size_t> all(d.train.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    const auto [kept, held] =
        splitmask::hold_out(d.train.labels, all, r.validation, validation_seed);
    d.test = splitmask::subset(d.train, held);
    d.test.source = d.train.source + " (" + std::to_string(held.size()) +
                    " held out for validation)";
    d.train = splitmask::subset(d.train, kept);
  } else {
    d.test = ex::first_images(splitmask::load_image_set(r.data, "test", format, size, channels),
                          r.test_limit);
  }
  for (const auto* set : {&d.train, &d.test})
    if (set->labels.empty())
      throw splitmask::file_error(set->source + ": has no labels; evaluation needs them");
  d.classes = std::max(splitmask::count_classes(d.train.labels),
                       splitmask::count_classes(d.test.labels));
  d.labelled = splitmask::subset(
      d.train, splitmask::select_label_fraction(d.train.labels, r.label_fraction, r.seed));
  std::fprintf(stderr, "%s: %zu training images, %zu labelled (%.4g%%, class-balanced, seed %llu); "
               "%s: %zu images to measure on; %zu classes\n",
               d.train.source.c_str(), d.train.size(), d.labelled.size(),
               100 * r.label_fraction, static_cast<unsigned long long>(r.seed),
               d.test.source.c_str(), d.test.size(), d.classes);
  return d;
}

// The measures asked for; none when the fine-tuning ended before its last step (its state saved).
template <class Config>
std::optional<nlohmann::json> evaluate(const request& r, const splitmask::checkpoint_info* info) {
  constexpr std::size_t C = Config::channels, S = Config::image_size;
  const dataset d = load(r, S, C);
  for (const auto* set : {&d.train, &d.test})
    if (set->channels != C || set->height != S || set->width != S)
      throw splitmask::file_error(set->source + ": the images are " +
                                  std::to_string(set->height) + "x" + std::to_string(set->width) +
                                  "x" + std::to_string(set->channels) + "; the encoder takes " +
                                  std::to_string(S) + "x" + std::to_string(S) + "x" +
                                  std::to_string(C) + " (presets that fit: " +
                                  ex::presets_fitting(set->height, set->channels) + ")");
  const splitmask::channel_stats stats = data_stats(info, d.train);
  nlohmann::json report = {{"classes", d.classes},
                           {"train_images", d.train.size()},
                           {"labelled_images", d.labelled.size()},
                           {"evaluated_on", r.evaluated_on()},
                           {"test_images", d.test.size()},
                           {"data_stats", {{"mean", stats.mean}, {"std", stats.std}}}};
  if (r.pixels) {
    frozen_evaluations(r, pixel_features(d.labelled, stats), d.labelled.labels,
                       pixel_features(d.test, stats), d.test.labels, report);
    return report;
  }
  if (r.runs("knn") || r.runs("linear")) {
    splitmask::vit_encoder<Config> encoder(r.seed);
    if (info) splitmask::load_encoder(r.checkpoint, encoder);
    frozen_evaluations(r, encoder_features<Config>(encoder, d.labelled, stats, "labelled"),
                       d.labelled.labels, encoder_features<Config>(encoder, d.test, stats, r.evaluated_on()),
                       d.test.labels, report);
  }
  if (r.runs("finetune") && !finetune<Config>(r, d.labelled, d.test, stats, d.classes, report))
    return std::nullopt;
  return report;
}

int run(const request& r) {
  const auto start = std::chrono::steady_clock::now();
  if (r.pixels && !r.checkpoint.empty())
    throw std::invalid_argument("--pixels measures the raw pixels: give it no --checkpoint");
  if (r.pixels && r.mode == "finetune")
    throw std::invalid_argument("--pixels has no encoder to fine-tune: use --mode knn or linear");
  if (!r.state.empty() && (r.pixels || !r.runs("finetune")))
    throw std::invalid_argument("--state keeps a fine-tuning's state: use --mode finetune or all");
  // Their folders before the work: a state is first saved a tenth into the run.
  for (const auto& path : {r.json, r.state}) {
    const auto parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
  }
  nlohmann::json report = {{"program", "splitmask-eval"},
                           {"data", r.data},
                           {"mode", r.mode},
                           {"label_fraction", r.label_fraction},
                           {"validation", r.validation},
                           {"seed", r.seed}};
  std::optional<nlohmann::json> results;
  if (!r.checkpoint.empty()) {
    const auto info = splitmask::read_checkpoint_info(r.checkpoint);
    report["model"] = "checkpoint";
    report["checkpoint"] = r.checkpoint;
    report["objective"] = info.objective;
    report["pretrain_steps"] = info.step;
    bool found = false;
    for (const auto& p : ex::preset_list())
      ex::with_preset(p.name, [&](auto preset) {
        using Config = typename decltype(preset)::config;
        if (found || info.encoder != splitmask::config_json<Config>()) return 0;
        found = true;
        report["preset"] = p.name;
        results = evaluate<Config>(r, &info);
        return 0;
      });
    if (!found)
      throw splitmask::file_error(r.checkpoint + ": its encoder " + info.encoder.dump() +
                                  " is none of this program's presets (" + ex::preset_names() +
                                  ")");
  } else {
    report["model"] = r.pixels ? "pixels" : "random";
    if (!r.pixels) report["preset"] = r.preset;
    ex::with_preset(r.preset, [&](auto preset) {
      results = evaluate<typename decltype(preset)::config>(r, nullptr);
      return 0;
    });
  }
  if (!results) return ex::stop_requested ? 130 : 0;
  report.update(*results);
  report["threads"] = ex::threads_in_use();
  // Over all sittings of a resumed fine-tuning.
  report["seconds"] = seconds_since(start) + report.value(
      nlohmann::json::json_pointer("/finetune/earlier_sittings_seconds"), 0.0);
  if (!r.json.empty()) {
    splitmask::write_file_atomically(r.json, report.dump(2) + "\n");
    std::printf("results -> %s\n", r.json.c_str());
  }
  if (!r.state.empty()) std::filesystem::remove(r.state);  // the run is done and reported
  return 0;
}

// The command line's options, into r.
void add_options(CLI::App& app, request& r) {
  app.add_option("--checkpoint", r.checkpoint,
                 "A checkpoint of splitmask-pretrain (none: a random encoder of --preset)")
      ->check(CLI::ExistingFile);
  app.add_option("--preset", r.preset, "ViT size without a checkpoint (see splitmask-pretrain)")
      ->capture_default_str();
  app.add_flag("--pixels", r.pixels, "Measure the raw pixels instead of an encoder (baseline)");
  app.add_option("--data", r.data,
                 "A folder with train and test splits: IDX files, CIFAR batches, or images in "
                 "train/<class>/ and test/<class>/")
      ->capture_default_str();
  app.add_option("--format", r.format, "Data format (auto: detected from the files)")
      ->check(CLI::IsMember(splitmask::data_format_names()))
      ->capture_default_str();
  app.add_option("--label-fraction", r.label_fraction,
                 "Fraction of the training labels used (class-balanced, seeded)")
      ->check(CLI::Range(1e-6, 1.0))
      ->capture_default_str();
  app.add_option("--mode", r.mode, "What to measure")
      ->check(CLI::IsMember({"knn", "linear", "frozen", "finetune", "all"}))
      ->capture_default_str();
  app.add_option("--json", r.json, "Write the results here (and the fine-tuning loss curve "
                                   "next to it as <name>.finetune.svg)");
  app.add_option("--seed", r.seed, "Seed of the label draw, random init, data order, crops")
      ->capture_default_str();
  app.add_option("--threads", r.threads, "CPU threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--validation", r.validation,
                 "Hold out this fraction of the training images (class-balanced, the same for "
                 "every run) and measure on them; the test split is not read (0: measure on "
                 "the test split)")
      ->check(CLI::Range(0.0, 0.9))
      ->capture_default_str();
  app.add_option("--train-limit", r.train_limit, "Only the first N training images (0: all)");
  app.add_option("--test-limit", r.test_limit, "Only the first N test images (0: all)");
  app.add_option("--k", r.k, "Neighbours that vote in k-NN")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

// The fine-tuning's options, into r.
void add_finetune_options(CLI::App& app, request& r) {
  auto* steps = app.add_option("--steps", r.steps, "Fine-tuning steps")
                    ->check(CLI::PositiveNumber)
                    ->capture_default_str();
  app.add_option("--epochs", r.epochs,
                 "Fine-tuning budget in passes over the labelled images, instead of --steps")
      ->check(CLI::PositiveNumber)
      ->excludes(steps);
  app.add_option("--batch", r.batch, "Fine-tuning batch (at most the labelled images)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 16))
      ->capture_default_str();
  app.add_option("--lr", r.lr, "Fine-tuning peak learning rate")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--warmup", r.warmup, "Fine-tuning warm-up, as a fraction of the steps")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--layer-decay", r.layer_decay, "Layer-wise learning-rate decay (1: none)")
      ->check(CLI::Range(1e-3, 1.0))
      ->capture_default_str();
  app.add_option("--label-smoothing", r.smoothing, "Label smoothing of the fine-tuning loss")
      ->check(CLI::Range(0.0, 0.99))
      ->capture_default_str();
  app.add_option("--weight-decay", r.weight_decay, "AdamW's weight decay in fine-tuning")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--min-scale", r.min_scale, "Fine-tuning crops: smallest area kept (1: no crop)")
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
  auto* state = app.add_option(
      "--state", r.state,
      "Keep the fine-tuning's state in this file: saved every --save-every steps and when "
      "stopped (Ctrl-C, SIGTERM); where the file exists, the fine-tuning continues from it "
      "(with the same settings); removed once the results are written");
  app.add_option("--save-every", r.save_every,
                 "Fine-tuning steps between saves of --state (default: 10 per run)")
      ->check(CLI::PositiveNumber)
      ->needs(state);
  app.add_option("--stop-after", r.stop_after,
                 "End the fine-tuning after this many steps of this sitting, its state saved in "
                 "--state (training in slices)")
      ->check(CLI::PositiveNumber)
      ->needs(state);
}

}  // namespace

int main(int argc, char** argv) {
  ex::restart_with_passive_wait(argv);
  request r;
  ex::cpu_gemm_choice gemm;
  CLI::App app{"k-NN, linear-probe and fine-tuning accuracy of an encoder on labelled images",
               "splitmask-eval"};
  add_options(app, r);
  add_finetune_options(app, r);
  ex::add_gemm_option(app, gemm);
  CLI11_PARSE(app, argc, argv);
  try {
    ex::set_threads(r.threads);
    ex::use_cpu_gemm(gemm);
    return run(r);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
