// Synthetic Fashion-MNIST-sized images for tests: a dark background with a few bright
// rectangles of random size, place and intensity, drawn from the counter-based RNG (seeded).
#pragma once

#include <cstddef>
#include <cstdint>

#include "splitmask/core/rng.hpp"

namespace splitmask::testing {

/// Fills `count` images of C x S x S floats at `data` (in [0, 1]).
template <std::size_t C, std::size_t S>
void synthetic_images(float* data, std::size_t count, std::uint64_t seed) {
  const counter_rng rng(seed, 0x5a17);
  for (std::size_t i = 0; i < count; ++i) {
    float* image = data + i * C * S * S;
    for (std::size_t k = 0; k < C * S * S; ++k) image[k] = 0.0f;
    for (std::size_t r = 0; r < 3; ++r) {
      const auto bits = rng.bits(i * 8 + r);
      const std::size_t x0 = bits.v[0] % S, y0 = bits.v[1] % S;
      const std::size_t w = 3 + bits.v[2] % (S / 2), h = 3 + (bits.v[2] >> 16) % (S / 2);
      const float level = 0.3f + 0.7f * float(bits.v[3] % 1000) / 1000.0f;
      for (std::size_t c = 0; c < C; ++c)
        for (std::size_t y = y0; y < y0 + h && y < S; ++y)
          for (std::size_t x = x0; x < x0 + w && x < S; ++x) image[(c * S + y) * S + x] = level;
    }
  }
}

}  // namespace splitmask::testing
