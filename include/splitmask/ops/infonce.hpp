// InfoNCE between two batches of descriptors, symmetrised: with q = p / |p| per row and
// S = q_a q_b^T / tau (B x B), L = (CE(S, I) + CE(S^T, I)) / 2, where CE(S, I) is the mean over
// rows of -log softmax(row)[diagonal]: image i's two views are the positive pair, the batch's
// other images the negatives. Stable (log-sum-exp); the B x B work is small and done in loops
// (on other devices by detail::device_ops, the state on that device).
//
//   p_a, p_b, dp_a, dp_b (B, D)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>

#include "splitmask/core/error.hpp"
#include "splitmask/ops/common.hpp"
#include "splitmask/tensor/tensor.hpp"

namespace splitmask {

/// What infonce_forward keeps for backward, on the descriptors' device; sized on first use for
/// a batch.
template <class T, std::size_t D, class Device = device::cpu>
struct infonce_state {
  template <class U>
  using flat = tensor<U, extents<dynamic>, Device>;

  std::size_t batch = 0;
  double tau = 1;
  tensor<T, extents<dynamic, D>, Device> q_a, q_b;  // (B, D) unit rows
  flat<T> norm_a, norm_b;                           // (B) |p| before normalising
  flat<T> row_softmax, column_softmax;              // (B, B) softmax of S over j, and over i
  flat<double> work;                                // (B, B) S in forward, dL/dS in backward

  void resize(std::size_t b) {
    if (b == batch && norm_a.size() == b) return;
    batch = b;
    q_a = tensor<T, extents<dynamic, D>, Device>(b);
    q_b = tensor<T, extents<dynamic, D>, Device>(b);
    norm_a = flat<T>(b);
    norm_b = flat<T>(b);
    row_softmax = flat<T>(b * b);
    column_softmax = flat<T>(b * b);
    work = flat<double>(b * b);
  }
};

namespace detail {
// The smallest norm divided by (PyTorch's F.normalize): below it, q = p / min_norm.
inline constexpr double min_norm = 1e-12;

// q = p / max(|p|, min_norm) row by row; norm receives |p| itself.
template <class T, std::size_t D>
void normalise_rows(const T* p, T* q, T* norm, std::size_t rows) {
  for (std::size_t r = 0; r < rows; ++r) {
    T s = 0;
    for (std::size_t c = 0; c < D; ++c) s += p[r * D + c] * p[r * D + c];
    norm[r] = std::sqrt(s);
    const T divisor = std::max(norm[r], T(min_norm));
    for (std::size_t c = 0; c < D; ++c) q[r * D + c] = p[r * D + c] / divisor;
  }
}
}  // namespace detail

/// The symmetrised InfoNCE loss of descriptors p_a and p_b (B, D) at temperature tau.
template <class T, std::size_t D, class Device, class PA, class PB>
double infonce_forward(infonce_state<T, D, Device>& state, const PA& p_a, const PB& p_b,
                       double tau) {
  const auto views = detail::views_on_one_device(p_a, p_b);
  return views([&](auto dev, auto va, auto vb) {
    static_assert(std::is_same_v<decltype(dev), Device>,
                  "splitmask::infonce_forward: the descriptors live on the state's device");
    static_assert(std::is_same_v<typename decltype(va)::extents_type, extents<dynamic, D>> &&
                      std::is_same_v<typename decltype(vb)::extents_type, extents<dynamic, D>>,
                  "splitmask::infonce_forward: the descriptors are (B, D)");
    const std::size_t B = va.batch();
    if (vb.batch() != B || B == 0)
      throw shape_error(
          "splitmask::infonce_forward: the descriptors must hold the same, non-zero "
          "number of images");
    if (!(tau > 0)) throw shape_error("splitmask::infonce_forward: the temperature must be > 0");
    state.resize(B);
    state.tau = tau;
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      return detail::device_ops<Device>::template infonce_forward<T, D>(
          state.q_a.data(), state.q_b.data(), state.norm_a.data(), state.norm_b.data(),
          state.row_softmax.data(), state.column_softmax.data(), state.work.data(), va.data(),
          vb.data(), B, tau);
    } else {
      detail::normalise_rows<T, D>(va.data(), state.q_a.data(), state.norm_a.data(), B);
      detail::normalise_rows<T, D>(vb.data(), state.q_b.data(), state.norm_b.data(), B);
      double* s = state.work.data();  // S in double: B² values, small next to the model
      for (std::size_t i = 0; i < B; ++i)
        for (std::size_t j = 0; j < B; ++j) {
          double dot = 0;
          for (std::size_t c = 0; c < D; ++c)
            dot += double(state.q_a.data()[i * D + c]) * state.q_b.data()[j * D + c];
          s[i * B + j] = dot / tau;
        }
      double loss = 0;
      for (std::size_t i = 0; i < B; ++i) {  // rows: view a of image i against all views b
        double m = s[i * B];
        for (std::size_t j = 1; j < B; ++j) m = std::max(m, s[i * B + j]);
        double z = 0;
        for (std::size_t j = 0; j < B; ++j) z += std::exp(s[i * B + j] - m);
        for (std::size_t j = 0; j < B; ++j)
          state.row_softmax[i * B + j] = T(std::exp(s[i * B + j] - m) / z);
        loss += 0.5 * (m + std::log(z) - s[i * B + i]) / double(B);
      }
      for (std::size_t j = 0; j < B; ++j) {  // columns: view b of image j against all views a
        double m = s[j];
        for (std::size_t i = 1; i < B; ++i) m = std::max(m, s[i * B + j]);
        double z = 0;
        for (std::size_t i = 0; i < B; ++i) z += std::exp(s[i * B + j] - m);
        for (std::size_t i = 0; i < B; ++i)
          state.column_softmax[i * B + j] = T(std::exp(s[i * B + j] - m) / z);
        loss += 0.5 * (m + std::log(z) - s[j * B + j]) / double(B);
      }
      return loss;
    }
  });
}

