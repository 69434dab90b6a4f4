// batch_loader: shuffled, augmented, normalised batches of an image_set for a ViT config,
// prepared on one background thread while the caller trains on the previous batch.
//
// Legend: B batch, C channels, S image size; g a batch's number in the run, e its epoch.
#pragma once

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "splitmask/core/error.hpp"
#include "splitmask/core/extents.hpp"
#include "splitmask/core/rng.hpp"
#include "splitmask/data/augment.hpp"
#include "splitmask/data/image_set.hpp"
#include "splitmask/tensor/tensor.hpp"

namespace splitmask {

/// Batches of B images of `set`, as (B, C, S, S) tensors of T for Config (its `channels` and
/// `image_size`), endlessly, epoch after epoch.
///
/// Batch g (counted from 0 over the run) belongs to epoch e = g / batches_per_epoch(). Epoch e
/// visits the images in the order of a Fisher-Yates shuffle drawn from counter_rng(seed,
/// permutation_stream + e); batch g takes positions [(g mod batches_per_epoch) * B, ... + B) of
/// it, and the last partial batch of an epoch is dropped. Image j of batch g is augmented with
/// counter_rng(seed, augmentation_stream) at draw g * B + j (see augment_image). Every batch is
/// therefore a pure function of (set, B, stats, augmentation, seed, g): a loader constructed with
/// first_batch = g resumes a run exactly, whatever the threads and timing.
///
/// Data-parallel runs: a loader given shard {r, W} makes rank r's share of every batch, its
/// images [r·B/W, (r+1)·B/W), each exactly as the whole batch's loader makes it; B is the global
/// batch, and W must divide it.
///
/// The set must outlive the loader and stay unchanged while it runs.
struct data_shard {
  std::size_t rank = 0, ranks = 1;
};

template <class Config, class T = float>
class batch_loader {
 public:
  static constexpr std::size_t C = Config::channels;
  static constexpr std::size_t S = Config::image_size;
  using batch_type = tensor<T, extents<dynamic, C, S, S>>;  // (B, C, S, S)
  /// RNG streams, apart from the parameters' (0, 1 << 32, 2 << 32 and up) and the splits'
  /// (3 << 34) and the tokenizer's (4 << 34). Epoch e's shuffle uses permutation_stream + e.
  static constexpr std::uint64_t permutation_stream = std::uint64_t{5} << 34;
  static constexpr std::uint64_t augmentation_stream = std::uint64_t{6} << 34;

  /// Starts the worker, which prepares batch `first_batch` at once.
  /// Requires: set.channels == C, and set H x W == S x S unless augmentation.crop is on (the crop
  /// resizes to S x S); batch <= set.size(). Throws file_error when the data does not fit (naming
  /// its source, its C x H x W and the config's), std::invalid_argument for batch 0, statistics
  /// not of C finite entries with std > 0, bad augmentation ranges, or an inconsistent set.
  batch_loader(const image_set& set, std::size_t batch, channel_stats stats, augmentation aug,
               std::uint64_t seed, std::uint64_t first_batch = 0, data_shard shard = {})
      : set_(set),
        batch_(batch),
        shard_(shard),
        stats_(std::move(stats)),
        aug_(aug),
        seed_(seed),
        next_(first_batch) {
    check();
    per_epoch_ = set_.size() / batch_;
    for (slot& s : slots_) s.images = batch_type(batch_ / shard_.ranks);
    worker_ = std::thread([this, first_batch] { run(first_batch); });
  }

  batch_loader(const batch_loader&) = delete;
  batch_loader& operator=(const batch_loader&) = delete;

