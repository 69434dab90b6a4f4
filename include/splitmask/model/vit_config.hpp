// vit_config: a Vision Transformer's sizes as a type, checked at compile time, with the constants
// derived from them (grid, patches, head width, subset sizes, parameter counts) and presets.
//
//   using my_vit = splitmask::vit_config<28, 1, 4, 192, 12, 3>;  // image, channels, patch,
//                                                                 // width, depth, heads
//   using my_vit_k1024 = my_vit::with_vocabulary<1024>::with_mask_ratio<std::ratio<3, 4>>;
//
// Legend: B batch, N patches per image, N_A / N_B subset sizes, D width, H heads, Dh head width,
// S image size, P patch size, C channels, K vocabulary size.
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

/// A ViT's sizes. The first six parameters are the encoder's; the others have the defaults of
/// the SplitMask recipe and are easiest to change through the `with_*` aliases below.
template <std::size_t ImageSize, std::size_t Channels, std::size_t PatchSize, std::size_t Width,
          std::size_t Depth, std::size_t Heads, std::size_t MlpRatio = 4,
          std::size_t DecoderWidth = Width, std::size_t DecoderDepth = 2,
          std::size_t DecoderHeads = Heads, std::size_t Vocabulary = 512,
          class MaskRatio = std::ratio<1, 2>, class LayerNormEps = std::ratio<1, 1000000>,
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
  static constexpr std::size_t decoder_width = DecoderWidth;
  static constexpr std::size_t decoder_depth = DecoderDepth;
  static constexpr std::size_t decoder_heads = DecoderHeads;
  static constexpr std::size_t vocabulary = Vocabulary;  // K
  using mask_ratio = MaskRatio;                          // N_B / N
  static constexpr position_embedding position = Position;

  static_assert(detail::is_ratio<MaskRatio>::value && detail::is_ratio<LayerNormEps>::value,
                "splitmask::vit_config: the mask ratio and the LayerNorm epsilon are std::ratio "
                "types, e.g. std::ratio<1, 2> and std::ratio<1, 1000000>");
  static_assert(Channels > 0 && PatchSize > 0 && Width > 0 && Depth > 0 && Heads > 0 &&
                    MlpRatio > 0 && DecoderWidth > 0 && DecoderDepth > 0 && DecoderHeads > 0,
                "splitmask::vit_config: channels, patch size, widths, depths, heads and the MLP "
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
  static_assert(DecoderWidth % DecoderHeads == 0,
                "splitmask::vit_config: the decoder width must be divisible by the decoder heads; "
                "choose them with ::with_decoder<width, depth, heads>");
  static_assert(Position == position_embedding::learned || Width % 4 == 0,
                "splitmask::vit_config: the 2-D sin-cos positional embedding needs a width "
                "divisible by 4 (sin and cos for each of two axes); change the width, e.g. 192");
  static_assert(DecoderWidth % 4 == 0,
                "splitmask::vit_config: the decoder's 2-D sin-cos positional embedding needs a "
                "decoder width divisible by 4; choose it with ::with_decoder<width, depth, heads>");
  static_assert(Vocabulary >= 2, "splitmask::vit_config: the vocabulary needs at least 2 tokens");
  static_assert(MaskRatio::num > 0 && MaskRatio::num < MaskRatio::den,
                "splitmask::vit_config: the mask ratio must lie strictly between 0 and 1, e.g. "
                "std::ratio<1, 2>");
  static_assert(LayerNormEps::num > 0, "splitmask::vit_config: the LayerNorm epsilon must be > 0");

  // ---- Derived sizes ------------------------------------------------------------------------
  static constexpr std::size_t grid = ImageSize / PatchSize;                     // patches per side
  static constexpr std::size_t patches = grid * grid;                            // N
  static constexpr std::size_t patch_length = Channels * PatchSize * PatchSize;  // C·P·P
  static constexpr std::size_t head_width = Width / Heads;                       // Dh
  static constexpr std::size_t mlp_width = MlpRatio * Width;                     // 4D
  static constexpr std::size_t decoder_head_width = DecoderWidth / DecoderHeads;
  static constexpr std::size_t decoder_mlp_width = MlpRatio * DecoderWidth;
  static constexpr double layer_norm_eps =
      static_cast<double>(LayerNormEps::num) / static_cast<double>(LayerNormEps::den);

  /// N_A: the patches of subset A, N·(1 - r) rounded down as MAE counts the kept patches
  /// (N = 49 at r = 1/2 gives N_A = 24, N_B = 25).
  static constexpr std::size_t subset_a =
      patches * (MaskRatio::den - MaskRatio::num) / MaskRatio::den;
  /// N_B = N - N_A: the patches of subset B (the ones branch A predicts).
  static constexpr std::size_t subset_b = patches - subset_a;
  static_assert(subset_a > 0 && subset_b > 0,
                "splitmask::vit_config: both subsets must hold at least one patch (0 < N_A < N); "
                "move the mask ratio away from 0 and 1 or use more patches");

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
  /// The SplitMask decoder: embedding to decoder width, mask token, blocks, LayerNorm, head.
  static constexpr std::size_t decoder_parameters =
      (DecoderWidth * Width + DecoderWidth) + DecoderWidth +
      DecoderDepth * block_parameters(DecoderWidth, decoder_mlp_width) + 2 * DecoderWidth +
      (Vocabulary * DecoderWidth + Vocabulary);
  static constexpr std::size_t parameters = encoder_parameters + decoder_parameters;

  // ---- Variations ---------------------------------------------------------------------------
  template <std::size_t W, std::size_t D = DecoderDepth, std::size_t H = DecoderHeads>
  using with_decoder = vit_config<ImageSize, Channels, PatchSize, Width, Depth, Heads, MlpRatio, W,
                                  D, H, Vocabulary, MaskRatio, LayerNormEps, Position>;
  template <std::size_t K>
  using with_vocabulary =
      vit_config<ImageSize, Channels, PatchSize, Width, Depth, Heads, MlpRatio, DecoderWidth,
                 DecoderDepth, DecoderHeads, K, MaskRatio, LayerNormEps, Position>;
  template <class R>
  using with_mask_ratio =
      vit_config<ImageSize, Channels, PatchSize, Width, Depth, Heads, MlpRatio, DecoderWidth,
                 DecoderDepth, DecoderHeads, Vocabulary, R, LayerNormEps, Position>;
  template <std::size_t R>
  using with_mlp_ratio =
      vit_config<ImageSize, Channels, PatchSize, Width, Depth, Heads, R, DecoderWidth, DecoderDepth,
                 DecoderHeads, Vocabulary, MaskRatio, LayerNormEps, Position>;
  template <class Eps>
  using with_layer_norm_eps =
      vit_config<ImageSize, Channels, PatchSize, Width, Depth, Heads, MlpRatio, DecoderWidth,
                 DecoderDepth, DecoderHeads, Vocabulary, MaskRatio, Eps, Position>;
  template <position_embedding P>
  using with_position =
      vit_config<ImageSize, Channels, PatchSize, Width, Depth, Heads, MlpRatio, DecoderWidth,
                 DecoderDepth, DecoderHeads, Vocabulary, MaskRatio, LayerNormEps, P>;
};

