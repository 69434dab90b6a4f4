// GELU, exact (erf) form as PyTorch's default: y = x Φ(x); dy/dx = Φ(x) + x φ(x).
// Both are lazy expressions, so they run in one pass on any device.
//
//   x, y, dx, dy: any equal shape
#pragma once

#include <type_traits>

#include "splitmask/tensor/expr/elementwise.hpp"

namespace splitmask {

/// y = gelu(x).
template <class Y, class X>
void gelu_forward(Y&& y, const X& x) {
  auto out = y.view();
  out = gelu(x.view());
}

/// dx = dy * gelu'(x), x the forward's input. dx may be dy itself (in place).
template <class DX, class DY, class X>
void gelu_backward(DX&& dx, const DY& dy, const X& x) {
  using T = typename std::decay_t<decltype(x.view())>::value_type;
  const T inv_sqrt2 = T(0.70710678118654752440);
  const T inv_sqrt_2pi = T(0.39894228040143267794);
  const auto vx = x.view();
  auto out = dx.view();
  out = dy.view() *
        (T(0.5) * (T(1) + erf(vx * inv_sqrt2)) + vx * inv_sqrt_2pi * exp(T(-0.5) * vx * vx));
}

}  // namespace splitmask
