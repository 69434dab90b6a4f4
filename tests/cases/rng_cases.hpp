// Counter-based RNG tests shared by the CPU and CUDA suites: a device fills tensors with the
// same numbers as the host's scalar generator (uniform bits exactly; normals to a few ulps of their scale).
#pragma once

#include <doctest/doctest.h>

#include <cstddef>
#include <limits>
#include <vector>

#include "splitmask/core/extents.hpp"
#include "splitmask/core/rng.hpp"
#include "splitmask/tensor/expr/random.hpp"
#include "splitmask/tensor/tensor.hpp"
#include "support/compare.hpp"
#include "support/device_io.hpp"

namespace splitmask::testing {

/// Fills a (B, 7, 33) tensor on Device and compares it with counter_rng called per element.
template <class Device, class T>
void check_random_fill_matches_scalar_draws() {
  using E = extents<dynamic, 7, 33>;
  const counter_rng rng(0x5eed, 3);
  tensor<T, E, Device> u(5), g(5);
  u = uniform<T>(rng, u.extents(), T(-1), T(3));
  g = normal<T>(rng, g.extents(), T(0.5), T(2));
  const auto uv = host_values(u);
  const auto gv = host_values(g);
  std::vector<double> uref(uv.size()), gref(gv.size());
  for (std::size_t i = 0; i < uref.size(); ++i) {
    uref[i] = T(-1) + T(4) * rng.uniform<T>(i);  // the same float arithmetic as the expression
    gref[i] = T(0.5) + T(2) * rng.normal<T>(i);
  }
  const auto cu = compare(uv, uref, 0, 0);
  CHECK_MESSAGE(cu.ok, "uniform, bit for bit: " << cu.describe());
  // Box-Muller's log and cos come from each device's math library; near a zero of the cosine
  // their last-bit differences are large relative to the value, so the absolute tolerance is a
  // few ulps of the distribution's scale (sigma 2 times a radius of up to about 6), not of it.
  const T eps = std::numeric_limits<T>::epsilon();
  const auto cg = compare(gv, gref, 2 * 6 * 4 * eps, 8 * eps);
  CHECK_MESSAGE(cg.ok, "normal, to a few ulps of the scale: " << cg.describe());
}

}  // namespace splitmask::testing

#define SPLITMASK_RNG_TEST_CASES(Device, prefix)                                                   \
  TEST_CASE_TEMPLATE(prefix "random fills equal the scalar generator's draws", T, float, double) { \
    splitmask::testing::check_random_fill_matches_scalar_draws<Device, T>();                       \
  }
