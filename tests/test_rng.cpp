// The counter-based RNG: Random123's known answers, distribution moments, stream independence.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <splitmask/splitmask.hpp>

#include "cases/rng_cases.hpp"

using namespace splitmask;

TEST_CASE("philox4x32_10 reproduces Random123's known-answer vectors") {
  struct kat {
    uint32x4 ctr;
    std::uint32_t k0, k1;
    uint32x4 expected;
  };
  const kat vectors[] = {
      {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}}},
      {{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
       0xffffffffu,
       0xffffffffu,
       {{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}}},
      {{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
       0xa4093822u,
       0x299f31d0u,
       {{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}}},
  };
  for (const auto& v : vectors) {
    const uint32x4 out = philox4x32_10(v.ctr, v.k0, v.k1);
    for (int w = 0; w < 4; ++w) CHECK(out.v[w] == v.expected.v[w]);
  }
  // Usable at compile time.
  static_assert(philox4x32_10(uint32x4{{0, 0, 0, 0}}, 0, 0).v[0] == 0x6627e8d5u);
}

TEST_CASE("uniform and normal draws have the right moments") {
  const counter_rng rng(2024);
  constexpr int n = 200000;
  double su = 0, suu = 0, sn = 0, snn = 0, sn4 = 0;
  float umin = 1, umax = 0;
  for (int i = 0; i < n; ++i) {
    const float u = rng.uniform<float>(i);
    const double g = rng.normal<double>(i);
    su += u;
    suu += double(u) * u;
    umin = std::min(umin, u);
    umax = std::max(umax, u);
    sn += g;
    snn += g * g;
    sn4 += g * g * g * g;
  }
  // Bounds are 5 standard errors of each estimate.
  CHECK(umin >= 0.0f);
  CHECK(umax < 1.0f);
  CHECK(std::abs(su / n - 0.5) < 5 * std::sqrt(1.0 / 12 / n));
  CHECK(std::abs(suu / n - 1.0 / 3) < 5 * std::sqrt(4.0 / 45 / n));
  CHECK(std::abs(sn / n) < 5 * std::sqrt(1.0 / n));
  CHECK(std::abs(snn / n - 1) < 5 * std::sqrt(2.0 / n));
  CHECK(std::abs(sn4 / n - 3) < 5 * std::sqrt(96.0 / n));
}

TEST_CASE("streams and seeds give different sequences; the same ones repeat") {
  const counter_rng a(1, 0), b(1, 1), c(2, 0);
  int same_ab = 0, same_ac = 0;
  for (int i = 0; i < 1000; ++i) {
    same_ab += a.bits(i).v[0] == b.bits(i).v[0];
    same_ac += a.bits(i).v[0] == c.bits(i).v[0];
    CHECK(a.uniform<double>(i) == counter_rng(1, 0).uniform<double>(i));
  }
  CHECK(same_ab <= 1);
  CHECK(same_ac <= 1);
  CHECK(a.with_stream(1).bits(7).v[2] == b.bits(7).v[2]);
}

TEST_CASE("uniform doubles use 53 bits, floats 24") {
  const counter_rng rng(9);
  bool fine_double = false;
  for (int i = 0; i < 64; ++i) {
    const double u = rng.uniform<double>(i);
    fine_double |= std::fmod(u * 16777216.0, 1.0) != 0.0;  // not a multiple of 2^-24
    const float f = rng.uniform<float>(i);
    CHECK(std::fmod(double(f) * 16777216.0, 1.0) == 0.0);
  }
  CHECK(fine_double);
}

SPLITMASK_RNG_TEST_CASES(splitmask::device::cpu, "cpu: ")
