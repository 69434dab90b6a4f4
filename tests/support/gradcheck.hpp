// Central finite differences in double precision (with Richardson extrapolation) against a
// backward pass.
// Each checked tensor is perturbed element by element (or at a sample of elements, spread over
// the tensor at offsets that vary, so that a sample of a matrix is not a few columns); the error
// of an element is |analytic - numeric| / max(|analytic|, |numeric|, 1e-3 · the tensor's
// largest analytic gradient), so that elements whose gradient is nearly zero are judged on the
// tensor's scale instead of their own.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace splitmask::testing {

/// One tensor to check: its values (perturbed in place, then restored) and the analytic
/// gradient of the loss with respect to them.
struct gradient_entry {
  std::string name;
  double* values;
  const double* analytic;
  std::size_t size;
};

struct gradcheck_result {
  double worst = 0;  // the worst relative error
  std::string name;
  std::size_t index = 0;
  double analytic = 0, numeric = 0;
  std::size_t checked = 0;

  std::string describe() const {
    std::ostringstream s;
    s.precision(6);
    s << "worst relative error " << worst << " over " << checked << " elements, at " << name << "["
      << index << "]: analytic " << analytic << ", numeric " << numeric;
    return s.str();
  }
};

/// Checks every entry's gradient against central differences of `loss` with step h. With
/// max_per_tensor below a tensor's size, that many elements are checked, evenly spaced.
inline gradcheck_result check_gradients(const std::vector<gradient_entry>& entries,
                                        const std::function<double()>& loss, double h = 1e-3,
                                        std::size_t max_per_tensor = static_cast<std::size_t>(-1)) {
  gradcheck_result result;
  for (const auto& e : entries) {
    double scale = 0;
    for (std::size_t i = 0; i < e.size; ++i) scale = std::max(scale, std::abs(e.analytic[i]));
    const std::size_t count = std::min(e.size, max_per_tensor);
    for (std::size_t k = 0; k < count; ++k) {
      // Sample k lies in the k-th of `count` equal ranges, at an offset that changes with k.
      const std::size_t begin = k * e.size / count, width = (k + 1) * e.size / count - begin;
      const std::size_t i = begin + (k * 7919) % width;
      const double saved = e.values[i];
      auto central = [&](double step) {  // (f(x + step) - f(x - step)) / (2 step)
        e.values[i] = saved + step;
        const double up = loss();
        e.values[i] = saved - step;
        const double down = loss();
        e.values[i] = saved;
        return (up - down) / (2 * step);
      };
      // Richardson extrapolation of two central differences cancels the h² term: the error is
      // O(h⁴), so h can be large enough that round-off (eps·|loss| / h) stays far below 1e-9.
      const double numeric = (4 * central(h / 2) - central(h)) / 3;
      const double a = e.analytic[i];
      const double denominator = std::max({std::abs(a), std::abs(numeric), 1e-3 * scale, 1e-300});
      const double error = std::abs(a - numeric) / denominator;
      ++result.checked;
      if (!(error <= result.worst)) {  // NaN counts as worst
        result.worst = error;
        result.name = e.name;
        result.index = i;
        result.analytic = a;
        result.numeric = numeric;
      }
    }
  }
  return result;
}

}  // namespace splitmask::testing
