// Seeded data augmentation: torchvision's RandomResizedCrop (bilinear, antialias off) and
// RandomHorizontalFlip, then per-channel normalisation, as a pure function of (seed, draw).
//
// Legend: C channels, H x W the stored image, S the output size, (h, w) the crop.
#pragma once

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "splitmask/core/rng.hpp"
#include "splitmask/data/image_set.hpp"

namespace splitmask {

/// What augment_image does besides normalising. The defaults are SplitMask's pre-training
/// recipe: RandomResizedCrop(scale = (0.35, 1), ratio = (3/4, 4/3)) and a horizontal flip.
struct augmentation {
  double min_scale = 0.35, max_scale = 1.0;         // crop area as a fraction of the image's
  double min_ratio = 3.0 / 4, max_ratio = 4.0 / 3;  // crop width / height
  bool flip = true;                                 // flip horizontally with p = 1/2
  bool crop = true;  // random resized crop; off: the whole image, resized to S x S if needed

  /// No crop and no flip: normalisation only (with a resize when the sizes differ).
  static augmentation none() {
    augmentation a;
    a.flip = false;
    a.crop = false;
    return a;
  }
};

/// Throws std::invalid_argument unless 0 < min_scale <= max_scale and 0 < min_ratio <= max_ratio
/// (all finite).
inline void check_augmentation(const augmentation& a) {
  const auto ok = [](double lo, double hi) {
    return std::isfinite(lo) && std::isfinite(hi) && lo > 0 && lo <= hi;
  };
  if (!ok(a.min_scale, a.max_scale) || !ok(a.min_ratio, a.max_ratio))
    throw std::invalid_argument(
        "splitmask::augmentation: expected 0 < min_scale <= max_scale and 0 < min_ratio <= "
        "max_ratio, got scale [" +
        std::to_string(a.min_scale) + ", " + std::to_string(a.max_scale) + "] and ratio [" +
        std::to_string(a.min_ratio) + ", " + std::to_string(a.max_ratio) + "]");
}

/// A rectangle of an image, in pixels: rows [top, top + height), columns [left, left + width).
struct crop_box {
  std::size_t top = 0, left = 0, height = 0, width = 0;
};

/// Random elements of the RNG stream one augmented image uses: [draw * 16, draw * 16 + 12), so
/// distinct draws (below 2^60) never share one.
inline constexpr std::uint64_t augment_draws_per_image = 16;

namespace detail {
/// 53 uniform bits in [0, 1) from two words (as counter_rng::uniform<double>).
inline double unit_double(std::uint32_t a, std::uint32_t b) {
  const std::uint64_t m = (std::uint64_t{a} << 21) ^ (b >> 11);
  return static_cast<double>(m) * (1.0 / 9007199254740992.0);
}
/// Uniform integer in [0, n) from a unit double.
inline std::size_t below(double u, std::size_t n) {
  const auto k = static_cast<std::size_t>(u * static_cast<double>(n));
  return k < n ? k : n - 1;
}
}  // namespace detail

/// The crop RandomResizedCrop picks for an H x W image, as torchvision's get_params computes it:
/// up to 10 tries of an area fraction uniform in [min_scale, max_scale] and a ratio whose log is
/// uniform in [log min_ratio, log max_ratio]; w = round(sqrt(area * ratio)), h = round(sqrt(area
/// / ratio)) (half to even, as Python); the first try with 0 < w <= W and 0 < h <= H gets a
/// uniform position; otherwise the centre crop of the ratio clamped to the range. Draws elements
/// draw * 16 + 0..10 of `rng`: element t < 10 gives try t's scale (words 0, 1) and log-ratio
/// (words 2, 3); element 10 the top (words 0, 1) and left (words 2, 3). Requires H, W >= 1.
/// Ensures top + height <= H, left + width <= W, height, width >= 1.
inline crop_box random_resized_crop_box(std::size_t H, std::size_t W, const augmentation& a,
                                        counter_rng rng, std::uint64_t draw) {
  const std::uint64_t base = draw * augment_draws_per_image;
  const double area = static_cast<double>(H) * static_cast<double>(W);
  const double log_lo = std::log(a.min_ratio), log_hi = std::log(a.max_ratio);
  for (std::uint64_t t = 0; t < 10; ++t) {
    const uint32x4 b = rng.bits(base + t);
    const double target =
        area * (a.min_scale + (a.max_scale - a.min_scale) * detail::unit_double(b.v[0], b.v[1]));
    const double ratio = std::exp(log_lo + (log_hi - log_lo) * detail::unit_double(b.v[2], b.v[3]));
    const double w = std::nearbyint(std::sqrt(target * ratio));
    const double h = std::nearbyint(std::sqrt(target / ratio));
    if (w > 0 && w <= static_cast<double>(W) && h > 0 && h <= static_cast<double>(H)) {
      crop_box box;
      box.width = static_cast<std::size_t>(w);
      box.height = static_cast<std::size_t>(h);
      const uint32x4 p = rng.bits(base + 10);
      box.top = detail::below(detail::unit_double(p.v[0], p.v[1]), H - box.height + 1);
      box.left = detail::below(detail::unit_double(p.v[2], p.v[3]), W - box.width + 1);
      return box;
    }
  }
  // Fallback: a centred crop of the nearest allowed ratio.
  crop_box box;
  const double in_ratio = static_cast<double>(W) / static_cast<double>(H);
  box.width = W;
  box.height = H;
  if (in_ratio < a.min_ratio) {
    box.height = static_cast<std::size_t>(std::nearbyint(static_cast<double>(W) / a.min_ratio));
  } else if (in_ratio > a.max_ratio) {
    box.width = static_cast<std::size_t>(std::nearbyint(static_cast<double>(H) * a.max_ratio));
  }
  box.height = std::min(std::max<std::size_t>(box.height, 1), H);
  box.width = std::min(std::max<std::size_t>(box.width, 1), W);
  box.top = (H - box.height) / 2;
  box.left = (W - box.width) / 2;
  return box;
}

namespace detail {
/// For each of `out` output positions along an axis of `in` input pixels: the two source pixels
/// and the weight of the second, as PyTorch's bilinear interpolation with align_corners=False
/// (source = (i + 0.5) * in / out - 0.5, clamped at 0; the second pixel clamped to the last).
struct linear_taps {
  std::vector<std::size_t> first, second;
  std::vector<double> weight;  // of `second`
  linear_taps(std::size_t in, std::size_t out) : first(out), second(out), weight(out) {
    const double scale = static_cast<double>(in) / static_cast<double>(out);
    for (std::size_t i = 0; i < out; ++i) {
      double src = (static_cast<double>(i) + 0.5) * scale - 0.5;
      if (src < 0) src = 0;
      std::size_t i0 = static_cast<std::size_t>(src);
      if (i0 > in - 1) i0 = in - 1;
      first[i] = i0;
      second[i] = i0 + (i0 < in - 1 ? 1 : 0);
      weight[i] = src - static_cast<double>(i0);
    }
  }
};
}  // namespace detail

/// Writes image `index` of `set`, augmented, to `out` as (C, S, S): the crop (random when
/// a.crop, else the whole image) resized bilinearly to S x S (PyTorch's bilinear with
/// align_corners=False and no antialiasing; values stay in floating point, unrounded), flipped
/// left-right when a.flip and element draw * 16 + 11 of `rng` has word-pair uniform < 1/2, then
/// normalised to (x / 255 - mean[c]) / std[c] and converted to T.
/// With augmentation::none() and S equal to the set's H = W, `out` is exactly the normalised image.
/// The result depends only on (set, index, stats, a, rng, draw, S): run it on any thread.
/// Requires index < set.size(), S >= 1, stats.mean and stats.std of set.channels entries (std
/// non-zero), `out` of C * S * S elements; T constructible from double.
template <class T>
void augment_image(const image_set& set, std::size_t index, const channel_stats& stats,
                   const augmentation& a, counter_rng rng, std::uint64_t draw, T* out,
                   std::size_t S) {
  assert(index < set.size() && S >= 1);
  assert(stats.mean.size() == set.channels && stats.std.size() == set.channels);
  const std::size_t C = set.channels, H = set.height, W = set.width;
  crop_box box;
  box.height = H;
  box.width = W;
  if (a.crop) box = random_resized_crop_box(H, W, a, rng, draw);
  bool flip = false;
  if (a.flip) {
    const uint32x4 b = rng.bits(draw * augment_draws_per_image + 11);
    flip = detail::unit_double(b.v[0], b.v[1]) < 0.5;
  }
  const detail::linear_taps ys(box.height, S), xs(box.width, S);
  const std::uint8_t* image = set.image(index);
  for (std::size_t c = 0; c < C; ++c) {
    const std::uint8_t* plane = image + c * H * W;
    const double mean = stats.mean[c], sd = stats.std[c];
    T* dst = out + c * S * S;
    for (std::size_t y = 0; y < S; ++y) {
      const std::uint8_t* row0 = plane + (box.top + ys.first[y]) * W + box.left;
      const std::uint8_t* row1 = plane + (box.top + ys.second[y]) * W + box.left;
      const double wy = ys.weight[y];
      for (std::size_t x = 0; x < S; ++x) {
        const std::size_t sx = flip ? S - 1 - x : x;
        const std::size_t x0 = xs.first[sx], x1 = xs.second[sx];
        const double wx = xs.weight[sx];
        const double top = (1 - wx) * row0[x0] + wx * row0[x1];
        const double bottom = (1 - wx) * row1[x0] + wx * row1[x1];
        const double v = (1 - wy) * top + wy * bottom;
        dst[y * S + x] = static_cast<T>((v / 255.0 - mean) / sd);
      }
    }
  }
}

}  // namespace splitmask
