// decoder_config: the sizes of an objective's light decoder (SplitMask's, MAE's) as a type, and
// decoder_sizes, those sizes resolved against the encoder that feeds the decoder.
//
//   splitmask::decoder_config<>             // the encoder's width and heads, 2 blocks
//   splitmask::decoder_config<128, 4, 4>    // width 128, 4 blocks, 4 heads
//
// Legend: N patches, D encoder width, Dd decoder width.
#pragma once

#include <cstddef>
#include <type_traits>

#include "splitmask/model/vit_config.hpp"

namespace splitmask {

/// In a decoder_config: take this size from the encoder.
inline constexpr std::size_t as_encoder = 0;

template <std::size_t Width = as_encoder, std::size_t Depth = 2, std::size_t Heads = as_encoder>
struct decoder_config {
  static constexpr std::size_t width = Width, depth = Depth, heads = Heads;
  static_assert(Depth > 0, "splitmask::decoder_config: the decoder needs at least one block");
};

template <class T>
struct is_decoder_config : std::false_type {};
template <std::size_t W, std::size_t D, std::size_t H>
struct is_decoder_config<decoder_config<W, D, H>> : std::true_type {};

/// A decoder_config's sizes for the encoder Encoder (a vit_config). The decoder shares the
/// encoder's MLP ratio, LayerNorm epsilon and patch grid.
template <class Encoder, class Decoder>
struct decoder_sizes {
  static_assert(is_vit_config_v<Encoder>, "splitmask: Encoder must be a splitmask::vit_config");
  static_assert(is_decoder_config<Decoder>::value,
                "splitmask: Decoder must be a splitmask::decoder_config");
  static constexpr std::size_t encoder_width = Encoder::width;                            // D
  static constexpr std::size_t width = Decoder::width ? Decoder::width : Encoder::width;  // Dd
  static constexpr std::size_t depth = Decoder::depth;
  static constexpr std::size_t heads = Decoder::heads ? Decoder::heads : Encoder::heads;
  static constexpr std::size_t mlp_width = Encoder::mlp_ratio * width;
  static constexpr std::size_t head_width = width / heads;
  static constexpr std::size_t patches = Encoder::patches, grid = Encoder::grid;  // N
  static constexpr double layer_norm_eps = Encoder::layer_norm_eps;
  static_assert(width % heads == 0,
                "splitmask::decoder_config: the decoder width must be divisible by the decoder "
                "heads; choose them with decoder_config<width, depth, heads>");
  static_assert(
      width % 4 == 0,
      "splitmask::decoder_config: the decoder's 2-D sin-cos positional embedding needs "
      "a decoder width divisible by 4; choose it with decoder_config<width, depth, heads>");

  /// The decoder with a head of `outputs` values per patch: embedding to its width, mask token,
  /// blocks, LayerNorm, head.
  static constexpr std::size_t parameters(std::size_t outputs) {
    return (width * Encoder::width + width) + width +
           depth * Encoder::block_parameters(width, mlp_width) + 2 * width +
           (outputs * width + outputs);
  }
};

}  // namespace splitmask
