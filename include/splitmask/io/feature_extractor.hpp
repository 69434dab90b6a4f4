// feature_extractor: the pre-trained encoder of a checkpoint as a function from images to
// mean-pooled features, for users who want only the encoder (retrieval, k-NN, linear probes).
//
//   splitmask::feature_extractor<my_vit> features("runs/pretrain/checkpoint.safetensors");
//   auto f = features(images);  // (B, C, S, S) normalised as in training -> (B, D)
#pragma once

#include <cstddef>
#include <string>

#include "splitmask/io/checkpoint.hpp"
#include "splitmask/model/vit_encoder.hpp"

namespace splitmask {

template <class Config, class T = float>
class feature_extractor {
 public:
  static constexpr std::size_t D = Config::width;

  /// Loads the encoder of `checkpoint` (either objective); throws file_error when the file is
  /// not a checkpoint of this config.
  explicit feature_extractor(const std::string& checkpoint)
      : encoder_(0), info_(load_encoder(checkpoint, encoder_)) {}

  /// Features (B, D) of images (B, C, S, S): the mean over all N patches of the encoder's output.
  /// The view stays valid until the next call.
  template <class Images>
  tensor_view<T, extents<dynamic, D>> operator()(const Images& images) {
    return features_(encoder_, images);
  }

  const vit_encoder<Config, T>& encoder() const { return encoder_; }
  /// The checkpoint's metadata (step, objective, options, and the run's settings).
  const checkpoint_info& info() const { return info_; }

 private:
  vit_encoder<Config, T> encoder_;
  checkpoint_info info_;
  vit_features<Config, T> features_;
};

}  // namespace splitmask