template <class T>
struct is_vit_config : std::false_type {};
template <std::size_t I, std::size_t C, std::size_t P, std::size_t W, std::size_t D, std::size_t H,
          std::size_t M, std::size_t DW, std::size_t DD, std::size_t DH, std::size_t K, class R,
          class E, position_embedding Pos>
struct is_vit_config<vit_config<I, C, P, W, D, H, M, DW, DD, DH, K, R, E, Pos>> : std::true_type {};
template <class T>
inline constexpr bool is_vit_config_v = is_vit_config<T>::value;

/// Presets. The paper's backbones at 224 px (decoder 2 blocks of the encoder's width, K 8192),
/// and small-image presets with patch 4 for 28 x 28 x 1 (Fashion-MNIST) and 32 x 32 x 3 (CIFAR).
namespace presets {
using vit_ti16_224 = vit_config<224, 3, 16, 192, 12, 3>::with_vocabulary<8192>;
using vit_s16_224 = vit_config<224, 3, 16, 384, 12, 6>::with_vocabulary<8192>;
using vit_b16_224 = vit_config<224, 3, 16, 768, 12, 12>::with_vocabulary<8192>;
using vit_ti4_28 = vit_config<28, 1, 4, 192, 12, 3>::with_vocabulary<512>;
using vit_s4_32 = vit_config<32, 3, 4, 384, 12, 6>::with_vocabulary<1024>;
}  // namespace presets

}  // namespace splitmask
