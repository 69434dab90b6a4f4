// Scalar math callable from host and device code, for float and double.
// Device code calls CUDA's intrinsic-backed functions, host code the C library's; the two can
// differ by an ulp or two (see docs/tensor.md on cross-device tolerances).
#pragma once

#include <cmath>

#include "splitmask/core/config.hpp"

namespace splitmask::math {

SPLITMASK_HD inline float exp(float x) { return ::expf(x); }
SPLITMASK_HD inline double exp(double x) { return ::exp(x); }
SPLITMASK_HD inline float log(float x) { return ::logf(x); }
SPLITMASK_HD inline double log(double x) { return ::log(x); }
SPLITMASK_HD inline float sqrt(float x) { return ::sqrtf(x); }
SPLITMASK_HD inline double sqrt(double x) { return ::sqrt(x); }
SPLITMASK_HD inline float tanh(float x) { return ::tanhf(x); }
SPLITMASK_HD inline double tanh(double x) { return ::tanh(x); }
SPLITMASK_HD inline float erf(float x) { return ::erff(x); }
SPLITMASK_HD inline double erf(double x) { return ::erf(x); }
SPLITMASK_HD inline float cos(float x) { return ::cosf(x); }
SPLITMASK_HD inline double cos(double x) { return ::cos(x); }
SPLITMASK_HD inline float abs(float x) { return ::fabsf(x); }
SPLITMASK_HD inline double abs(double x) { return ::fabs(x); }

SPLITMASK_HD inline float rsqrt(float x) {
#if defined(SPLITMASK_ON_DEVICE)
  return ::rsqrtf(x);
#else
  return 1.0f / std::sqrt(x);
#endif
}
SPLITMASK_HD inline double rsqrt(double x) {
#if defined(SPLITMASK_ON_DEVICE)
  return ::rsqrt(x);
#else
  return 1.0 / std::sqrt(x);
#endif
}

/// +infinity of T, usable in device code (std::numeric_limits is host-only there).
template <class T>
SPLITMASK_HD constexpr T infinity() {
  return static_cast<T>(__builtin_huge_val());
}

// min/max that propagate NaN from either side, so a NaN never hides behind a comparison.
template <class T>
SPLITMASK_HD T max(T a, T b) {
  return (a != a || a > b) ? a : b;
}
template <class T>
SPLITMASK_HD T min(T a, T b) {
  return (a != a || a < b) ? a : b;
}

}  // namespace splitmask::math
