// checkpoint: a pre-training run's whole state in one safetensors file, written atomically, so
// that a run can resume exactly and any tool that reads safetensors can take the encoder. This
// header reads what every checkpoint has (train/checkpoint.hpp writes and restores a trainer):
//
//   tensors   the encoder's (timm names: patch_embed.proj.weight, blocks.0.attn.qkv.weight, ...),
//             the objective's (the decoder's MAE names, or BEiT's head), tokenizer.vocabulary
//             (K, L) when the objective has a tokenizer; optimizer.exp_avg.<name> and
//             optimizer.exp_avg_sq.<name> (flat, AdamW's moments)
//   metadata  format, format_version (2), objective, step, encoder (JSON: the vit_config's
//             sizes), objective_config (JSON: its sizes), groups (JSON: the tensor names of each
//             parameter group, encoder and objective), options (JSON: pretrain_options),
//             objective_options (JSON), tokenizer (JSON: mean, std; when it has one) and run
//             (JSON the caller chooses: the pretrainer's settings and data statistics)
//
// Version 1 (one config of encoder and objective sizes together, the objective's options inside
// options) is read as version 2. Loading checks the format, the sizes against the compiled ones,
// every name, dtype and shape; each failure is a file_error naming the file.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "splitmask/core/error.hpp"
#include "splitmask/data/image_set.hpp"
#include "splitmask/io/safetensors.hpp"
#include "splitmask/model/vit_config.hpp"
#include "splitmask/model/vit_encoder.hpp"
#include "splitmask/tokenizer/patch_tokenizer.hpp"

