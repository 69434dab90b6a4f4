// AdamW (Loshchilov & Hutter) as PyTorch's torch.optim.AdamW computes it, over parameter tensors
// registered once as (values, gradients, size, decay) segments; the moments live in one flat
// buffer each. Weight decay is decoupled (p -= lr·wd·p) and applies only to segments marked to
// decay (linear weights; not biases, norms, positions or mask tokens). A segment may scale the
// learning rate (fine-tuning's layer-wise decay): its step and its decay use lr·lr_scale.
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g²;  p -= lr / (1 - b1^t) · m / (sqrt(v / (1 -
//   b2^t)) + eps)
// On a device (Device other than cpu) the moments live there, and detail::device_ops updates
// every segment in one launch from a table of chunks built at the first use.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "splitmask/core/device.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/ops/common.hpp"
#include "splitmask/tensor/storage.hpp"
#include "splitmask/tensor/tensor.hpp"

namespace splitmask {

struct adamw_options {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.05;
};

template <class T, class Device = device::cpu>
class adamw {
 public:
  using device_type = Device;
  struct segment {
    std::string name;
    T* values;
    const T* gradients;
    std::size_t size;
    bool decay;
    std::size_t offset;  // into the moment buffers
    double lr_scale;     // this segment's learning rate is lr * lr_scale
  };

  explicit adamw(adamw_options options = {}) : options_(options) {}

  /// Registers a parameter tensor and its gradient (before the first step).
  void add(std::string name, T* values, const T* gradients, std::size_t size, bool decay,
           double lr_scale = 1.0) {
    if (steps_ != 0)
      throw std::logic_error("splitmask::adamw: parameters are registered before the first step");
    if (!(lr_scale >= 0) || !std::isfinite(lr_scale))
      throw std::invalid_argument("splitmask::adamw: the learning-rate scale of " + name +
                                  " must be finite and >= 0");
    segments_.push_back({std::move(name), values, gradients, size, decay, total_, lr_scale});
    chunk_table_ = {};  // a device's table is built again at its next use
    segment_sums_.push_back(0);
    total_ += size;
  }

  /// One update with learning rate lr, the gradients scaled by grad_scale first (clipping).
  void step(double lr, double grad_scale = 1.0) {
    allocate_moments();
    ++steps_;
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      detail::device_ops<Device>::adamw_step(segments_, chunk_table_, first_.data(),
                                             second_.data(), options_, steps_, lr, grad_scale);
    } else {
    const double b1 = options_.beta1, b2 = options_.beta2;
    const double correction1 = 1 - std::pow(b1, double(steps_));
    const double correction2_sqrt = std::sqrt(1 - std::pow(b2, double(steps_)));
    for (const auto& s : segments_) {
      const double segment_lr = lr * s.lr_scale;
      const T step_size = T(segment_lr / correction1);
      const T decay = s.decay ? T(1 - segment_lr * options_.weight_decay) : T(1);
      T* m = first_.data() + s.offset;
      T* v = second_.data() + s.offset;
      T* p = s.values;
      const T* g = s.gradients;
      const T scale = T(grad_scale), tb1 = T(b1), tb2 = T(b2);
      const T inv_c2 = T(1 / correction2_sqrt), eps = T(options_.eps);
      // Chunks of L1 size: the three array statements of a chunk read it from cache. Eigen's
      // arrays vectorise the square root, which a plain loop cannot under -fmath-errno.
      constexpr std::size_t chunk = 512;
      detail::parallel_for((s.size + chunk - 1) / chunk, chunk * 8, [&](std::size_t c) {
        using array = Eigen::Array<T, Eigen::Dynamic, 1>;
        const std::size_t begin = c * chunk, n = std::min(s.size, begin + chunk) - begin;
        const Eigen::Map<const array> gi(g + begin, Eigen::Index(n));
        Eigen::Map<array> mi(m + begin, Eigen::Index(n)), vi(v + begin, Eigen::Index(n)),
            pi(p + begin, Eigen::Index(n));
        mi = tb1 * mi + (1 - tb1) * (gi * scale);
        vi = tb2 * vi + ((1 - tb2) * (gi * scale)) * (gi * scale);
        pi = pi * decay - step_size * mi / (vi.sqrt() * inv_c2 + eps);
      });
    }
    }
  }

  /// The global L2 norm of all registered gradients (accumulated in double): segments in
  /// parallel, their sums added in order, so any number of threads gives the same bits.
  double gradient_norm() const {
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      return detail::device_ops<Device>::adamw_gradient_norm(segments_, chunk_table_);
    } else {
    detail::parallel_for(segments_.size(), total_ / std::max<std::size_t>(1, segments_.size()),
                         [&](std::size_t i) {
                           const segment& s = segments_[i];
                           double sum = 0;
                           for (std::size_t j = 0; j < s.size; ++j)
                             sum += double(s.gradients[j]) * s.gradients[j];
                           segment_sums_[i] = sum;
                         });
    double sum = 0;
    for (const double part : segment_sums_) sum += part;
    return std::sqrt(sum);
    }
  }

  const std::vector<segment>& segments() const { return segments_; }
  std::uint64_t steps() const { return steps_; }
  /// The moment buffers, in segment order (for checkpoints).
  tensor_view<T, extents<dynamic>, Device> first_moment() {
    allocate_moments();
    return first_.view();
  }
  tensor_view<T, extents<dynamic>, Device> second_moment() {
    allocate_moments();
    return second_.view();
  }
  /// Restores the step count with the moments (for resuming).
  void set_steps(std::uint64_t steps) { steps_ = steps; }
  const adamw_options& options() const { return options_; }

 private:
  void allocate_moments() {  // once, when every segment is known
    if (first_.size() == total_) return;
    first_ = tensor<T, extents<dynamic>, Device>(total_);
    second_ = tensor<T, extents<dynamic>, Device>(total_);
  }

  adamw_options options_;
  std::vector<segment> segments_;
  std::size_t total_ = 0;
  std::uint64_t steps_ = 0;
  tensor<T, extents<dynamic>, Device> first_, second_;
  mutable std::vector<double> segment_sums_;  // gradient_norm's scratch, one per segment
  mutable buffer<std::byte, Device> chunk_table_;  // a device's table of segment chunks
};

/// The learning rate at `step` (0-based): a linear warm-up over `warmup` steps (base/warmup at
/// step 0, base at step warmup - 1), then a cosine decay to `final_lr` at `total` steps; with
/// total 0, constant at `base` after the warm-up.
inline double warmup_cosine_lr(double base, std::uint64_t step, std::uint64_t warmup,
                               std::uint64_t total, double final_lr = 0) {
  if (step < warmup) return base * double(step + 1) / double(warmup);
  if (total == 0) return base;
  if (step >= total) return final_lr;
  const double progress =
      double(step - warmup) / double(std::max<std::uint64_t>(1, total - warmup));
  return final_lr + (base - final_lr) * 0.5 * (1 + std::cos(3.14159265358979323846 * progress));
}

}  // namespace splitmask
