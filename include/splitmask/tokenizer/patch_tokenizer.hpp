// patch_tokenizer: the targets of SplitMask. Each patch's token id is the vocabulary patch most
// similar to it by cosine similarity in pixel space, after each channel is standardised with the
// dataset's mean and std (so that blank background patches are not zero vectors). The vocabulary
// is K patches drawn at random from training images; a spherical k-means refinement is optional.
//
//   vocabulary (K, L) unit rows   patches (B, N, L), L = C·P·P   ids (B, N) int32
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "splitmask/backend/cpu/gemm.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/core/rng.hpp"
#include "splitmask/model/vit_config.hpp"
#include "splitmask/ops/common.hpp"
#include "splitmask/ops/matmul.hpp"
#include "splitmask/ops/patchify.hpp"
#include "splitmask/tensor/copy.hpp"
#include "splitmask/tensor/tensor.hpp"

namespace splitmask {

/// How patch_tokenizer::sample draws its words. `any`: every usable patch, so a common patch
/// can fill several words (Fashion-MNIST's black background takes about a third of them, and
/// k-means never separates copies). `distinct`: a patch whose direction repeats an earlier
/// word's (cosine similarity above 1 - 1e-6) is drawn again.
enum class word_draw { any, distinct };

template <class Config, std::size_t Vocabulary>
class patch_tokenizer {
  static_assert(is_vit_config_v<Config>, "splitmask: Config must be a splitmask::vit_config");

 public:
  static_assert(Vocabulary >= 2, "splitmask::patch_tokenizer: the vocabulary needs 2 tokens or more");
  static constexpr std::size_t K = Vocabulary, L = Config::patch_length;
  static constexpr std::size_t N = Config::patches, C = Config::channels;
  static constexpr std::size_t P = Config::patch_size, S = Config::image_size;
  using vocabulary_type = tensor<float, extents<K, L>>;  // (K, L), rows of unit length

  /// A tokenizer with the given per-channel statistics and an all-zero vocabulary (load one, or
  /// use sample()).
  patch_tokenizer(const std::array<float, C>& mean, const std::array<float, C>& std_dev)
      : mean_(mean), std_(std_dev) {
    for (std::size_t c = 0; c < C; ++c)
      if (!(std_dev[c] > 0) || !std::isfinite(mean[c]))
        throw std::invalid_argument("splitmask::patch_tokenizer: channel " + std::to_string(c) +
                                    " has std " + std::to_string(std_dev[c]) + " and mean " +
                                    std::to_string(mean[c]) +
                                    "; the std must be positive and both finite");
  }

  /// A copy of the statistics and the vocabulary (not of the workspace).
  patch_tokenizer(const patch_tokenizer& other) : mean_(other.mean_), std_(other.std_) {
    copy(vocabulary_, other.vocabulary_);
  }
  patch_tokenizer(patch_tokenizer&&) noexcept = default;
  patch_tokenizer& operator=(const patch_tokenizer&) = delete;
  patch_tokenizer& operator=(patch_tokenizer&&) noexcept = default;

  /// K patches drawn at random (seeded) from `images` (M, C, S, S): each draw picks an image and
  /// a patch position; standardised patches of (nearly) zero norm are drawn again, since their
  /// direction is undefined, and so are repeated directions when `draws` is distinct. Throws
  /// when the images hold too few usable patches. The same seed and images give the same words
  /// for both rules until `distinct` first refuses a draw.
  template <class Images>
  static patch_tokenizer sample(const Images& images, const std::array<float, C>& mean,
                                const std::array<float, C>& std_dev, std::uint64_t seed,
                                word_draw draws = word_draw::any) {
    patch_tokenizer t(mean, std_dev);
    const auto vi = images.view();
    const std::size_t count = vi.batch();
    if (count == 0) throw shape_error("splitmask::patch_tokenizer::sample: no images");
    const counter_rng rng(seed, std::uint64_t{4} << 34);  // apart from init and splits
    tensor<float, extents<1, N, L>> patches;
    std::size_t draw = 0;
    for (std::size_t k = 0; k < K; ++k) {
      for (;; ++draw) {
        if (draw >= 64 * K + 1024)
          throw shape_error(
              "splitmask::patch_tokenizer::sample: the images hold too few patches that differ "
              "from the channel means" +
              std::string(draws == word_draw::distinct ? " and from each other" : "") +
              " to fill a vocabulary of " + std::to_string(K));
        const auto bits = rng.bits(draw);
        const std::size_t image = bits.v[0] % count, position = bits.v[1] % N;
        patchify<P>(patches, vi.slice(image, 1));
        float* row = t.vocabulary_.data() + k * L;
        t.standardise(patches.data() + position * L, row);
        if (normalise(row) && (draws == word_draw::any || !t.repeats_a_word(k))) break;
      }
      ++draw;
    }
    return t;
  }

