// vit_config: a Vision Transformer encoder's sizes as a type, checked at compile time, with the
// constants derived from them (grid, patches, head width, parameter count) and presets; and
// decoder_config, the sizes of an objective's decoder, resolved against an encoder.
//
//   using my_vit = splitmask::vit_config<28, 1, 4, 192, 12, 3>;  // image, channels, patch,
//                                                                 // width, depth, heads
//   using my_decoder = splitmask::decoder_config<128, 2, 4>;      // width, depth, heads
//
// Legend: N patches per image, D width, H heads, Dh head width, S image size, P patch size,
// C channels.
#pragma once

#include <cstddef>
#include <ratio>
#include <type_traits>

namespace splitmask {

/// Where the encoder's positional embedding comes from.
enum class position_embedding {
  sincos,   // fixed 2-D sin-cos (MAE's construction): a constant, not a parameter
  learned,  // a (N, D) parameter, initialised from truncated normal 0.02
};

namespace detail {
template <class R>
struct is_ratio : std::false_type {};
template <std::intmax_t Num, std::intmax_t Den>
struct is_ratio<std::ratio<Num, Den>> : std::true_type {};
}  // namespace detail

/// A ViT encoder's sizes: the architecture only. What a pre-training objective adds (vocabulary,
/// mask ratio, decoder) is the objective's own config (train/objectives/), and decoder sizes are
/// a decoder_config resolved against the encoder.
template <std::size_t ImageSize, std::size_t Channels, std::size_t PatchSize, std::size_t Width,
          std::size_t Depth, std::size_t Heads, std::size_t MlpRatio = 4,
          class LayerNormEps = std::ratio<1, 1000000>,
          position_embedding Position = position_embedding::sincos>
struct vit_config {
  // ---- The sizes as given -------------------------------------------------------------------
  static constexpr std::size_t image_size = ImageSize;  // S: height = width
  static constexpr std::size_t channels = Channels;     // C
  static constexpr std::size_t patch_size = PatchSize;  // P
  static constexpr std::size_t width = Width;           // D
  static constexpr std::size_t depth = Depth;           // encoder blocks
  static constexpr std::size_t heads = Heads;           // H
  static constexpr std::size_t mlp_ratio = MlpRatio;
  static constexpr position_embedding position = Position;

  static_assert(detail::is_ratio<LayerNormEps>::value,
                "splitmask::vit_config: the LayerNorm epsilon is a std::ratio type, e.g. "
                "std::ratio<1, 1000000>");
  static_assert(Channels > 0 && PatchSize > 0 && Width > 0 && Depth > 0 && Heads > 0 &&
                    MlpRatio > 0,
                "splitmask::vit_config: channels, patch size, width, depth, heads and the MLP "
                "ratio must all be positive");
  static_assert(ImageSize % PatchSize == 0,
                "splitmask::vit_config: the image size must be a multiple of the patch size; "
                "change one of them (e.g. 28 with patch 4 or 7, 32 with patch 4 or 8)");
  static_assert(ImageSize >= 2 * PatchSize,
                "splitmask::vit_config: the image must hold at least a 2 x 2 grid of patches; "
                "use a smaller patch size");
  static_assert(Width % Heads == 0,
                "splitmask::vit_config: the width must be divisible by the number of heads; "
                "change the width or the heads (e.g. 192 with 3 heads, 384 with 6)");
  static_assert(Position == position_embedding::learned || Width % 4 == 0,
                "splitmask::vit_config: the 2-D sin-cos positional embedding needs a width "
                "divisible by 4 (sin and cos for each of two axes); change the width, e.g. 192");
  static_assert(LayerNormEps::num > 0, "splitmask::vit_config: the LayerNorm epsilon must be > 0");

  // ---- Derived sizes ------------------------------------------------------------------------
  static constexpr std::size_t grid = ImageSize / PatchSize;                     // patches per side
  static constexpr std::size_t patches = grid * grid;                            // N
  static constexpr std::size_t patch_length = Channels * PatchSize * PatchSize;  // C·P·P
  static constexpr std::size_t head_width = Width / Heads;                       // Dh
  static constexpr std::size_t mlp_width = MlpRatio * Width;                     // 4D
  static constexpr double layer_norm_eps =
      static_cast<double>(LayerNormEps::num) / static_cast<double>(LayerNormEps::den);

  // ---- Parameter counts ---------------------------------------------------------------------
  /// One pre-norm block of width d with an MLP of width m: two LayerNorms, QKV, projection, MLP.
  static constexpr std::size_t block_parameters(std::size_t d, std::size_t m) {
    return 2 * (2 * d) + (3 * d * d + 3 * d) + (d * d + d) + (m * d + m) + (d * m + d);
  }
  /// The encoder: patch embedding, learned positions if any, blocks, final LayerNorm.
  static constexpr std::size_t encoder_parameters =
      (Width * patch_length + Width) +
      (Position == position_embedding::learned ? patches * Width : 0) +
      Depth * block_parameters(Width, mlp_width) + 2 * Width;

  // ---- Variations ---------------------------------------------------------------------------
  template <std::size_t R>
  using with_mlp_ratio =
      vit_config<ImageSize, Channels, PatchSize, Width, Depth, Heads, R, LayerNormEps, Position>;
  template <class Eps>
  using with_layer_norm_eps =
      vit_config<ImageSize, Channels, PatchSize, Width, Depth, Heads, MlpRatio, Eps, Position>;
  template <position_embedding P>
  using with_position =
      vit_config<ImageSize, Channels, PatchSize, Width, Depth, Heads, MlpRatio, LayerNormEps, P>;
};

template <class T>
struct is_vit_config : std::false_type {};
template <std::size_t I, std::size_t C, std::size_t P, std::size_t W, std::size_t D, std::size_t H,
          std::size_t M, class E, position_embedding Pos>
struct is_vit_config<vit_config<I, C, P, W, D, H, M, E, Pos>> : std::true_type {};
template <class T>
inline constexpr bool is_vit_config_v = is_vit_config<T>::value;

/// Encoder presets. The paper's backbones at 224 px, and small-image presets with patch 4 for
/// 28 x 28 x 1 (Fashion-MNIST) and 32 x 32 x 3 (CIFAR).
namespace presets {
using vit_ti16_224 = vit_config<224, 3, 16, 192, 12, 3>;
using vit_s16_224 = vit_config<224, 3, 16, 384, 12, 6>;
using vit_b16_224 = vit_config<224, 3, 16, 768, 12, 12>;
using vit_ti4_28 = vit_config<28, 1, 4, 192, 12, 3>;
using vit_s4_32 = vit_config<32, 3, 4, 384, 12, 6>;
}  // namespace presets

}  // namespace splitmask
