// GELU, exact (erf) form as PyTorch's default: y = x Phi(x); dy/dx = Phi(x) + x phi(x).
// On the CPU, float runs hand-vectorised kernels (backend/cpu/simd.hpp: Phi within 7.5e-8,
// exp within an ulp), one pass each, the backward with one exp per element for both Phi and
// phi. double uses the C library's erf and exp (the gradient checks).
// Other devices evaluate the lazy `gelu` expression.
//
//   x, y, dx, dy: any equal shape
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <type_traits>

#include "splitmask/backend/cpu/simd.hpp"
#include "splitmask/core/device.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/ops/common.hpp"
#include "splitmask/tensor/expr/elementwise.hpp"

namespace splitmask {

namespace detail {
inline constexpr double inv_sqrt2 = 0.70710678118654752440;
inline constexpr double inv_sqrt_2pi = 0.39894228040143267794;

// out = gelu(x), or with Derivative out = dy * gelu'(x), over n contiguous elements (out may
// alias x or dy).
template <bool Derivative, class T>
void gelu_kernel(T* out, const T* x, [[maybe_unused]] const T* dy, std::size_t n) {
  if constexpr (std::is_same_v<T, float>) {
    backend::cpu::simd::for_each_pack(n, [&](std::size_t i, auto tag) {
      namespace simd = backend::cpu::simd;
      const auto v = simd::load(tag, x + i);
      decltype(tag) cdf, gauss;
      simd::normal_cdf(v, cdf, gauss);
      if constexpr (Derivative) {
        simd::store(out + i, simd::load(tag, dy + i) * (cdf + v * gauss * float(inv_sqrt_2pi)));
      } else {
        simd::store(out + i, v * cdf);
      }
    });
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      const T v = x[i];
      const T cdf = T(0.5) * (T(1) + std::erf(v * T(inv_sqrt2)));
      if constexpr (Derivative) {
        out[i] = dy[i] * (cdf + v * T(inv_sqrt_2pi) * std::exp(T(-0.5) * v * v));
      } else {
        out[i] = v * cdf;
      }
    }
  }
}

// Runs kernel(begin, count) over [0, n) in slices of whole cache lines, on the thread pool when
// n is large.
template <class T, class Kernel>
void for_each_slice(std::size_t n, Kernel&& kernel) {
  constexpr std::size_t slice = 4096;  // 16 KiB of floats: L1-sized
  parallel_for((n + slice - 1) / slice, slice, [&](std::size_t s) {
    const std::size_t begin = s * slice;
    kernel(begin, n - begin < slice ? n - begin : slice);
  });
}

template <class A, class B>
void require_same_size(const A& a, const B& b, const char* op) {
  if (a.size() != b.size())
    throw shape_error(std::string("splitmask::") + op + ": the tensors differ in size");
}
}  // namespace detail

/// y = gelu(x). y may be x (in place).
template <class Y, class X>
void gelu_forward(Y&& y, const X& x) {
  const auto views = detail::views_on_one_device(y, x);
  views([&](auto dev, auto vy, auto vx) {
    using Device = decltype(dev);
    if constexpr (std::is_same_v<Device, device::cpu>) {
      detail::require_same_size(vy, vx, "gelu_forward");
      using T = typename decltype(vy)::value_type;
      detail::for_each_slice<T>(vx.size(), [&](std::size_t i, std::size_t n) {
        detail::gelu_kernel<false, T>(vy.data() + i, vx.data() + i, nullptr, n);
      });
    } else {
      vy = gelu(vx);
    }
  });
}

/// dx = dy * gelu'(x), x the forward's input. dx may be dy itself (in place).
template <class DX, class DY, class X>
void gelu_backward(DX&& dx, const DY& dy, const X& x) {
  const auto views = detail::views_on_one_device(dx, dy, x);
  views([&](auto dev, auto vdx, auto vdy, auto vx) {
    using Device = decltype(dev);
    using T = typename decltype(vdx)::value_type;
    if constexpr (std::is_same_v<Device, device::cpu>) {
      detail::require_same_size(vdx, vx, "gelu_backward");
      detail::require_same_size(vdy, vx, "gelu_backward");
      detail::for_each_slice<T>(vx.size(), [&](std::size_t i, std::size_t n) {
        detail::gelu_kernel<true, T>(vdx.data() + i, vx.data() + i, vdy.data() + i, n);
      });
    } else {
      vdx = vdy * (T(0.5) * (T(1) + erf(vx * T(detail::inv_sqrt2))) +
                   vx * T(detail::inv_sqrt_2pi) * exp(T(-0.5) * vx * vx));
    }
  });
}

}  // namespace splitmask