  /// ids(b, t) = argmax over k of <standardised patch (b, t), vocabulary row k>; ties and
  /// all-zero patches go to the lowest id. Reuses its workspace while the batch stays the same;
  /// that workspace makes one tokenizer unfit for calls from several threads at once.
  template <class Ids, class Patches>
  void assign(Ids&& ids, const Patches& patches) const {
    const auto vp = patches.view();
    const auto vi = ids.view();
    detail::require_host<decltype(vp), decltype(vi)>();
    static_assert(std::is_same_v<typename decltype(vp)::extents_type, extents<dynamic, N, L>> &&
                      std::is_same_v<typename decltype(vi)::extents_type, extents<dynamic, N>> &&
                      std::is_same_v<typename decltype(vi)::value_type, std::int32_t>,
                  "splitmask::patch_tokenizer::assign: patches (B, N, C·P·P) and int32 ids (B, N)");
    if (vi.batch() != vp.batch())
      throw shape_error("splitmask::patch_tokenizer::assign: ids and patches disagree on B");
    const std::size_t rows = vp.batch() * N;
    if (standardised_.batch() != rows) {
      standardised_ = tensor<float, extents<dynamic, L>>(rows);
      scores_ = tensor<float, extents<dynamic, K>>(rows);
    }
    detail::parallel_for(rows, L, [&](std::size_t r) {
      standardise(vp.data() + r * L, standardised_.data() + r * L);
    });
    // Exact fp32 whatever the precision of products: bf16 rounding would move ids.
    backend::cpu::with_fp32_products([&] { matmul(scores_, standardised_, transposed(vocabulary_)); });
    detail::parallel_for(rows, K, [&](std::size_t r) {
      const float* s = scores_.data() + r * K;
      std::size_t best = 0;
      for (std::size_t k = 1; k < K; ++k)
        if (s[k] > s[best]) best = k;  // NaN never wins: comparisons with it are false
      vi.data()[r] = static_cast<std::int32_t>(best);
    });
  }

  /// Spherical k-means on `patches` (M, N, L) raw patches: each iteration assigns every
  /// standardised patch to its nearest vocabulary row and moves each row to the normalised sum
  /// of its members; rows with no members keep their patch. Returns the mean cosine similarity
  /// of the patches of non-zero norm to their rows in the last assignment, which is made before
  /// the last update (so refine(p, 1) measures the vocabulary it was given; 0 iterations give 0).
  template <class Patches>
  double refine(const Patches& patches, std::size_t iterations) {
    const auto vp = patches.view();
    const std::size_t rows = vp.batch() * N;
    tensor<std::int32_t, extents<dynamic, N>> ids(vp.batch());
    std::vector<double> sums(K * L);
    double mean_similarity = 0;
    for (std::size_t it = 0; it < iterations; ++it) {
      assign(ids, vp);
      std::fill(sums.begin(), sums.end(), 0.0);
      double similarity = 0;
      std::size_t counted = 0;
      for (std::size_t r = 0; r < rows; ++r) {
        const float* x = standardised_.data() + r * L;
        double norm = 0;
        for (std::size_t c = 0; c < L; ++c) norm += double(x[c]) * x[c];
        if (norm == 0) continue;
        norm = std::sqrt(norm);
        const std::size_t k = static_cast<std::size_t>(ids.data()[r]);
        for (std::size_t c = 0; c < L; ++c) sums[k * L + c] += x[c] / norm;
        similarity += scores_.data()[r * K + k] / norm;
        ++counted;
      }
      mean_similarity = counted ? similarity / double(counted) : 0.0;
      for (std::size_t k = 0; k < K; ++k) {
        std::vector<float> row(sums.begin() + k * L, sums.begin() + (k + 1) * L);
        if (normalise(row.data())) std::copy(row.begin(), row.end(), vocabulary_.data() + k * L);
      }
    }
    return mean_similarity;
  }