  /// Stops the worker (it abandons a batch it is preparing) and joins it.
  ~batch_loader() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
      stopping_.store(true, std::memory_order_relaxed);
    }
    changed_.notify_all();
    worker_.join();
  }

  /// Batch next_batch(), then advances. Waits for the worker if it is not ready; rethrows the
  /// worker's exception if preparing it failed (again on every later call). The reference stays
  /// valid, and the batch unchanged, until the next call; the worker meanwhile prepares the
  /// following batch in the other buffer.
  const batch_type& next() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (held_) {
      held_->state = slot_state::free;
      held_ = nullptr;
      changed_.notify_all();
    }
    slot& s = slots_[next_ % 2];
    changed_.wait(lock, [&] { return s.state == slot_state::ready || error_; });
    if (s.state != slot_state::ready) std::rethrow_exception(error_);
    s.state = slot_state::held;
    held_ = &s;
    ++next_;
    return s.images;
  }

  /// The labels of the batch next() returned last, (B); empty before the first call and when the
  /// set has no labels.
  const std::vector<std::int32_t>& labels() const { return held_ ? held_->labels : no_labels_; }
  /// The number g of the batch the next call to next() returns.
  std::uint64_t next_batch() const { return next_; }
  std::size_t batches_per_epoch() const { return per_epoch_; }
  std::size_t batch_size() const { return batch_; }

 private:
  enum class slot_state { free, ready, held };
  struct slot {
    batch_type images;                 // (B, C, S, S)
    std::vector<std::int32_t> labels;  // (B) or empty
    slot_state state = slot_state::free;
  };

  static std::string shape(std::size_t c, std::size_t h, std::size_t w) {
    return std::to_string(c) + " x " + std::to_string(h) + " x " + std::to_string(w);
  }

  void check() const {
    const std::string name = "splitmask::batch_loader: ";
    if (batch_ == 0) throw std::invalid_argument(name + "the batch size must be at least 1");
    if (shard_.ranks == 0 || shard_.rank >= shard_.ranks || batch_ % shard_.ranks != 0)
      throw std::invalid_argument(name + "the batch of " + std::to_string(batch_) +
                                  " images cannot be shared by " + std::to_string(shard_.ranks) +
                                  " ranks equally (rank " + std::to_string(shard_.rank) + ")");
    if (set_.image_bytes() == 0 || set_.pixels.size() % set_.image_bytes() != 0 ||
        (!set_.labels.empty() && set_.labels.size() != set_.size()))
      throw std::invalid_argument(name + "inconsistent image_set " + set_.source + ": " +
                                  std::to_string(set_.pixels.size()) + " bytes of " +
                                  shape(set_.channels, set_.height, set_.width) + " images, " +
                                  std::to_string(set_.labels.size()) + " labels");
    const std::string data = "splitmask: data " + set_.source + " holds " +
                             std::to_string(set_.size()) + " images of " +
                             shape(set_.channels, set_.height, set_.width) + " (C x H x W)";
    if (set_.channels != C)
      throw file_error(data + "; the model config expects " + shape(C, S, S) + ": expected " +
                       std::to_string(C) + " channels, found " + std::to_string(set_.channels));
    if (!aug_.crop && (set_.height != S || set_.width != S))
      throw file_error(data + "; the model config expects " + shape(C, S, S) +
                       " and cropping is off: turn cropping on (it resizes) or use a config of "
                       "the data's size");
    if (set_.size() < batch_)
      throw file_error(data + ": expected at least one batch of " + std::to_string(batch_) +
                       " images");
    if (stats_.mean.size() != C || stats_.std.size() != C)
      throw std::invalid_argument(name + "expected channel statistics of " + std::to_string(C) +
                                  " channels, got " + std::to_string(stats_.mean.size()) +
                                  " means and " + std::to_string(stats_.std.size()) + " stds");
    for (std::size_t c = 0; c < C; ++c)
      if (!std::isfinite(stats_.mean[c]) || !std::isfinite(stats_.std[c]) || !(stats_.std[c] > 0))
        throw std::invalid_argument(name + "channel " + std::to_string(c) +
                                    ": expected a finite mean and a finite std > 0, got " +
                                    std::to_string(stats_.mean[c]) + " and " +
                                    std::to_string(stats_.std[c]));
    check_augmentation(aug_);
  }

  // ---- The worker thread -------------------------------------------------------------------
  void run(std::uint64_t g) {
    std::vector<std::size_t> order;  // (n) epoch `order_epoch`'s shuffle
    std::uint64_t order_epoch = 0;
    bool have_order = false;
    for (;; ++g) {
      slot& s = slots_[g % 2];
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || s.state == slot_state::free; });
        if (stop_) return;
      }
      try {
        const std::uint64_t epoch = g / per_epoch_;
        if (!have_order || order_epoch != epoch) {
          shuffle(epoch, order);
          order_epoch = epoch;
          have_order = true;
        }
        if (!fill(s, g, order)) return;  // stopping
      } catch (...) {
        {
          const std::lock_guard<std::mutex> lock(mutex_);
          error_ = std::current_exception();
        }
        changed_.notify_all();
        return;
      }
      {
        const std::lock_guard<std::mutex> lock(mutex_);
        s.state = slot_state::ready;
      }
      changed_.notify_all();
    }
  }

  /// Fisher-Yates over 0..n-1: for i = n-1 down to 1, swap i with j = (the 64 bits of element i
  /// of the epoch's stream) mod (i + 1).
  void shuffle(std::uint64_t epoch, std::vector<std::size_t>& order) const {
    const std::size_t n = set_.size();
    order.resize(n);
    std::iota(order.begin(), order.end(), std::size_t{0});
    const counter_rng rng(seed_, permutation_stream + epoch);
    for (std::size_t i = n - 1; i > 0; --i) {
      const uint32x4 b = rng.bits(i);
      const std::uint64_t r = std::uint64_t{b.v[0]} << 32 | b.v[1];
      std::swap(order[i], order[static_cast<std::size_t>(r % (std::uint64_t{i} + 1))]);
    }
  }

  /// Prepares batch g in `s`; false when the loader is stopping.
  bool fill(slot& s, std::uint64_t g, const std::vector<std::size_t>& order) {
    const std::size_t first = static_cast<std::size_t>(g % per_epoch_) * batch_;
    const counter_rng rng(seed_, augmentation_stream);
    const std::size_t share = batch_ / shard_.ranks, mine = shard_.rank * share;
    s.labels.clear();
    for (std::size_t j = mine; j < mine + share; ++j) {
      if (stopping_.load(std::memory_order_relaxed)) return false;
      const std::size_t index = order[first + j];
      augment_image(set_, index, stats_, aug_, rng, g * batch_ + j,
                    s.images.data() + (j - mine) * C * S * S, S);
      if (!set_.labels.empty()) s.labels.push_back(set_.labels[index]);
    }
    return true;
  }

  const image_set& set_;
  std::size_t batch_;  // B
  data_shard shard_;
  std::size_t per_epoch_ = 0;  // n / B
  channel_stats stats_;
  augmentation aug_;
  std::uint64_t seed_;
  std::uint64_t next_;    // the caller's: the batch next() returns
  slot* held_ = nullptr;  // the caller's: the slot next() returned last
  std::vector<std::int32_t> no_labels_;

  slot slots_[2];  // batch g lives in slots_[g % 2]
  std::mutex mutex_;
  std::condition_variable changed_;  // a slot's state, stop_ or error_ changed
  bool stop_ = false;
  std::atomic<bool> stopping_{false};  // stop_, read without the lock while filling
  std::exception_ptr error_;
  std::thread worker_;
};

}  // namespace splitmask
