// A trainer's whole state to and from a checkpoint (io/checkpoint.hpp describes the file):
// parameters in two named groups (encoder, objective), AdamW's moments and step count, the
// objective's sizes and options, and its tokenizer when it has one. A device trainer saves and
// resumes through a host twin (trainer::copy_state_from): the file is the same either way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "splitmask/core/error.hpp"
#include "splitmask/io/checkpoint.hpp"
#include "splitmask/io/safetensors.hpp"
#include "splitmask/train/adamw_state.hpp"
#include "splitmask/train/pretrain_step.hpp"

namespace splitmask {

inline nlohmann::json options_json(const pretrain_options& o) {
  return {{"lr", o.lr},
          {"warmup_steps", o.warmup_steps},
          {"total_steps", o.total_steps},
          {"final_lr", o.final_lr},
          {"clip", o.clip},
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
  o.adamw.beta1 = j.at("beta1").get<double>();
  o.adamw.beta2 = j.at("beta2").get<double>();
  o.adamw.eps = j.at("eps").get<double>();
  o.adamw.weight_decay = j.at("weight_decay").get<double>();
  o.seed = j.at("seed").get<std::uint64_t>();
  return o;
}

/// An objective's sizes for the encoder Config, by name (the checkpoint's objective_config).
template <class Objective, class Config>
nlohmann::json objective_config_json() {
  nlohmann::json j = nlohmann::json::object();
  Objective::template for_each_size<Config>(
      [&](const char* name, const auto& value) { j[name] = value; });
  return j;
}

/// An objective's options by name, and back (throws nlohmann::json::exception when one is
/// missing or of another type).
template <class Objective>
nlohmann::json objective_options_json(const typename Objective::options& o) {
  nlohmann::json j = nlohmann::json::object();
  Objective::for_each_option(o, [&](const char* name, const auto& value) { j[name] = value; });
  return j;
}
template <class Objective>
typename Objective::options objective_options_from_json(const nlohmann::json& j) {
  typename Objective::options o;
  Objective::for_each_option(o, [&](const char* name, auto& field) {
    field = j.at(name).template get<std::decay_t<decltype(field)>>();
  });
  return o;
}

/// The training options a checkpoint was written with; throws file_error when malformed.
inline pretrain_options checkpoint_options(const checkpoint_info& info) {
  try {
    return options_from_json(info.options);
  } catch (const nlohmann::json::exception& e) {
    throw file_error(info.source + ": the checkpoint's options are malformed (" + e.what() + ")");
  }
}

/// The options of Objective a checkpoint was written with; throws file_error when it was written
/// by another objective or they are malformed.
template <class Objective>
typename Objective::options checkpoint_objective_options(const checkpoint_info& info) {
  if (info.objective != Objective::name)
    throw file_error(info.source + ": the checkpoint was trained with the " + info.objective +
                     " objective, not " + Objective::name);
  try {
    return objective_options_from_json<Objective>(info.objective_options);
  } catch (const nlohmann::json::exception& e) {
    throw file_error(info.source + ": the checkpoint's " + info.objective +
                     " options are malformed (" + e.what() + ")");
  }
}

namespace detail {

template <class Model, class = void>
struct has_tokenizer : std::false_type {};
template <class Model>
struct has_tokenizer<Model, std::void_t<decltype(std::declval<const Model&>().tokenizer())>>
    : std::true_type {};

// f(group, store) for each parameter store of a trainer, in AdamW's order.
template <class Trainer, class F>
void for_each_group(Trainer& trainer, F&& f) {
  f("encoder", trainer.encoder());
  trainer.objective().for_each_store([&](auto& store) { f("objective", store); });
}

template <class Trainer>
nlohmann::json group_names(Trainer& trainer) {
  nlohmann::json groups{{"encoder", nlohmann::json::array()},
                        {"objective", nlohmann::json::array()}};
  for_each_group(trainer, [&](const char* group, auto& store) {
    for (const auto& t : store.tensors()) groups[group].push_back(t.name);
  });
  return groups;
}

}  // namespace detail

/// Writes a host trainer's whole state to `path` atomically (a crash mid-write leaves the
/// previous file as it was). `run` is stored as given (the caller's settings, to resume with).
template <class Trainer>
void save_checkpoint(const std::string& path, Trainer& trainer,
                     const nlohmann::json& run = nlohmann::json::object()) {
  using Objective = typename Trainer::objective_type;
  using Config = typename Trainer::config_type;
  static_assert(std::is_same_v<typename Trainer::device_type, device::cpu>,
                "splitmask::save_checkpoint: save a device trainer through a host twin");
  safetensors_writer file;
  detail::for_each_group(trainer, [&](const char*, auto& store) {
    for (const auto& t : store.tensors()) file.add(t.name, t.data, t.shape);
  });
  if constexpr (detail::has_tokenizer<typename Trainer::model_type>::value) {
    const auto& tokenizer = trainer.objective().tokenizer();
    file.add("tokenizer.vocabulary", tokenizer.vocabulary().data(),
             detail::shape_of(tokenizer.vocabulary().view()));
    file.set_metadata(
        "tokenizer",
        nlohmann::json{{"mean", tokenizer.mean()}, {"std", tokenizer.std_dev()}}.dump());
  }
  add_adamw_moments(file, trainer.optimizer(), "optimizer.");
  file.set_metadata("format", checkpoint_format);
  file.set_metadata("format_version", std::to_string(checkpoint_format_version));
  file.set_metadata("objective", Objective::name);
  file.set_metadata("step", std::to_string(trainer.steps()));
  file.set_metadata("encoder", config_json<Config>().dump());
  file.set_metadata("objective_config", objective_config_json<Objective, Config>().dump());
  file.set_metadata("groups", detail::group_names(trainer).dump());
  file.set_metadata("options", options_json(trainer.options()).dump());
  file.set_metadata("objective_options",
                    objective_options_json<Objective>(trainer.objective_options()).dump());
  file.set_metadata("run", run.dump());
  file.write(path);
}

/// Restores a host trainer saved by save_checkpoint (or by a version 1 writer): parameters,
/// AdamW's moments and step count, and the tokenizer's vocabulary. The trainer must have the
/// checkpoint's sizes, objective and tokenizer statistics (construct it from load_tokenizer and
/// the checkpoint's options). Returns the metadata. Throws file_error, with the trainer possibly
/// part-loaded, on any mismatch. `file` is the checkpoint already open, `path` names it.
template <class Trainer>
checkpoint_info load_checkpoint(const safetensors_reader& file, const std::string& path,
                                Trainer& trainer) {
  using Objective = typename Trainer::objective_type;
  using Config = typename Trainer::config_type;
  using T = typename Trainer::value_type;
  const auto info = read_checkpoint_info(file, path);
  check_config<Config>(info.encoder, path);
  checkpoint_objective_options<Objective>(info);  // the objective's name
  check_sizes(info.objective_config, objective_config_json<Objective, Config>(), "objective", path);
  std::set<std::string> used;
  if constexpr (detail::has_tokenizer<typename Trainer::model_type>::value) {
    constexpr std::size_t K = std::decay_t<decltype(trainer.objective().tokenizer())>::K;
    const auto tokenizer = load_tokenizer<Config, K>(file, path);
    auto& own = trainer.objective().tokenizer();
    if (tokenizer.mean() != own.mean() || tokenizer.std_dev() != own.std_dev())
      throw file_error(path + ": the trainer's tokenizer statistics differ from the checkpoint's");
    own.restore_vocabulary(tokenizer.vocabulary());
    used.insert("tokenizer.vocabulary");
  }
  detail::for_each_group(
      trainer, [&](const char*, auto& store) { detail::read_parameters<T>(file, store, used); });
  read_adamw_moments(file, trainer.optimizer(), "optimizer.", used);
  for (const auto& name : file.names())
    if (!used.count(name))
      throw file_error(path + ": unexpected tensor '" + name + "' for a " + info.objective +
                       " trainer of this config");
  trainer.optimizer().set_steps(info.step);
  return info;
}

template <class Trainer>
checkpoint_info load_checkpoint(const std::string& path, Trainer& trainer) {
  return load_checkpoint(safetensors_reader::open(path), path, trainer);
}

}  // namespace splitmask