namespace splitmask {

inline constexpr const char* checkpoint_format = "splitmask.checkpoint";
inline constexpr int checkpoint_format_version = 2;

/// Every size of an encoder config, by name (the checkpoint's `encoder`).
template <class Config>
nlohmann::json config_json() {
  return {{"image_size", Config::image_size},
          {"channels", Config::channels},
          {"patch_size", Config::patch_size},
          {"width", Config::width},
          {"depth", Config::depth},
          {"heads", Config::heads},
          {"mlp_ratio", Config::mlp_ratio},
          {"layer_norm_eps", Config::layer_norm_eps},
          {"position", Config::position == position_embedding::sincos ? "sincos" : "learned"}};
}

/// Throws file_error naming the first size in which `found` (the checkpoint's `what`, from
/// `source`) differs from `compiled`; sizes `found` has beyond `compiled` are not looked at.
inline void check_sizes(const nlohmann::json& found, const nlohmann::json& compiled,
                        const std::string& what, const std::string& source) {
  for (const auto& [key, expected] : compiled.items()) {
    if (!found.is_object() || !found.contains(key))
      throw file_error(source + ": the checkpoint's " + what + " has no '" + key + "'");
    if (found.at(key) != expected)
      throw file_error(source + ": the checkpoint's " + what + " " + key + " is " +
                       found.at(key).dump() + "; this program is compiled for " + expected.dump() +
                       " (" + what + " " + compiled.dump() + ")");
  }
}

/// Throws file_error unless the checkpoint's encoder sizes are Config's.
template <class Config>
void check_config(const nlohmann::json& found, const std::string& source) {
  check_sizes(found, config_json<Config>(), "encoder", source);
}

/// What a checkpoint's metadata says, checked for form (not against a config).
struct checkpoint_info {
  std::string source;
  int version = checkpoint_format_version;  // as written; version 1 is read as version 2
  std::string objective;                    // "splitmask", "beit", "mae", ...
  std::uint64_t step = 0;
  nlohmann::json encoder, objective_config, groups, options, objective_options, run;
  nlohmann::json tokenizer;  // null when the objective has none
};

namespace detail {

// The encoder's sizes among a version 1 checkpoint's config.
inline bool is_encoder_size(const std::string& key) {
  for (const char* k : {"image_size", "channels", "patch_size", "width", "depth", "heads",
                        "mlp_ratio", "layer_norm_eps", "position"})
    if (key == k) return true;
  return false;
}

// Version 1 held one config of encoder and objective sizes, and the objective's options inside
// the options: split them as version 2 stores them.
inline void upgrade_version_1(checkpoint_info& info, const nlohmann::json& config) {
  info.encoder = nlohmann::json::object();
  info.objective_config = nlohmann::json::object();
  for (const auto& [key, value] : config.items())
    (is_encoder_size(key) ? info.encoder : info.objective_config)[key] = value;
  info.objective_options = info.options;
}

}  // namespace detail

/// Reads and checks a checkpoint's metadata: format, version, and JSON fields of the right kind.
inline checkpoint_info read_checkpoint_info(const safetensors_reader& file,
                                            const std::string& source) {
  const auto& meta = file.metadata();
  auto has = [&](const char* key) { return meta.find(key) != meta.end(); };
  auto field = [&](const char* key) -> const std::string& {
    if (!has(key))
      throw file_error(source + ": not a splitmask checkpoint (no '" + std::string(key) +
                       "' in its metadata)");
    return meta.find(key)->second;
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
  const std::string& version = field("format_version");
  if (version != "1" && version != std::to_string(checkpoint_format_version))
    throw file_error(source + ": format version " + version +
                     "; this program reads versions 1 "
                     "and " +
                     std::to_string(checkpoint_format_version));
  checkpoint_info info;
  info.source = source;
  info.version = version == "1" ? 1 : checkpoint_format_version;
  info.objective = field("objective");
  if (info.objective.empty() || info.objective.find_first_not_of(
                                    "abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos)
    throw file_error(source + ": the objective '" + info.objective + "' is not a name");
  const std::string& step = field("step");
  if (step.empty() || step.size() > 19 || step.find_first_not_of("0123456789") != std::string::npos)
    throw file_error(source + ": the step '" + step + "' is not a number");
  info.step = std::stoull(step);
  info.options = json_field("options");
  info.run = json_field("run");
  if (has("tokenizer")) info.tokenizer = json_field("tokenizer");
  if (info.version == 1) {
    detail::upgrade_version_1(info, json_field("config"));
  } else {
    info.encoder = json_field("encoder");
    info.objective_config = json_field("objective_config");
    info.objective_options = json_field("objective_options");
    info.groups = json_field("groups");
  }
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

namespace detail {

template <class View>
std::vector<std::uint64_t> shape_of(const View& v) {
  std::vector<std::uint64_t> shape;
  for (std::size_t axis = 0; axis < View::rank; ++axis) shape.push_back(v.extents().extent(axis));
  return shape;
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
  for (const auto& t : model.tensors()) {
    file.read(t.name, t.data, t.shape);
    used.insert(t.name);
  }
}

}  // namespace detail

/// The tokenizer a checkpoint holds: its channel statistics and vocabulary (checked: K, L).
template <class Config, std::size_t K>
patch_tokenizer<Config, K> load_tokenizer(const safetensors_reader& file,
                                          const std::string& source) {
  constexpr std::size_t C = Config::channels, L = Config::patch_length;
  const auto info = read_checkpoint_info(file, source);
  check_config<Config>(info.encoder, source);
  if (info.tokenizer.is_null())
    throw file_error(source + ": the " + info.objective + " objective has no tokenizer");
  patch_tokenizer<Config, K> tokenizer(detail::channel_array<C>(info.tokenizer, "mean", source),
                                       detail::channel_array<C>(info.tokenizer, "std", source));
  typename patch_tokenizer<Config, K>::vocabulary_type vocabulary;
  file.read("tokenizer.vocabulary", vocabulary.data(), {K, L});
  try {
    tokenizer.restore_vocabulary(vocabulary);
  } catch (const std::invalid_argument& e) {
    throw file_error(source + ": " + e.what());
  }
  return tokenizer;
}

/// Loads only the encoder's parameters (for feature extraction or fine-tuning) from a checkpoint
/// of any objective; only the encoder's sizes must match. Returns the metadata.
template <class Config, class T>
checkpoint_info load_encoder(const std::string& path, vit_encoder<Config, T>& encoder) {
  const auto file = safetensors_reader::open(path);
  auto info = read_checkpoint_info(file, path);
  check_config<Config>(info.encoder, path);
  std::set<std::string> used;
  detail::read_parameters<T>(file, encoder, used);
  return info;
}

}  // namespace splitmask
