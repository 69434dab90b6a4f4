// run_log: what a pre-training run tells and keeps besides its checkpoint: the opening line, the
// progress bar, one metrics record per step, the loss curve, and where the last good checkpoint
// is, for the messages that end a run (done, stopped, interrupted, a non-finite loss). Its
// functions are compiled once, in once.cpp, not in each preset's unit.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
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
  /// The log of a run of `total` steps (per_epoch per epoch) that has done `first`. Of a run's
  /// processes, only the one that `speaks` (rank 0) prints and writes metrics and the curve.
  run_log(const std::string& out, nlohmann::json metadata, const pretrain_settings& s,
          const image_set& set, std::uint64_t per_epoch, std::uint64_t total, std::uint64_t first,
          bool speaks = true);

  /// The opening line: preset, objective, data, length and options.
  void announce(const pretrain_options& o, const std::string& resumed_from) const;
  int already_complete() const;

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
              std::chrono::steady_clock::time_point start);

  int failed(const non_finite_loss& e);
  int interrupted(std::uint64_t step);
  template <class Save>
  int stopped_after(std::uint64_t steps, std::uint64_t step, Save&& save) {
    if (speaks_) progress_.interrupt();
    if (saved_step_ != step) save();
    if (speaks_)
      std::fprintf(stderr, "stopped after %llu steps (--stop-after); continue with --resume %s\n",
                   static_cast<unsigned long long>(steps), checkpoint_.c_str());
    return 0;
  }
  int done(std::uint64_t steps) const;

 private:
  void write_curve() const;

  std::string checkpoint_, curve_;
  nlohmann::json metadata_;
  const pretrain_settings& settings_;
  const image_set& set_;
  std::uint64_t per_epoch_, total_, first_;
  bool speaks_;
  std::unique_ptr<metrics_log> metrics_;  // the speaker's only
  progress_bar progress_;
  std::vector<std::string> series_;
  std::string saved_path_;
  std::uint64_t saved_step_ = 0;
  double seconds_per_step_ = 0;
};

}  // namespace splitmask::examples
