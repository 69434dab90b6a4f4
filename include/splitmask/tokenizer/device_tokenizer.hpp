// The tokenizer's assignment on a device: a copy there of a patch_tokenizer's vocabulary and
// statistics, and the workspace of its product. Token ids come from the same rule as on the host
// (standardise, product with the unit vocabulary rows, row argmax with ties to the lowest id);
// the product is exact fp32 whatever the model's products use, but its rounding may differ from
// the host's, so a patch almost equally near two rows can get the other id.
//
//   patches (B, N, L) float   ids (B, N) int32, on Device
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "splitmask/core/backend.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/ops/matmul.hpp"
#include "splitmask/tensor/copy.hpp"
#include "splitmask/tensor/tensor.hpp"
#include "splitmask/tokenizer/patch_tokenizer.hpp"

namespace splitmask {

template <class Config, std::size_t Vocabulary, class Device>
class device_tokenizer {
 public:
  static constexpr std::size_t K = Vocabulary, L = Config::patch_length;
  static constexpr std::size_t N = Config::patches, C = Config::channels;
  static constexpr std::size_t P = Config::patch_size;

  explicit device_tokenizer(const patch_tokenizer<Config, Vocabulary>& tokenizer)
      : mean_(tokenizer.mean()), std_(tokenizer.std_dev()) {
    copy(vocabulary_, tokenizer.vocabulary());
  }

  /// ids(b, t) = the id of patch (b, t), as patch_tokenizer::assign gives it.
  template <class Ids, class Patches>
  void assign(Ids&& ids, const Patches& patches) {
    const auto vp = patches.view();
    const auto vi = ids.view();
    static_assert(std::is_same_v<typename decltype(vp)::extents_type, extents<dynamic, N, L>> &&
                      std::is_same_v<typename decltype(vi)::extents_type, extents<dynamic, N>> &&
                      std::is_same_v<typename decltype(vp)::value_type, float> &&
                      std::is_same_v<typename decltype(vi)::value_type, std::int32_t>,
                  "splitmask::device_tokenizer::assign: float patches (B, N, C·P·P) and int32 "
                  "ids (B, N)");
    static_assert(std::is_same_v<typename decltype(vp)::device_type, Device> &&
                      std::is_same_v<typename decltype(vi)::device_type, Device>,
                  "splitmask::device_tokenizer::assign: patches and ids live on its device");
    if (vi.batch() != vp.batch())
      throw shape_error("splitmask::device_tokenizer::assign: ids and patches disagree on B");
    const std::size_t rows = vp.batch() * N;
    if (standardised_.batch() != rows) {
      standardised_ = tensor<float, extents<dynamic, L>, Device>(rows);
      scores_ = tensor<float, extents<dynamic, K>, Device>(rows);
    }
    detail::device_ops<Device>::template standardise_patches<C, P>(standardised_.data(), vp.data(),
                                                                   rows, mean_, std_);
    detail::device_ops<Device>::with_exact_products(
        [&] { matmul(scores_, standardised_, transposed(vocabulary_)); });
    detail::device_ops<Device>::template row_argmax<K>(vi.data(), scores_.data(), rows);
  }

 private:
  std::array<float, C> mean_, std_;
  tensor<float, extents<K, L>, Device> vocabulary_;
  tensor<float, extents<dynamic, L>, Device> standardised_;  // (B·N, L)
  tensor<float, extents<dynamic, K>, Device> scores_;        // (B·N, K)
};

/// What a host trainer holds in a device_tokenizer's place: nothing (it uses the tokenizer).
struct no_device_tokenizer {
  template <class Tokenizer>
  explicit no_device_tokenizer(const Tokenizer&) {}
};

}  // namespace splitmask
