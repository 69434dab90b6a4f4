// Softmax cross-entropy over rows of logits, fused and stable (log-sum-exp): the classifier
// head's loss here, the SplitMask decoder's over K token ids later. Forward saves each row's
// log-sum-exp; backward rebuilds the probabilities from it instead of storing them. float rows
// take the vectorised exp of backend/cpu/simd.hpp; other devices' tensors go to
// detail::device_ops, which checks the targets on the device.
//
//   logits, d_logits (M, K)   targets (M) integers in [0, K)   lse (M)
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <type_traits>

#include "splitmask/backend/cpu/simd.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/ops/common.hpp"
#include "splitmask/tensor/tensor_view.hpp"

namespace splitmask {

namespace detail {
// Throws shape_error unless every target is a class in [0, K).
template <std::size_t K, class Targets>
void check_targets(const Targets& targets, const char* op) {
  for (std::size_t r = 0; r < targets.size(); ++r) {
    const auto y = targets.data()[r];
    if (static_cast<long long>(y) < 0 || static_cast<std::size_t>(y) >= K)
      throw shape_error(std::string("splitmask::") + op + ": target " + std::to_string(y) +
                        " of row " + std::to_string(r) + " is outside [0, " + std::to_string(K) +
                        ")");
  }
}
}  // namespace detail

/// Returns the mean over rows of -log softmax(logits)[target]; lse receives each row's
/// log-sum-exp. Throws shape_error for a target outside [0, K).
template <class Lse, class Logits, class Targets>
double cross_entropy_forward(Lse&& lse, const Logits& logits, const Targets& targets) {
  const auto views = detail::views_on_one_device(lse, as_rows(logits), targets);
  return views([&](auto dev, auto vs, auto vl, auto vt) {
    using Device = decltype(dev);
    using T = typename decltype(vl)::value_type;
    constexpr std::size_t K = decltype(vl)::extents_type::last;
    const std::size_t rows = vl.extents().leading();
    if (vt.size() != rows || vs.size() != rows)
      throw shape_error("splitmask::cross_entropy_forward: " + std::to_string(rows) +
                        " rows of logits, " + std::to_string(vt.size()) + " targets, " +
                        std::to_string(vs.size()) + " log-sum-exp slots");
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      return detail::device_ops<Device>::template cross_entropy_forward<T, K>(vs.data(), vl.data(),
                                                                              vt.data(), rows);
    } else {
      detail::check_targets<K>(vt, "cross_entropy_forward");
      double total = 0;
      [[maybe_unused]] const bool use_threads = backend::cpu::run_parallel(rows * K);
      SPLITMASK_OMP(parallel for reduction(+ : total) if (use_threads))
      for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(rows); ++i) {
        const auto r = static_cast<std::size_t>(i);
        const T* row = vl.data() + r * K;
        T m = row[0];
        for (std::size_t k = 1; k < K; ++k) m = row[k] > m ? row[k] : m;
        T sum = 0;
        if constexpr (std::is_same_v<T, float>) {
          sum = backend::cpu::simd::sum_exp(row, K, m);
        } else {
          for (std::size_t k = 0; k < K; ++k) sum += std::exp(row[k] - m);
        }
        const T l = m + std::log(sum);
        vs.data()[r] = l;
        total += static_cast<double>(l - row[vt.data()[r]]);
      }
      return rows ? total / static_cast<double>(rows) : 0.0;
    }
  });
}

/// d_logits = scale / M * (softmax(logits) - onehot(target)): the gradient of `scale` times the
/// mean loss. d_logits may be logits itself (in place).
template <class DLogits, class Logits, class Lse, class Targets>
void cross_entropy_backward(DLogits&& d_logits, const Logits& logits, const Lse& lse,
                            const Targets& targets, double scale = 1.0) {
  const auto views = detail::views_on_one_device(as_rows(d_logits), as_rows(logits), lse, targets);
  views([&](auto dev, auto vd, auto vl, auto vs, auto vt) {
    using Device = decltype(dev);
    using T = typename decltype(vl)::value_type;
    constexpr std::size_t K = decltype(vl)::extents_type::last;
    const std::size_t rows = vl.extents().leading();
    if (vd.extents().leading() != rows || vt.size() != rows || vs.size() != rows)
      throw shape_error(
          "splitmask::cross_entropy_backward: logits, gradient, targets and lse "
          "disagree on rows");
    const T g = rows ? T(scale / static_cast<double>(rows)) : T(0);
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      detail::device_ops<Device>::template cross_entropy_backward<T, K>(
          vd.data(), vl.data(), vs.data(), vt.data(), rows, g);
    } else {
      detail::check_targets<K>(vt, "cross_entropy_backward");
      detail::parallel_for(rows, 2 * K, [&](std::size_t r) {
        const T* row = vl.data() + r * K;
        T* out = vd.data() + r * K;
        const T l = vs.data()[r];
        if constexpr (std::is_same_v<T, float>) {
          backend::cpu::simd::for_each_pack(K, [&](std::size_t k, auto tag) {
            namespace simd = backend::cpu::simd;
            simd::store(out + k, g * simd::exp(simd::load(tag, row + k) - l));
          });
        } else {
          for (std::size_t k = 0; k < K; ++k) out[k] = g * std::exp(row[k] - l);
        }
        out[vt.data()[r]] -= g;
      });
    }
  });
}

}  // namespace splitmask
