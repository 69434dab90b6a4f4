// Element-wise comparison of a result with a double-precision reference:
// |got - ref| <= atol + rtol * |ref| everywhere, reporting the worst element (never a sum).
#pragma once

#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

namespace splitmask::testing {

struct comparison {
  bool ok = true;
  std::size_t count = 0;
  std::size_t worst_index = 0;
  double worst_excess = -INFINITY;  // max over elements of |got - ref| - (atol + rtol |ref|)
  double got = 0, ref = 0;

  std::string describe() const {
    std::ostringstream s;
    s.precision(10);
    s << (ok ? "within" : "OUTSIDE") << " tolerance over " << count << " elements; worst at "
      << worst_index << ": got " << got << ", reference " << ref << ", |diff| "
      << std::abs(got - ref);
    return s.str();
  }
};

/// Compares n values of `got` (any arithmetic type) with a double reference. NaN matches only
/// NaN, and an infinity only the same infinity.
template <class T>
comparison compare(const T* got, const double* ref, std::size_t n, double atol, double rtol) {
  comparison c;
  c.count = n;
  for (std::size_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(got[i]);
    const double r = ref[i];
    double excess;
    if (g == r || (std::isnan(g) && std::isnan(r))) {
      excess = -(atol + rtol * std::abs(r));
    } else if (std::isnan(g) || std::isnan(r) || std::isinf(g) || std::isinf(r)) {
      excess = INFINITY;
    } else {
      excess = std::abs(g - r) - (atol + rtol * std::abs(r));
    }
    if (excess > c.worst_excess) {
      c.worst_excess = excess;
      c.worst_index = i;
      c.got = g;
      c.ref = r;
    }
  }
  c.ok = n == 0 || c.worst_excess <= 0;
  return c;
}

template <class T>
comparison compare(const std::vector<T>& got, const std::vector<double>& ref, double atol,
                   double rtol) {
  return compare(got.data(), ref.data(), ref.size(), atol, rtol);
}

/// The largest |a - b| over the largest |b|, for two buffers of the same size (.data(), .size()):
/// 0 for equal buffers. How far two runs that should agree have drifted, as one number.
template <class A, class B>
double relative_difference(const A& a, const B& b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::fmax(diff, std::abs(double(a.data()[i]) - double(b.data()[i])));
    scale = std::fmax(scale, std::abs(double(b.data()[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

/// Default tolerances for results computed in T against a double reference.
template <class T>
struct tolerance {
  static constexpr double atol = sizeof(T) == 4 ? 1e-6 : 1e-13;
  static constexpr double rtol = sizeof(T) == 4 ? 2e-6 : 1e-12;
};

}  // namespace splitmask::testing
