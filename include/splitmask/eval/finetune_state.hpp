// A fine-tuning's whole state in one file, so that a long fine-tuning survives an interruption:
// every parameter AdamW updates (encoder, fc_norm, head), AdamW's moments and step count, and the
// caller's metadata (JSON: its settings, its loss curve, its time so far). A fine-tuning draws no
// random numbers of its own, so a trainer restored from it, fed the batches from batch steps() on
// (batch_loader's first_batch), continues the run bit for bit on the same threads.
//
//   parameters.<name>, exp_avg.<name>, exp_avg_sq.<name>   (size of parameter <name>)
#pragma once

#include <cstdint>
#include <exception>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "splitmask/core/error.hpp"
#include "splitmask/eval/finetune.hpp"
#include "splitmask/io/safetensors.hpp"
#include "splitmask/train/adamw_state.hpp"

namespace splitmask {

inline constexpr const char* finetune_state_format = "splitmask-finetune-state";

/// Writes `trainer`'s state and `run` (stored as given) to `path` atomically: a crash mid-write
/// leaves the previous file as it was.
template <class Config, class T>
void save_finetune_state(const std::string& path, finetune_trainer<Config, T>& trainer,
                         const nlohmann::json& run) {
  auto& optimizer = trainer.optimizer();
  safetensors_writer file;
  for (const auto& s : optimizer.segments()) file.add("parameters." + s.name, s.values, {s.size});
  add_adamw_moments(file, optimizer, "");
  file.set_metadata("format", finetune_state_format);
  file.set_metadata("step", std::to_string(optimizer.steps()));
  file.set_metadata("run", run.dump());
  file.write(path);
}

namespace detail {

// The step and the run of a state file already open; file_error when it is not such a state.
inline std::pair<std::uint64_t, nlohmann::json> finetune_state_metadata(
    const safetensors_reader& file, const std::string& path) {
  const auto& metadata = file.metadata();
  const auto format = metadata.find("format");
  if (format == metadata.end() || format->second != finetune_state_format)
    throw file_error(path + ": not a fine-tuning state (its format is " +
                     (format == metadata.end() ? "missing" : "'" + format->second + "'") +
                     ", expected '" + finetune_state_format + "')");
  try {
    const std::string& step = metadata.at("step");
    if (step.empty() || step.find_first_not_of("0123456789") != std::string::npos)
      throw std::invalid_argument("step '" + step + "' is not a count");
    return {std::stoull(step), nlohmann::json::parse(metadata.at("run"))};
  } catch (const std::exception& e) {
    throw file_error(path + ": the fine-tuning state's step or run is malformed (" + e.what() +
                     ")");
  }
}

}  // namespace detail

/// The `run` a fine-tuning state at `path` was saved with, without reading its tensors (to
/// check it before restoring). Throws file_error, naming the file, when it is not such a state.
inline nlohmann::json read_finetune_state_run(const std::string& path) {
  return detail::finetune_state_metadata(safetensors_reader::open(path), path).second;
}

/// Restores into `trainer` (of the saved run's config, batch and classes) the state
/// save_finetune_state wrote to `path`; returns its `run`. Throws file_error, naming the file,
/// when it is not such a state or does not fit the trainer (the trainer possibly part-loaded).
template <class Config, class T>
nlohmann::json load_finetune_state(const std::string& path, finetune_trainer<Config, T>& trainer) {
  const auto file = safetensors_reader::open(path);
  auto [step, run] = detail::finetune_state_metadata(file, path);
  auto& optimizer = trainer.optimizer();
  std::set<std::string> used;
  for (const auto& s : optimizer.segments()) {
    file.read("parameters." + s.name, s.values, {s.size});
    used.insert("parameters." + s.name);
  }
  read_adamw_moments(file, optimizer, "", used);
  for (const auto& name : file.names())
    if (!used.count(name))
      throw file_error(path + ": unexpected tensor '" + name +
                       "' for a fine-tuning of this config");
  optimizer.set_steps(step);
  return run;
}

}  // namespace splitmask