/// dp_a, dp_b (written) = `scale` times the gradient of infonce_forward's loss.
template <class T, std::size_t D, class Device, class DA, class DB>
void infonce_backward(DA&& dp_a, DB&& dp_b, infonce_state<T, D, Device>& state, double scale = 1) {
  const auto views = detail::views_on_one_device(dp_a, dp_b);
  views([&](auto dev, auto da, auto db) {
    static_assert(std::is_same_v<decltype(dev), Device>,
                  "splitmask::infonce_backward: the gradients live on the state's device");
    static_assert(std::is_same_v<typename decltype(da)::extents_type, extents<dynamic, D>> &&
                      std::is_same_v<typename decltype(db)::extents_type, extents<dynamic, D>>,
                  "splitmask::infonce_backward: the gradients are (B, D)");
    const std::size_t B = state.batch;
    if (da.batch() != B || db.batch() != B)
      throw shape_error("splitmask::infonce_backward: the gradients' batch differs from forward's");
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      detail::device_ops<Device>::template infonce_backward<T, D>(
          da.data(), db.data(), state.q_a.data(), state.q_b.data(), state.norm_a.data(),
          state.norm_b.data(), state.row_softmax.data(), state.column_softmax.data(),
          state.work.data(), B, state.tau, scale);
    } else {
      // dL/dS = (row softmax + column softmax - 2 I) / (2B), times scale; dS/dq carries 1/tau.
      double* g = state.work.data();  // S is no longer needed
      for (std::size_t i = 0; i < B; ++i)
        for (std::size_t j = 0; j < B; ++j)
          g[i * B + j] = scale / (2.0 * double(B) * state.tau) *
                         (double(state.row_softmax[i * B + j]) + state.column_softmax[i * B + j] -
                          (i == j ? 2.0 : 0.0));
      const T* qa = state.q_a.data();
      const T* qb = state.q_b.data();
      // dq_a = G q_b, dq_b = G^T q_a; then through q = p / |p|: dp = (dq - q (q . dq)) / |p|.
      for (std::size_t side = 0; side < 2; ++side) {
        const T* q = side == 0 ? qa : qb;
        const T* other = side == 0 ? qb : qa;
        const T* norm = side == 0 ? state.norm_a.data() : state.norm_b.data();
        T* out = side == 0 ? da.data() : db.data();
        for (std::size_t i = 0; i < B; ++i) {
          double dq[D] = {};
          for (std::size_t j = 0; j < B; ++j) {
            const double w = side == 0 ? g[i * B + j] : g[j * B + i];
            for (std::size_t c = 0; c < D; ++c) dq[c] += w * other[j * D + c];
          }
          if (norm[i] < T(detail::min_norm)) {  // q = p / min_norm is linear in p
            for (std::size_t c = 0; c < D; ++c) out[i * D + c] = T(dq[c] / detail::min_norm);
            continue;
          }
          double dot = 0;
          for (std::size_t c = 0; c < D; ++c) dot += dq[c] * q[i * D + c];
          for (std::size_t c = 0; c < D; ++c)
            out[i * D + c] = T((dq[c] - q[i * D + c] * dot) / norm[i]);
        }
      }
    }
  });
}

}  // namespace splitmask
