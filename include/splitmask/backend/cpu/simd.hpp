// A pack of floats as one value (GCC and Clang vector extensions: 8 in an AVX register, 4 in an
// SSE or NEON one; wider packs than the target's registers would change the calling convention)
// and the vector math that the C library cannot give a loop: exp and the normal distribution's
// CDF. Written out by hand because GCC does not if-convert the range checks
// of such functions under the default -ftrapping-math, so scalar versions never vectorise.
// Every function also takes a plain float (loop tails, compilers without vector extensions);
// both forms compute the same polynomials.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace splitmask::backend::cpu::simd {

/// Lanes of a float pack.
#if defined(__AVX__)
inline constexpr std::size_t width = 8;
#else
inline constexpr std::size_t width = 4;
#endif

#if defined(__GNUC__)
#define SPLITMASK_HAS_VECTOR_EXTENSIONS 1
using float_pack = float __attribute__((vector_size(width * sizeof(float))));
using int_pack = std::int32_t __attribute__((vector_size(width * sizeof(std::int32_t))));
#endif

// ---- The primitives each form needs ---------------------------------------------------------
inline float select(bool m, float a, float b) { return m ? a : b; }
inline std::int32_t to_int(float x) { return static_cast<std::int32_t>(x); }
inline float from_bits(std::int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}
#if defined(SPLITMASK_HAS_VECTOR_EXTENSIONS)
inline float_pack select(int_pack m, float_pack a, float_pack b) { return m ? a : b; }
inline int_pack to_int(float_pack x) { return __builtin_convertvector(x, int_pack); }
inline float_pack from_bits(int_pack i) {
  float_pack f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}
#endif

// Loads and stores of a pack or a float, chosen by a tag value, so one lambda serves both.
inline float load(float, const float* p) { return *p; }
inline void store(float* p, float v) { *p = v; }
#if defined(SPLITMASK_HAS_VECTOR_EXTENSIONS)
inline float_pack load(float_pack, const float* p) {
  float_pack v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, float_pack v) { std::memcpy(p, &v, sizeof v); }
#endif

// ---- Math --------------------------------------------------------------------------------------

/// e^x within 1 ulp of the correctly rounded value on the whole float range (tests/test_simd.cpp
/// sweeps it): x = k ln2 + r with |r| <= ln2/2, e^r by its Taylor polynomial of degree 9, 2^k
/// put into exponent bits in two factors so that overflow (inf) and gradual underflow need no
/// branch. NaN stays NaN.
template <class V>
V exp(V x) {
  constexpr float log2e = 1.44269504088896341f;
  constexpr float ln2_hi = 0.693145751953125f;  // few bits, so that k * ln2_hi is exact
  constexpr float ln2_lo = 1.42860682030941723212e-6f;
  constexpr float round_magic = 12582912.f;  // 1.5 * 2^23: adding it rounds to an integer
  x = select(x < -110.f, V{} - 110.f, x);    // e^-110 rounds to 0, e^89 to inf; NaN passes
  x = select(x > 89.f, V{} + 89.f, x);
  const V k = (x * log2e + round_magic) - round_magic;
  const V r = (x - k * ln2_hi) - k * ln2_lo;
  V p = V{} + 1.f / 362880;
  p = p * r + 1.f / 40320;
  p = p * r + 1.f / 5040;
  p = p * r + 1.f / 720;
  p = p * r + 1.f / 120;
  p = p * r + 1.f / 24;
  p = p * r + 1.f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const auto ki = to_int(select(k == k, k, V{}));  // NaN's k converts to 0 (its r is NaN)
  const auto k1 = ki >> 1, k2 = ki - k1;
  return p * from_bits((k1 + 127) << 23) * from_bits((k2 + 127) << 23);
}

/// The standard normal CDF Phi(x) and e^(-x^2/2) (the density times sqrt(2 pi)), together, as
/// GELU needs both: Phi(-|x|) = erfc(|x|/sqrt 2) / 2 by Abramowitz and Stegun's 7.1.26, whose
/// absolute error is below 1.5e-7 in erf (7.5e-8 in Phi: about one float ulp at 1).
template <class V>
void normal_cdf(V x, V& cdf, V& gauss) {
  constexpr float inv_sqrt2 = 0.70710678118654752440f;
  constexpr float p = 0.3275911f;
  constexpr float a1 = 0.254829592f, a2 = -0.284496736f, a3 = 1.421413741f, a4 = -1.453152027f,
                  a5 = 1.061405429f;
  const V z = select(x < 0.f, -x, x) * inv_sqrt2;
  const V t = 1.f / (1.f + p * z);
  gauss = exp(-z * z);
  const V half_erfc = 0.5f * t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5)))) * gauss;
  cdf = select(x < 0.f, half_erfc, 1.f - half_erfc);
}

/// Calls f(i, tag) over [0, n): i steps by `width` with a float_pack tag, then by 1 with a
/// float tag for the tail; f loads and stores with load(tag, p) and store(p, v).
template <class F>
void for_each_pack(std::size_t n, F&& f) {
  std::size_t tail = 0;
#if defined(SPLITMASK_HAS_VECTOR_EXTENSIONS)
  tail = n / width * width;
  for (std::size_t i = 0; i < tail; i += width) f(i, float_pack{});
#endif
  for (std::size_t i = tail; i < n; ++i) f(i, float{});
}

/// The sum of e^(x[i] - shift) over [0, n): packs summed lane by lane, then the lanes and the
/// tail in order (the same bits on every call).
inline float sum_exp(const float* x, std::size_t n, float shift) {
  float total = 0;
  std::size_t tail = 0;
#if defined(SPLITMASK_HAS_VECTOR_EXTENSIONS)
  tail = n / width * width;
  float_pack lanes{};
  for (std::size_t i = 0; i < tail; i += width) lanes += exp(load(float_pack{}, x + i) - shift);
  for (std::size_t l = 0; l < width; ++l) total += lanes[l];
#endif
  for (std::size_t i = tail; i < n; ++i) total += exp(x[i] - shift);
  return total;
}

}  // namespace splitmask::backend::cpu::simd
