// pretrain_settings: everything that decides a pre-training run, as the command line gives it
// and as a checkpoint stores it (JSON), so that --resume continues the very same run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace splitmask::examples {

struct pretrain_settings {
  std::string preset = "mini-28";
  std::string data = "/usr/share/datasets/fashion-mnist";
  std::string format = "auto";  // auto, idx, cifar10, cifar100, folder
  std::string objective = "splitmask";  // splitmask, beit or mae (examples/pretrain/objectives.hpp)
  std::uint64_t steps = 300;  // used when epochs is 0 (300: the demo, minutes on 2 cores)
  std::uint64_t epochs = 0;   // when set, the run's length in epochs
  std::size_t batch = 64;
  double lr = 0;              // 0: the recipe's 1.5e-3 · batch / 256
  std::int64_t warmup = -1;   // steps; -1: 5% of the run
  double min_scale = 0.35;    // random resized crop: smallest area fraction kept
  bool flip = true;
  std::uint64_t seed = 0;
  std::size_t vocabulary_images = 10000;  // images the tokenizer's vocabulary is drawn from
  std::size_t kmeans_iterations = 10;
  bool distinct_words = false;  // the vocabulary's draws refuse a repeated word (word_draw)
  std::size_t train_limit = 0;  // only the first N training images (0: all)
  // The objective's run-time options that differ from its defaults, {name: value} (SplitMask's
  // lambda and tau, MAE's norm_pix_loss).
  nlohmann::json objective_options = nlohmann::json::object();
};

inline nlohmann::json to_json(const pretrain_settings& s) {
  return {{"preset", s.preset},       {"data", s.data},
          {"format", s.format},       {"objective", s.objective},
          {"steps", s.steps},         {"epochs", s.epochs},
          {"batch", s.batch},         {"lr", s.lr},
          {"warmup", s.warmup},       {"min_scale", s.min_scale},
          {"flip", s.flip},           {"seed", s.seed},
          {"vocabulary_images", s.vocabulary_images},
          {"kmeans_iterations", s.kmeans_iterations},
          {"distinct_words", s.distinct_words},
          {"train_limit", s.train_limit},
          {"objective_options", s.objective_options}};
}

/// Throws nlohmann::json::exception when a field is missing or of the wrong kind.
inline pretrain_settings settings_from_json(const nlohmann::json& j) {
  pretrain_settings s;
  s.preset = j.at("preset").get<std::string>();
  s.data = j.at("data").get<std::string>();
  s.format = j.at("format").get<std::string>();
  s.objective = j.at("objective").get<std::string>();
  s.steps = j.at("steps").get<std::uint64_t>();
  s.epochs = j.at("epochs").get<std::uint64_t>();
  s.batch = j.at("batch").get<std::size_t>();
  s.lr = j.at("lr").get<double>();
  s.warmup = j.at("warmup").get<std::int64_t>();
  s.min_scale = j.at("min_scale").get<double>();
  s.flip = j.at("flip").get<bool>();
  s.seed = j.at("seed").get<std::uint64_t>();
  s.vocabulary_images = j.at("vocabulary_images").get<std::size_t>();
  s.kmeans_iterations = j.at("kmeans_iterations").get<std::size_t>();
  s.train_limit = j.value("train_limit", std::size_t{0});  // absent before it existed: all
  s.distinct_words = j.value("distinct_words", false);       // likewise: any patch
  s.objective_options = j.value("objective_options", nlohmann::json::object());  // likewise
  return s;
}

}  // namespace splitmask::examples
