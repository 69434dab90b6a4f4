// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11): a pure function of
// (seed, stream, index), so a given element gets the same bits on the CPU and on a CUDA device,
// whatever the number of threads or the order in which elements are drawn.
#pragma once

#include <cstdint>

#include "splitmask/core/config.hpp"
#include "splitmask/core/math.hpp"

namespace splitmask {

/// Four 32-bit words: one Philox counter, key-scrambled output, or counter input.
struct uint32x4 {
  std::uint32_t v[4];
};

namespace detail {
SPLITMASK_HD constexpr void mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi,
                                    std::uint32_t& lo) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  hi = static_cast<std::uint32_t>(p >> 32);
  lo = static_cast<std::uint32_t>(p);
}
}  // namespace detail

/// Philox4x32 with 10 rounds: counter (4 words) and key (2 words) to 4 random words.
SPLITMASK_HD constexpr uint32x4 philox4x32_10(uint32x4 ctr, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;  // multipliers
  constexpr std::uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;  // Weyl key increments
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += w0;
      k1 += w1;
    }
    std::uint32_t hi0 = 0, lo0 = 0, hi1 = 0, lo1 = 0;
    detail::mulhilo(m0, ctr.v[0], hi0, lo0);
    detail::mulhilo(m1, ctr.v[2], hi1, lo1);
    ctr = uint32x4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
  }
  return ctr;
}

/// A stream of random numbers indexed by a 64-bit element index. `seed` is the Philox key;
/// `stream` fills the counter's high half, so distinct streams of one seed never overlap.
/// Element `i` of a stream is drawn from counter (i, stream) alone.
class counter_rng {
 public:
  constexpr counter_rng() = default;
  constexpr explicit counter_rng(std::uint64_t seed, std::uint64_t stream = 0)
      : seed_(seed), stream_(stream) {}

  constexpr std::uint64_t seed() const { return seed_; }
  constexpr std::uint64_t stream() const { return stream_; }
  /// Another stream of the same seed.
  constexpr counter_rng with_stream(std::uint64_t stream) const {
    return counter_rng(seed_, stream);
  }

  /// The four random words of element `index`.
  SPLITMASK_HD constexpr uint32x4 bits(std::uint64_t index) const {
    const uint32x4 ctr{{static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32),
                        static_cast<std::uint32_t>(stream_),
                        static_cast<std::uint32_t>(stream_ >> 32)}};
    return philox4x32_10(ctr, static_cast<std::uint32_t>(seed_),
                         static_cast<std::uint32_t>(seed_ >> 32));
  }

  /// Uniform in [0, 1): 24 random bits for float, 53 for double; exact and device-independent.
  template <class T>
  SPLITMASK_HD T uniform(std::uint64_t index) const {
    const uint32x4 b = bits(index);
    return to_unit<T>(b.v[0], b.v[1]);
  }

  /// Standard normal by Box-Muller. The uniforms are bit-identical across devices; the log and
  /// cos of the device's math library may differ from the host's by an ulp or two.
  template <class T>
  SPLITMASK_HD T normal(std::uint64_t index) const {
    const uint32x4 b = bits(index);
    const T u1 = T(1) - to_unit<T>(b.v[0], b.v[1]);  // (0, 1]: log(u1) is finite
    const T u2 = to_unit<T>(b.v[2], b.v[3]);
    const T two_pi = T(6.283185307179586476925286766559);
    return math::sqrt(T(-2) * math::log(u1)) * math::cos(two_pi * u2);
  }

 private:
  template <class T>
  SPLITMASK_HD static constexpr T to_unit(std::uint32_t a, std::uint32_t b) {
    if constexpr (sizeof(T) <= 4) {
      return static_cast<T>(a >> 8) * T(1.0 / 16777216.0);  // 2^-24
    } else {
      const std::uint64_t m = (static_cast<std::uint64_t>(a) << 21) ^ (b >> 11);  // 53 bits
      return static_cast<T>(m) * T(1.0 / 9007199254740992.0);                     // 2^-53
    }
  }

  std::uint64_t seed_ = 0;
  std::uint64_t stream_ = 0;
};

}  // namespace splitmask
