// The scalar functions behind elementwise expressions: stateless, host and device.
#pragma once

#include "splitmask/core/config.hpp"
#include "splitmask/core/math.hpp"

namespace splitmask::functors {

#define SPLITMASK_UNARY_FUNCTOR(name, expr) \
  struct name {                             \
    template <class T>                      \
    SPLITMASK_HD T operator()(T x) const {  \
      return expr;                          \
    }                                       \
  };

// clang-format off
SPLITMASK_UNARY_FUNCTOR(negate, -x)
SPLITMASK_UNARY_FUNCTOR(abs, math::abs(x))
SPLITMASK_UNARY_FUNCTOR(exp, math::exp(x))
SPLITMASK_UNARY_FUNCTOR(log, math::log(x))
SPLITMASK_UNARY_FUNCTOR(sqrt, math::sqrt(x))
SPLITMASK_UNARY_FUNCTOR(rsqrt, math::rsqrt(x))
SPLITMASK_UNARY_FUNCTOR(tanh, math::tanh(x))
SPLITMASK_UNARY_FUNCTOR(erf, math::erf(x))
SPLITMASK_UNARY_FUNCTOR(square, x * x)
// max(x, 0) that lets NaN through rather than hiding it as 0.
SPLITMASK_UNARY_FUNCTOR(relu, x < T(0) ? T(0) : x)
// The exact GELU: x * Phi(x) = x/2 * (1 + erf(x / sqrt 2)).
SPLITMASK_UNARY_FUNCTOR(gelu, T(0.5) * x * (T(1) + math::erf(x * T(0.70710678118654752440))))
// clang-format on
#undef SPLITMASK_UNARY_FUNCTOR

#define SPLITMASK_BINARY_FUNCTOR(name, expr)       \
  struct name {                                    \
    template <class T>                             \
    SPLITMASK_HD auto operator()(T a, T b) const { \
      return expr;                                 \
    }                                              \
  };

// clang-format off
SPLITMASK_BINARY_FUNCTOR(plus, a + b)
SPLITMASK_BINARY_FUNCTOR(minus, a - b)
SPLITMASK_BINARY_FUNCTOR(multiplies, a * b)
SPLITMASK_BINARY_FUNCTOR(divides, a / b)
SPLITMASK_BINARY_FUNCTOR(minimum, math::min(a, b))
SPLITMASK_BINARY_FUNCTOR(maximum, math::max(a, b))
SPLITMASK_BINARY_FUNCTOR(less, a < b)
SPLITMASK_BINARY_FUNCTOR(less_equal, a <= b)
SPLITMASK_BINARY_FUNCTOR(greater, a > b)
SPLITMASK_BINARY_FUNCTOR(greater_equal, a >= b)
SPLITMASK_BINARY_FUNCTOR(equal_to, a == b)
SPLITMASK_BINARY_FUNCTOR(not_equal_to, a != b)
// clang-format on
#undef SPLITMASK_BINARY_FUNCTOR

template <class U>
struct cast_to {
  template <class T>
  SPLITMASK_HD U operator()(T x) const {
    return static_cast<U>(x);
  }
};

}  // namespace splitmask::functors
