// label_fraction: which labelled images an evaluation may use. A fraction of the labels is drawn
// per class (class-balanced) by a seeded shuffle, so "1% of the labels, seed 0" names the same
// images on every machine; the same draw sets a held-out part aside for choosing
// hyper-parameters.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "splitmask/core/rng.hpp"
#include "splitmask/data/image_set.hpp"

namespace splitmask {

/// The number of classes the labels name: 1 + the largest label. Throws std::invalid_argument
/// for no labels or a negative one.
inline std::size_t count_classes(const std::vector<std::int32_t>& labels) {
  if (labels.empty()) throw std::invalid_argument("splitmask: the data has no labels");
  std::int32_t top = 0;
  for (const std::int32_t y : labels) {
    if (y < 0) throw std::invalid_argument("splitmask: negative label " + std::to_string(y));
    top = std::max(top, y);
  }
  return static_cast<std::size_t>(top) + 1;
}

namespace detail {
// The positions of each class's images, each list in a seeded Fisher-Yates order (class c from
// stream c of counter_rng(seed, stream_base + c)).
inline std::vector<std::vector<std::size_t>> shuffled_by_class(
    const std::vector<std::int32_t>& labels, std::uint64_t seed, std::uint64_t stream_base) {
  std::vector<std::vector<std::size_t>> by_class(count_classes(labels));
  for (std::size_t i = 0; i < labels.size(); ++i)
    by_class[static_cast<std::size_t>(labels[i])].push_back(i);
  for (std::size_t c = 0; c < by_class.size(); ++c) {
    auto& members = by_class[c];
    const counter_rng rng(seed, stream_base + c);
    for (std::size_t i = members.size(); i > 1; --i) {
      const uint32x4 b = rng.bits(i - 1);
      const std::uint64_t r = std::uint64_t{b.v[0]} << 32 | b.v[1];
      std::swap(members[i - 1], members[static_cast<std::size_t>(r % i)]);
    }
  }
  return by_class;
}
}  // namespace detail

/// A class-balanced, seeded sample of the labelled images, in increasing order: class c keeps
/// max(1, round(fraction · n_c)) of its n_c images (a class with no image keeps none). The same
/// seed draws nested samples: the images of a smaller fraction are among a larger one's. Throws
/// std::invalid_argument unless 0 < fraction <= 1.
inline std::vector<std::size_t> select_label_fraction(const std::vector<std::int32_t>& labels,
                                                      double fraction, std::uint64_t seed) {
  if (!(fraction > 0 && fraction <= 1))
    throw std::invalid_argument("splitmask: the label fraction must lie in (0, 1], got " +
                                std::to_string(fraction));
  std::vector<std::size_t> chosen;
  for (const auto& members : detail::shuffled_by_class(labels, seed, 5ull << 34)) {
    if (members.empty()) continue;
    const auto keep = std::max<std::size_t>(
        1, static_cast<std::size_t>(std::llround(fraction * double(members.size()))));
    chosen.insert(chosen.end(), members.begin(), members.begin() + std::min(keep, members.size()));
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

/// `indices` split, per class, into (kept, held out): each class with at least two images holds
/// out max(1, round(held_out · n_c)) of them but always keeps one. Seeded; both lists sorted.
inline std::pair<std::vector<std::size_t>, std::vector<std::size_t>> hold_out(
    const std::vector<std::int32_t>& labels, const std::vector<std::size_t>& indices,
    double held_out, std::uint64_t seed) {
  if (!(held_out > 0 && held_out < 1))
    throw std::invalid_argument("splitmask: the held-out fraction must lie in (0, 1)");
  std::vector<std::int32_t> sub(indices.size());
  for (std::size_t i = 0; i < indices.size(); ++i) sub[i] = labels.at(indices[i]);
  std::vector<std::size_t> kept, out;
  for (const auto& members : detail::shuffled_by_class(sub, seed, 6ull << 34)) {
    std::size_t n_out = 0;
    if (members.size() >= 2)
      n_out = std::min(members.size() - 1,
                       std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(
                                                    held_out * double(members.size())))));
    for (std::size_t j = 0; j < members.size(); ++j)
      (j < n_out ? out : kept).push_back(indices[members[j]]);
  }
  std::sort(kept.begin(), kept.end());
  std::sort(out.begin(), out.end());
  return {std::move(kept), std::move(out)};
}

/// The images `indices` of `set` (with their labels), as a set of their own.
inline image_set subset(const image_set& set, const std::vector<std::size_t>& indices) {
  image_set out;
  out.channels = set.channels;
  out.height = set.height;
  out.width = set.width;
  out.classes = set.classes;
  out.source = set.source + " (" + std::to_string(indices.size()) + " of " +
               std::to_string(set.size()) + " images)";
  out.pixels.reserve(indices.size() * set.image_bytes());
  for (const std::size_t i : indices) {
    if (i >= set.size())
      throw std::out_of_range("splitmask::subset: image " + std::to_string(i) + " of " +
                              std::to_string(set.size()));
    out.pixels.insert(out.pixels.end(), set.image(i), set.image(i) + set.image_bytes());
    if (!set.labels.empty()) out.labels.push_back(set.labels[i]);
  }
  return out;
}

}  // namespace splitmask
