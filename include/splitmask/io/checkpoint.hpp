// checkpoint: a pre-training run's whole state in one safetensors file, written atomically, so
// that a run can resume exactly and any tool that reads safetensors can take the encoder.
//
//   tensors   the encoder's (timm names: patch_embed.proj.weight, blocks.0.attn.qkv.weight, ...),
//             the decoder's (MAE names) or BEiT's head; tokenizer.vocabulary (K, L);
//             optimizer.exp_avg.<name> and optimizer.exp_avg_sq.<name> (flat, AdamW's moments)
//   metadata  format, format_version, objective, step, config (JSON: every size of the
//             vit_config), options (JSON: pretrain_options), tokenizer (JSON: mean, std) and
//             run (JSON the caller chooses: the pretrainer's settings and data statistics)
//
// Loading checks the format, the config against the compiled one, every name, dtype and shape,
// and that no tensor is missing or left over; each failure is a file_error naming the file.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "splitmask/core/error.hpp"
#include "splitmask/data/image_set.hpp"
#include "splitmask/io/safetensors.hpp"
#include "splitmask/model/vit_config.hpp"
#include "splitmask/model/vit_encoder.hpp"
#include "splitmask/tokenizer/patch_tokenizer.hpp"
#include "splitmask/train/beit_trainer.hpp"
#include "splitmask/train/pretrain_step.hpp"
#include "splitmask/train/splitmask_trainer.hpp"

