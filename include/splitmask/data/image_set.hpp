// image_set: a whole dataset of 8-bit images in memory, as every reader (IDX, CIFAR, image
// folders) returns it, and the per-channel statistics that normalise it.
//
// Legend: n images, C channels, H height, W width.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "splitmask/core/error.hpp"

namespace splitmask {

/// n images of C x H x W bytes, stored image after image, each channel-major (CHW).
/// Invariants the readers ensure: pixels.size() == n * C * H * W; labels is empty or holds n
/// entries; when classes is not empty, every label lies in [0, classes.size()).
struct image_set {
  std::size_t channels = 0, height = 0, width = 0;  // C, H, W
  std::vector<std::uint8_t> pixels;                 // (n, C, H, W), 0..255
  std::vector<std::int32_t> labels;                 // (n), or empty when the data has none
  std::vector<std::string> classes;                 // class names when known, else empty
  std::string source;                               // what was read (for messages)

  /// n: the number of images (0 for a set without a shape).
  std::size_t size() const { return image_bytes() == 0 ? 0 : pixels.size() / image_bytes(); }
  /// C * H * W: the bytes of one image.
  std::size_t image_bytes() const { return channels * height * width; }
  /// The first byte of image i, (C, H, W). Requires i < size().
  const std::uint8_t* image(std::size_t i) const { return pixels.data() + i * image_bytes(); }
};

/// Per-channel mean and standard deviation of the pixels scaled to [0, 1].
struct channel_stats {
  std::vector<double> mean, std;  // (C), (C)
};

/// The mean and the population standard deviation (divisor n·H·W) of each channel over the whole
/// set, of pixels / 255. A channel that is constant gets std 1 instead of 0, so that normalising
/// by it only centres it. Throws file_error when the set holds no image.
inline channel_stats compute_channel_stats(const image_set& set) {
  const std::size_t n = set.size();
  if (n == 0)
    throw file_error("splitmask: cannot compute channel statistics of " +
                     (set.source.empty() ? std::string("an image set") : set.source) +
                     ": expected at least one image, found none");
  const std::size_t C = set.channels, plane = set.height * set.width;
  // Exact integer sums: 255^2 * 2^40 pixels per channel still fit in 64 bits.
  std::vector<std::uint64_t> sum(C, 0), sum_sq(C, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* image = set.image(i);
    for (std::size_t c = 0; c < C; ++c) {
      std::uint64_t s = 0, s2 = 0;
      const std::uint8_t* p = image + c * plane;
      for (std::size_t k = 0; k < plane; ++k) {
        const std::uint64_t v = p[k];
        s += v;
        s2 += v * v;
      }
      sum[c] += s;
      sum_sq[c] += s2;
    }
  }
  channel_stats stats;
  const double count = static_cast<double>(n) * static_cast<double>(plane);
  for (std::size_t c = 0; c < C; ++c) {
    const double s1 = static_cast<double>(sum[c]), s2 = static_cast<double>(sum_sq[c]);
    const double mean = s1 / count;               // in 0..255
    const double var = (s2 - s1 * mean) / count;  // exact 0 for a constant channel
    const double sd = var > 0 ? std::sqrt(var) / 255.0 : 0.0;
    stats.mean.push_back(mean / 255.0);
    stats.std.push_back(sd > 0 ? sd : 1.0);
  }
  return stats;
}

}  // namespace splitmask
