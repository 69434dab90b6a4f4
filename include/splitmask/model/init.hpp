// Seeded parameter initialisation as in MAE and BEiT: linear weights from a normal of standard
// deviation 0.02 truncated at two standard deviations, biases 0, LayerNorm weights 1.
// Draws come from the counter-based RNG, so a seed gives the same weights on any machine and
// for any thread count.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "splitmask/core/rng.hpp"

namespace splitmask {

/// Fills n values with N(0, std²) truncated to [-2 std, 2 std]: value i redraws (counter
/// i + attempt·2^40) until it lands inside, 1.05 draws on average.
template <class T>
void truncated_normal_fill(T* data, std::size_t n, const counter_rng& rng, double std_dev) {
  constexpr std::uint64_t attempt_stride = std::uint64_t{1} << 40;
  for (std::size_t i = 0; i < n; ++i) {
    double z = rng.normal<double>(i);
    for (std::uint64_t a = 1; std::abs(z) > 2.0; ++a)
      z = rng.normal<double>(i + a * attempt_stride);
    data[i] = static_cast<T>(z * std_dev);
  }
}

/// How a parameter tensor is initialised and whether AdamW decays it.
enum class parameter_role {
  weight,      // linear weight: truncated normal 0.02, weight decay
  bias,        // 0, no decay
  norm_scale,  // LayerNorm weight: 1, no decay
  embedding,   // learned position embedding or mask token: truncated normal 0.02, no decay
};

/// Initialises n values for a role; `rng` is the tensor's own stream.
template <class T>
void initialise(T* data, std::size_t n, parameter_role role, const counter_rng& rng) {
  switch (role) {
    case parameter_role::weight:
    case parameter_role::embedding:
      truncated_normal_fill(data, n, rng, 0.02);
      break;
    case parameter_role::bias:
      for (std::size_t i = 0; i < n; ++i) data[i] = T(0);
      break;
    case parameter_role::norm_scale:
      for (std::size_t i = 0; i < n; ++i) data[i] = T(1);
      break;
  }
}

/// Whether AdamW's weight decay applies (not to biases, norms, positions, mask tokens).
constexpr bool decays(parameter_role role) { return role == parameter_role::weight; }

}  // namespace splitmask