  const vocabulary_type& vocabulary() const { return vocabulary_; }
  /// Replaces the vocabulary; every row is normalised to unit length. A row of zero norm is
  /// refused, and the vocabulary is then left as it was.
  template <class V>
  void set_vocabulary(const V& vocabulary) {
    vocabulary_type rows;
    copy(rows, vocabulary);
    for (std::size_t k = 0; k < K; ++k)
      if (!normalise(rows.data() + k * L))
        throw std::invalid_argument("splitmask::patch_tokenizer: vocabulary row " +
                                    std::to_string(k) + " has zero norm");
    vocabulary_ = std::move(rows);
  }
  /// Replaces the vocabulary with rows saved from vocabulary(), bit for bit (set_vocabulary
  /// would normalise them again, which can move an element by an ulp). Each row must have unit
  /// length within 1e-4; otherwise the vocabulary is left as it was.
  template <class V>
  void restore_vocabulary(const V& vocabulary) {
    vocabulary_type rows;
    copy(rows, vocabulary);
    for (std::size_t k = 0; k < K; ++k) {
      double norm = 0;
      for (std::size_t c = 0; c < L; ++c) norm += double(rows.data()[k * L + c]) * rows.data()[k * L + c];
      if (!(std::abs(std::sqrt(norm) - 1) <= 1e-4))
        throw std::invalid_argument("splitmask::patch_tokenizer: vocabulary row " +
                                    std::to_string(k) + " has norm " +
                                    std::to_string(std::sqrt(norm)) + "; expected unit rows");
    }
    vocabulary_ = std::move(rows);
  }
  const std::array<float, C>& mean() const { return mean_; }
  const std::array<float, C>& std_dev() const { return std_; }

 private:
  // Whether vocabulary row k points where one of rows 0..k-1 does: unit rows, so their product
  // is the cosine similarity, and above 1 - 1e-6 (an angle under 0.08 degrees) is a repeat. That
  // is far above fp32 rounding, and below what one grey level in one pixel of a black 4 x 4
  // patch changes (about 5e-6 with Fashion-MNIST's statistics).
  bool repeats_a_word(std::size_t k) const {
    const float* row = vocabulary_.data() + k * L;
    for (std::size_t j = 0; j < k; ++j) {
      const float* other = vocabulary_.data() + j * L;
      double product = 0;
      for (std::size_t c = 0; c < L; ++c) product += double(row[c]) * other[c];
      if (product > 1 - 1e-6) return true;
    }
    return false;
  }

  // out = the patch with each element standardised by its channel (c = k / (P·P)).
  void standardise(const float* patch, float* out) const {
    for (std::size_t c = 0; c < C; ++c) {
      const float m = mean_[c], inv = 1.0f / std_[c];
      for (std::size_t k = c * P * P; k < (c + 1) * P * P; ++k) out[k] = (patch[k] - m) * inv;
    }
  }
  // Scales a row of L to unit length; false (row unchanged) when its norm is too small to have
  // a direction.
  static bool normalise(float* row) {
    double norm = 0;
    for (std::size_t c = 0; c < L; ++c) norm += double(row[c]) * row[c];
    norm = std::sqrt(norm);
    if (!(norm > 1e-6)) return false;
    for (std::size_t c = 0; c < L; ++c) row[c] = static_cast<float>(row[c] / norm);
    return true;
  }

  std::array<float, C> mean_, std_;
  vocabulary_type vocabulary_;
  mutable tensor<float, extents<dynamic, L>> standardised_;  // (B·N, L) assign's workspace
  mutable tensor<float, extents<dynamic, K>> scores_;        // (B·N, K)
};

}  // namespace splitmask