namespace splitmask {

inline constexpr const char* checkpoint_format = "splitmask.checkpoint";
inline constexpr int checkpoint_format_version = 1;

/// Every size of a config, by name (the checkpoint's `config`).
template <class Config>
nlohmann::json config_json() {
  using ratio = typename Config::mask_ratio;
  return {{"image_size", Config::image_size},
          {"channels", Config::channels},
          {"patch_size", Config::patch_size},
          {"width", Config::width},
          {"depth", Config::depth},
          {"heads", Config::heads},
          {"mlp_ratio", Config::mlp_ratio},
          {"decoder_width", Config::decoder_width},
          {"decoder_depth", Config::decoder_depth},
          {"decoder_heads", Config::decoder_heads},
          {"vocabulary", Config::vocabulary},
          {"mask_ratio", std::to_string(ratio::num) + "/" + std::to_string(ratio::den)},
          {"layer_norm_eps", Config::layer_norm_eps},
          {"position", Config::position == position_embedding::sincos ? "sincos" : "learned"}};
}

/// Throws file_error naming the first size in which `found` (from `source`) differs from Config.
template <class Config>
void check_config(const nlohmann::json& found, const std::string& source) {
  const nlohmann::json compiled = config_json<Config>();
  for (const auto& [key, expected] : compiled.items()) {
    if (!found.is_object() || !found.contains(key))
      throw file_error(source + ": the checkpoint's config has no '" + key + "'");
    if (found.at(key) != expected)
      throw file_error(source + ": the checkpoint's " + key + " is " + found.at(key).dump() +
                       "; this program is compiled for " + expected.dump() + " (config " +
                       compiled.dump() + ")");
  }
}

inline nlohmann::json options_json(const pretrain_options& o) {
  return {{"lr", o.lr},
          {"warmup_steps", o.warmup_steps},
          {"total_steps", o.total_steps},
          {"final_lr", o.final_lr},
          {"clip", o.clip},
          {"tau", o.tau},
          {"lambda", o.lambda},
          {"beta1", o.adamw.beta1},
          {"beta2", o.adamw.beta2},
          {"eps", o.adamw.eps},
          {"weight_decay", o.adamw.weight_decay},
          {"seed", o.seed}};
}

inline pretrain_options options_from_json(const nlohmann::json& j) {
  pretrain_options o;
  o.lr = j.at("lr").get<double>();
  o.warmup_steps = j.at("warmup_steps").get<std::uint64_t>();
  o.total_steps = j.at("total_steps").get<std::uint64_t>();
  o.final_lr = j.at("final_lr").get<double>();
  o.clip = j.at("clip").get<double>();
  o.tau = j.at("tau").get<double>();
  o.lambda = j.at("lambda").get<double>();
  o.adamw.beta1 = j.at("beta1").get<double>();
  o.adamw.beta2 = j.at("beta2").get<double>();
  o.adamw.eps = j.at("eps").get<double>();
  o.adamw.weight_decay = j.at("weight_decay").get<double>();
  o.seed = j.at("seed").get<std::uint64_t>();
  return o;
}

/// What a checkpoint's metadata says, checked for form (not against a config).
struct checkpoint_info {
  std::string source;
  std::string objective;  // "splitmask" or "beit"
  std::uint64_t step = 0;
  nlohmann::json config, options, tokenizer, run;
  pretrain_options pretrain() const;
};

/// Reads and checks a checkpoint's metadata: format, version, and JSON fields of the right kind.
inline checkpoint_info read_checkpoint_info(const safetensors_reader& file,
                                            const std::string& source) {
  const auto& meta = file.metadata();
  auto field = [&](const char* key) -> const std::string& {
    const auto it = meta.find(key);
    if (it == meta.end())
      throw file_error(source + ": not a splitmask checkpoint (no '" + std::string(key) +
                       "' in its metadata)");
    return it->second;
  };
  auto json_field = [&](const char* key) {
    auto j = nlohmann::json::parse(field(key), nullptr, false);
    if (!j.is_object())
      throw file_error(source + ": the checkpoint's '" + std::string(key) +
                       "' is not a JSON object");
    return j;
  };
  if (field("format") != checkpoint_format)
    throw file_error(source + ": format is '" + field("format") + "', expected '" +
                     checkpoint_format + "'");
  if (field("format_version") != std::to_string(checkpoint_format_version))
    throw file_error(source + ": format version " + field("format_version") +
                     "; this program reads version " + std::to_string(checkpoint_format_version));
  checkpoint_info info;
  info.source = source;
  info.objective = field("objective");
  if (info.objective != "splitmask" && info.objective != "beit")
    throw file_error(source + ": unknown objective '" + info.objective + "'");
  const std::string& step = field("step");
  if (step.empty() || step.size() > 19 || step.find_first_not_of("0123456789") != std::string::npos)
    throw file_error(source + ": the step '" + step + "' is not a number");
  info.step = std::stoull(step);
  info.config = json_field("config");
  info.options = json_field("options");
  info.tokenizer = json_field("tokenizer");
  info.run = json_field("run");
  return info;
}

inline checkpoint_info read_checkpoint_info(const std::string& path) {
  return read_checkpoint_info(safetensors_reader::open(path), path);
}

/// The per-channel statistics a run normalised its images with (splitmask-pretrain stores them
/// in the run metadata as data_stats {mean, std}), to feed the encoder the same inputs. Throws
/// file_error when they are missing or are not `channels` finite means and positive deviations.
inline channel_stats checkpoint_data_stats(const checkpoint_info& info, std::size_t channels) {
  channel_stats stats;
  try {
    stats.mean = info.run.at("data_stats").at("mean").get<std::vector<double>>();
    stats.std = info.run.at("data_stats").at("std").get<std::vector<double>>();
  } catch (const nlohmann::json::exception&) {
    throw file_error(info.source + ": no data statistics (data_stats) in its run metadata");
  }
  bool ok = stats.mean.size() == channels && stats.std.size() == channels;
  for (std::size_t c = 0; ok && c < channels; ++c)
    ok = std::isfinite(stats.mean[c]) && std::isfinite(stats.std[c]) && stats.std[c] > 0;
  if (!ok)
    throw file_error(info.source + ": the data statistics in its run metadata are not " +
                     std::to_string(channels) + " finite means and positive deviations");
  return stats;
}

inline pretrain_options checkpoint_info::pretrain() const {
  try {
    return options_from_json(options);
  } catch (const nlohmann::json::exception& e) {
    throw file_error(source + ": the checkpoint's options are malformed (" + e.what() + ")");
  }
}

namespace detail {

template <class View>
std::vector<std::uint64_t> shape_of(const View& v) {
  std::vector<std::uint64_t> shape;
  for (std::size_t axis = 0; axis < View::rank; ++axis) shape.push_back(v.extents().extent(axis));
  return shape;
}

// The models a trainer optimises, in the order it registered them with AdamW, and its name.
template <class Config, class T, class F>
void for_each_model(splitmask_trainer<Config, T>& trainer, F&& f) {
  f(trainer.encoder());
  f(trainer.decoder());
}
template <class Config, class T, class F>
void for_each_model(beit_trainer<Config, T>& trainer, F&& f) {
  f(trainer.encoder());
  f(trainer.head());
}
template <class Config, class T>
constexpr const char* objective_name(const splitmask_trainer<Config, T>&) {
  return "splitmask";
}
template <class Config, class T>
constexpr const char* objective_name(const beit_trainer<Config, T>&) {
  return "beit";
}

template <std::size_t C>
std::array<float, C> channel_array(const nlohmann::json& j, const char* key,
                                   const std::string& source) {
  if (!j.contains(key) || !j.at(key).is_array() || j.at(key).size() != C)
    throw file_error(source + ": the tokenizer's '" + key + "' is not a list of " +
                     std::to_string(C) + " numbers");
  std::array<float, C> a{};
  for (std::size_t c = 0; c < C; ++c) {
    if (!j.at(key)[c].is_number())
      throw file_error(source + ": the tokenizer's '" + key + "' holds a non-number");
    a[c] = j.at(key)[c].template get<float>();
  }
  return a;
}

// Reads every parameter of `model` from `file` (names, dtypes and shapes checked), noting each
// name in `used`.
template <class T, class Model>
void read_parameters(const safetensors_reader& file, Model& model, std::set<std::string>& used) {
  model.params().for_each([&](const std::string& name, auto view, parameter_role) {
    file.read(name, view.data(), shape_of(view));
    used.insert(name);
  });
}

}  // namespace detail

/// The tokenizer a checkpoint holds: its channel statistics and vocabulary (checked: K, L).
template <class Config>
patch_tokenizer<Config> load_tokenizer(const safetensors_reader& file, const std::string& source) {
  constexpr std::size_t C = Config::channels, K = Config::vocabulary, L = Config::patch_length;
  const auto info = read_checkpoint_info(file, source);
  check_config<Config>(info.config, source);
  patch_tokenizer<Config> tokenizer(detail::channel_array<C>(info.tokenizer, "mean", source),
                                    detail::channel_array<C>(info.tokenizer, "std", source));
  typename patch_tokenizer<Config>::vocabulary_type vocabulary;
  file.read("tokenizer.vocabulary", vocabulary.data(), {K, L});
  try {
    tokenizer.restore_vocabulary(vocabulary);
  } catch (const std::invalid_argument& e) {
    throw file_error(source + ": " + e.what());
  }
  return tokenizer;
}

/// Writes the trainer's whole state to `path` atomically (a crash mid-write leaves the previous
/// file as it was). `run` is stored as given (the caller's settings, to resume with).
template <class Trainer>
void save_checkpoint(const std::string& path, Trainer& trainer,
                     const nlohmann::json& run = nlohmann::json::object()) {
  using Config = typename Trainer::config_type;
  constexpr std::size_t K = Config::vocabulary, L = Config::patch_length;
  auto& optimizer = trainer.optimizer();
  const auto first = optimizer.first_moment();
  const auto second = optimizer.second_moment();
  safetensors_writer file;
  detail::for_each_model(trainer, [&](auto& model) {
    model.params().for_each([&](const std::string& name, auto view, parameter_role) {
      file.add(name, view.data(), detail::shape_of(view));
    });
  });
  file.add("tokenizer.vocabulary", trainer.tokenizer().vocabulary().data(), {K, L});
  // Names are kept alive here: the writer holds pointers to the data, not to the names.
  for (const auto& s : optimizer.segments()) {
    file.add("optimizer.exp_avg." + s.name, first.data() + s.offset, {s.size});
    file.add("optimizer.exp_avg_sq." + s.name, second.data() + s.offset, {s.size});
  }
  const auto& tokenizer = trainer.tokenizer();
  file.set_metadata("format", checkpoint_format);
  file.set_metadata("format_version", std::to_string(checkpoint_format_version));
  file.set_metadata("objective", detail::objective_name(trainer));
  file.set_metadata("step", std::to_string(trainer.steps()));
  file.set_metadata("config", config_json<Config>().dump());
  file.set_metadata("options", options_json(trainer.options()).dump());
  file.set_metadata("tokenizer",
                    nlohmann::json{{"mean", tokenizer.mean()}, {"std", tokenizer.std_dev()}}.dump());
  file.set_metadata("run", run.dump());
  file.write(path);
}

/// Restores a trainer saved by save_checkpoint: parameters, AdamW's moments and step count, and
/// the tokenizer's vocabulary. The trainer must have the checkpoint's config, objective and
/// tokenizer statistics (construct it from load_tokenizer and info.pretrain()). Returns the
/// metadata. Throws file_error, with the trainer possibly part-loaded, on any mismatch. `file`
/// is the checkpoint already open (read once), `path` names it in messages.
template <class Trainer>
checkpoint_info load_checkpoint(const safetensors_reader& file, const std::string& path,
                                Trainer& trainer) {
  using Config = typename Trainer::config_type;
  using T = typename Trainer::value_type;
  const auto info = read_checkpoint_info(file, path);
  check_config<Config>(info.config, path);
  if (info.objective != detail::objective_name(trainer))
    throw file_error(path + ": the checkpoint was trained with the " + info.objective +
                     " objective, not " + detail::objective_name(trainer));
  const auto tokenizer = load_tokenizer<Config>(file, path);
  if (tokenizer.mean() != trainer.tokenizer().mean() ||
      tokenizer.std_dev() != trainer.tokenizer().std_dev())
    throw file_error(path + ": the trainer's tokenizer statistics differ from the checkpoint's");
  std::set<std::string> used{"tokenizer.vocabulary"};
  detail::for_each_model(trainer,
                         [&](auto& model) { detail::read_parameters<T>(file, model, used); });
  trainer.tokenizer().restore_vocabulary(tokenizer.vocabulary());
  auto& optimizer = trainer.optimizer();
  const auto first = optimizer.first_moment();
  const auto second = optimizer.second_moment();
  for (const auto& s : optimizer.segments()) {
    for (const auto& [prefix, moment] : {std::pair{"optimizer.exp_avg.", first.data()},
                                         std::pair{"optimizer.exp_avg_sq.", second.data()}}) {
      file.read(prefix + s.name, moment + s.offset, {s.size});
      used.insert(prefix + s.name);
    }
  }
  for (const auto& name : file.names())
    if (!used.count(name))
      throw file_error(path + ": unexpected tensor '" + name + "' for a " + info.objective +
                       " trainer of this config");
  optimizer.set_steps(info.step);
  return info;
}

template <class Trainer>
checkpoint_info load_checkpoint(const std::string& path, Trainer& trainer) {
  return load_checkpoint(safetensors_reader::open(path), path, trainer);
}

/// Loads only the encoder's parameters (for feature extraction or fine-tuning) from a checkpoint
/// of either objective; the config must match. Returns the metadata.
template <class Config, class T>
checkpoint_info load_encoder(const std::string& path, vit_encoder<Config, T>& encoder) {
  const auto file = safetensors_reader::open(path);
  auto info = read_checkpoint_info(file, path);
  check_config<Config>(info.config, path);
  std::set<std::string> used;
  detail::read_parameters<T>(file, encoder, used);
  return info;
}

}  // namespace splitmask
