// Naive double-precision references of the ViT's ops: plain loops over row-major arrays,
// written from the definitions and sharing no code with the library's ops.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace splitmask::reference {

using vec = std::vector<double>;

/// y (M, O) = x (M, I) W^T (O, I) + b (O).
inline vec linear(const vec& x, const vec& w, const vec& b, std::size_t m, std::size_t in,
                  std::size_t out) {
  vec y(m * out);
  for (std::size_t r = 0; r < m; ++r)
    for (std::size_t o = 0; o < out; ++o) {
      double s = b[o];
      for (std::size_t i = 0; i < in; ++i) s += x[r * in + i] * w[o * in + i];
      y[r * out + o] = s;
    }
  return y;
}

/// LayerNorm of each row of x (M, D), biased variance.
inline vec layernorm(const vec& x, const vec& g, const vec& b, std::size_t m, std::size_t d,
                     double eps) {
  vec y(m * d);
  for (std::size_t r = 0; r < m; ++r) {
    double mean = 0, var = 0;
    for (std::size_t c = 0; c < d; ++c) mean += x[r * d + c] / double(d);
    for (std::size_t c = 0; c < d; ++c) var += (x[r * d + c] - mean) * (x[r * d + c] - mean);
    var /= double(d);
    for (std::size_t c = 0; c < d; ++c)
      y[r * d + c] = (x[r * d + c] - mean) / std::sqrt(var + eps) * g[c] + b[c];
  }
  return y;
}

inline double gelu(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }

/// Multi-head attention from qkv (B, n, 3D), timm layout: out (B, n, D).
inline vec attention(const vec& qkv, std::size_t batch, std::size_t n, std::size_t d,
                     std::size_t heads) {
  const std::size_t dh = d / heads;
  vec out(batch * n * d);
  auto at = [&](std::size_t b, std::size_t t, std::size_t which, std::size_t h, std::size_t c) {
    return qkv[(b * n + t) * 3 * d + which * d + h * dh + c];
  };
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t h = 0; h < heads; ++h)
      for (std::size_t i = 0; i < n; ++i) {
        vec s(n);
        for (std::size_t j = 0; j < n; ++j) {
          double dot = 0;
          for (std::size_t c = 0; c < dh; ++c) dot += at(b, i, 0, h, c) * at(b, j, 1, h, c);
          s[j] = dot / std::sqrt(double(dh));
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double z = 0;
        for (auto& v : s) z += (v = std::exp(v - mx));
        for (std::size_t c = 0; c < dh; ++c) {
          double acc = 0;
          for (std::size_t j = 0; j < n; ++j) acc += s[j] / z * at(b, j, 2, h, c);
          out[(b * n + i) * d + h * dh + c] = acc;
        }
      }
  return out;
}

/// Patches (B, N, C·P·P) of images (B, C, S, S) by the definition of a patch's pixels.
inline vec patchify(const vec& images, std::size_t batch, std::size_t channels, std::size_t size,
                    std::size_t p) {
  const std::size_t grid = size / p, len = channels * p * p;
  vec out(images.size());
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t c = 0; c < channels; ++c)
      for (std::size_t y = 0; y < size; ++y)
        for (std::size_t x = 0; x < size; ++x) {
          const std::size_t t = (y / p) * grid + x / p;
          const std::size_t k = c * p * p + (y % p) * p + x % p;
          out[(b * grid * grid + t) * len + k] = images[((b * channels + c) * size + y) * size + x];
        }
  return out;
}

/// The mean over rows of -log softmax(logits (M, K))[target].
inline double cross_entropy(const vec& logits, const std::vector<int>& targets, std::size_t k) {
  double total = 0;
  for (std::size_t r = 0; r < targets.size(); ++r) {
    double mx = logits[r * k];
    for (std::size_t j = 0; j < k; ++j) mx = std::max(mx, logits[r * k + j]);
    double z = 0;
    for (std::size_t j = 0; j < k; ++j) z += std::exp(logits[r * k + j] - mx);
    total += mx + std::log(z) - logits[r * k + static_cast<std::size_t>(targets[r])];
  }
  return total / double(targets.size());
}

}  // namespace splitmask::reference
