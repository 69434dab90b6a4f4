// A small supervised pipeline around the encoder, shared by the gradient check and the golden
// test: images -> patches -> embedding + positions -> a subset of n tokens per image ->
// encoder -> mean over the subset -> linear head -> cross-entropy.
#pragma once

#include <cstddef>
#include <cstdint>

#include "splitmask/model/vit_encoder.hpp"
#include "splitmask/ops/cross_entropy.hpp"
#include "splitmask/ops/linear.hpp"
#include "splitmask/ops/patchify.hpp"
#include "splitmask/ops/tokens.hpp"
#include "splitmask/tensor/tensor.hpp"

namespace splitmask::testing {

template <class Config, class T, std::size_t n, std::size_t Classes>
struct classifier_pipeline {
  using encoder_type = vit_encoder<Config, T>;
  static constexpr std::size_t N = Config::patches, D = Config::width;

  encoder_type encoder;
  tensor<T, extents<Classes, D>> head_weight, d_head_weight;  // (K, D)
  tensor<T, extents<Classes>> head_bias, d_head_bias;         // (K)
  tensor<T, typename encoder_type::image_extents> images;     // (B, C, S, S)
  tensor<std::int32_t, extents<dynamic, n>> index;            // (B, n)
  tensor<std::int32_t, extents<dynamic>> labels;              // (B)

  tensor<T, typename encoder_type::patch_extents> patches;           // (B, N, C·P·P)
  tensor<T, typename encoder_type::token_extents> tokens, d_tokens;  // (B, N, D)
  tensor<T, extents<dynamic, n, D>> subset, d_subset, d_out;         // (B, n, D)
  tensor<T, extents<dynamic, D>> pooled, d_pooled;                   // (B, D)
  tensor<T, extents<dynamic, Classes>> logits;                       // (B, K)
  tensor<T, extents<dynamic>> lse;                                   // (B)
  typename encoder_type::template activations<n> act;

  explicit classifier_pipeline(std::size_t batch, std::uint64_t seed = 0)
      : encoder(seed),
        images(batch),
        index(batch),
        labels(batch),
        patches(batch),
        tokens(batch),
        d_tokens(batch),
        subset(batch),
        d_subset(batch),
        d_out(batch),
        pooled(batch),
        d_pooled(batch),
        logits(batch),
        lse(batch),
        act(batch) {}

  /// The mean cross-entropy of the head on the encoded subsets.
  double forward() {
    patchify<Config::patch_size>(patches, images);
    encoder.embed(tokens, patches);
    gather_tokens(subset, tokens, index);
    mean_tokens_forward(pooled, encoder.forward(act, subset));
    linear_forward(logits, pooled, head_weight, head_bias);
    return cross_entropy_forward(lse, logits, labels);
  }

  /// Every parameter gradient of forward()'s loss (zeroed first); forward() must run before.
  void backward() {
    encoder.zero_grads();
    d_head_weight = T(0);
    d_head_bias = T(0);
    cross_entropy_backward(logits, logits, lse, labels);  // logits now hold d_logits
    linear_backward(d_pooled, d_head_weight, d_head_bias, logits, pooled, head_weight);
    mean_tokens_backward(d_out, d_pooled);
    encoder.backward(act, d_subset, d_out);
    d_tokens = T(0);
    scatter_tokens(d_tokens, d_subset, index);
    encoder.embed_backward(d_tokens, patches);
  }
};

}  // namespace splitmask::testing
