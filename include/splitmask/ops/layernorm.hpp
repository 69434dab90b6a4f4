// LayerNorm over the last axis: y = (x - mean) * rstd * gamma + beta, rstd = 1 / sqrt(var + eps)
// with the biased variance (PyTorch's). Forward saves mean and rstd per row for backward.
// Host tensors run the loops below, which take the width at run time (one copy for every width:
// they vectorise the same); other devices' go to detail::device_ops.
//
//   x, y, dx, dy (..., D)   gamma, beta (D)   mean, rstd: one value per row (M)
#pragma once

#include <cmath>
#include <cstddef>
#include <type_traits>

#include "splitmask/core/config.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/ops/common.hpp"
#include "splitmask/tensor/tensor_view.hpp"

namespace splitmask {

namespace detail {
template <std::size_t D, class... Vectors>
constexpr bool all_of_length() {
  return ((std::decay_t<Vectors>::extents_type::static_size == D) && ...);
}

template <class T>
SPLITMASK_KERNEL void layernorm_forward_cpu(T* y, T* mean, T* rstd, const T* x, const T* g,
                                            const T* b, std::size_t rows, std::size_t D,
                                            double eps) {
  parallel_for(rows, 3 * D, [&](std::size_t r) {
    const T* in = x + r * D;
    T* out = y + r * D;
    T sum = 0;
    SPLITMASK_OMP(simd reduction(+ : sum))
    for (std::size_t c = 0; c < D; ++c) sum += in[c];
    const T mu = sum / T(D);
    T sq = 0;
    SPLITMASK_OMP(simd reduction(+ : sq))
    for (std::size_t c = 0; c < D; ++c) sq += (in[c] - mu) * (in[c] - mu);
    const T rs = T(1) / std::sqrt(sq / T(D) + T(eps));
    for (std::size_t c = 0; c < D; ++c) out[c] = (in[c] - mu) * rs * g[c] + b[c];
    mean[r] = mu;
    rstd[r] = rs;
  });
}

template <class T>
SPLITMASK_KERNEL void layernorm_backward_cpu(T* dx, T* dg, T* db, const T* dy, const T* x,
                                             const T* mean, const T* rstd, const T* g,
                                             std::size_t rows, std::size_t D, bool add) {
  // dgamma and dbeta first, so that dx may overwrite dy: column sums, threads split columns.
  constexpr std::size_t chunk = 16;
  parallel_for((D + chunk - 1) / chunk, rows * chunk * 2, [&](std::size_t j) {
    const std::size_t begin = j * chunk, end = D < begin + chunk ? D : begin + chunk;
    for (std::size_t r = 0; r < rows; ++r) {
      const T* in = x + r * D;
      const T* d = dy + r * D;
      const T mu = mean[r], rs = rstd[r];
      for (std::size_t c = begin; c < end; ++c) {
        dg[c] += d[c] * (in[c] - mu) * rs;
        db[c] += d[c];
      }
    }
  });
  // dx = rstd * (g dy - mean(g dy) - xhat * mean(g dy xhat)), row by row (each row read before
  // it is written).
  parallel_for(rows, 4 * D, [&](std::size_t r) {
    const T* in = x + r * D;
    const T* d = dy + r * D;
    T* out = dx + r * D;
    const T mu = mean[r], rs = rstd[r];
    T s1 = 0, s2 = 0;
    SPLITMASK_OMP(simd reduction(+ : s1, s2))
    for (std::size_t c = 0; c < D; ++c) {
      const T gd = g[c] * d[c];
      s1 += gd;
      s2 += gd * (in[c] - mu) * rs;
    }
    s1 /= T(D);
    s2 /= T(D);
    for (std::size_t c = 0; c < D; ++c) {
      const T v = rs * (g[c] * d[c] - s1 - (in[c] - mu) * rs * s2);
      out[c] = add ? out[c] + v : v;
    }
  });
}
}  // namespace detail

/// y = LayerNorm(x); mean and rstd (any shape with one element per row) receive the statistics.
template <class Y, class Mean, class Rstd, class X, class G, class B>
void layernorm_forward(Y&& y, Mean&& mean, Rstd&& rstd, const X& x, const G& gamma, const B& beta,
                       double eps) {
  const auto views = detail::views_on_one_device(as_rows(y), mean, rstd, as_rows(x), gamma, beta);
  views([&](auto dev, auto vy, auto vm, auto vr, auto vx, auto vg, auto vb) {
    using Device = decltype(dev);
    using T = typename decltype(vy)::value_type;
    constexpr std::size_t D = decltype(vx)::extents_type::last;
    static_assert(decltype(vy)::extents_type::last == D &&
                      detail::all_of_length<D, decltype(vg), decltype(vb)>(),
                  "splitmask::layernorm_forward: x, y, gamma and beta need the same last extent");
    const std::size_t rows = vx.extents().leading();
    if (vy.extents().leading() != rows || vm.size() != rows || vr.size() != rows)
      throw shape_error("splitmask::layernorm_forward: x, y, mean and rstd disagree on rows");
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      detail::device_ops<Device>::template layernorm_forward<T, D>(
          vy.data(), vm.data(), vr.data(), vx.data(), vg.data(), vb.data(), rows, eps);
    } else {
      detail::layernorm_forward_cpu<T>(vy.data(), vm.data(), vr.data(), vx.data(), vg.data(),
                                       vb.data(), rows, D, eps);
    }
  });
}

/// dx = the input gradient (written, or added with write_mode::accumulate: the residual stream);
/// dgamma += sum over rows of dy * xhat; dbeta += sum over rows of dy. dx may be dy (in place).
template <class DX, class DG, class DB, class DY, class X, class Mean, class Rstd, class G>
void layernorm_backward(DX&& dx, DG&& dgamma, DB&& dbeta, const DY& dy, const X& x,
                        const Mean& mean, const Rstd& rstd, const G& gamma,
                        write_mode mode = write_mode::overwrite) {
  const auto views = detail::views_on_one_device(as_rows(dx), dgamma, dbeta, as_rows(dy),
                                                 as_rows(x), mean, rstd, gamma);
  views([&](auto dev, auto vdx, auto vdg, auto vdb, auto vdy, auto vx, auto vm, auto vr, auto vg) {
    using Device = decltype(dev);
    using T = typename decltype(vdx)::value_type;
    constexpr std::size_t D = decltype(vx)::extents_type::last;
    static_assert(decltype(vdx)::extents_type::last == D &&
                      decltype(vdy)::extents_type::last == D &&
                      detail::all_of_length<D, decltype(vg), decltype(vdg), decltype(vdb)>(),
                  "splitmask::layernorm_backward: dx, dy, x, gamma and the gradients of gamma and "
                  "beta need the same last extent");
    const std::size_t rows = vx.extents().leading();
    if (vdx.extents().leading() != rows || vdy.extents().leading() != rows || vm.size() != rows ||
        vr.size() != rows)
      throw shape_error("splitmask::layernorm_backward: dx, dy, x, mean and rstd disagree on rows");
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      detail::device_ops<Device>::template layernorm_backward<T, D>(
          vdx.data(), vdg.data(), vdb.data(), vdy.data(), vx.data(), vm.data(), vr.data(),
          vg.data(), rows, mode == write_mode::accumulate);
    } else {
      detail::layernorm_backward_cpu<T>(vdx.data(), vdg.data(), vdb.data(), vdy.data(), vx.data(),
                                        vm.data(), vr.data(), vg.data(), rows, D,
                                        mode == write_mode::accumulate);
    }
  });
}

}  // namespace splitmask
