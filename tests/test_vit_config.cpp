// vit_config, decoder_config and patch_split: derived sizes, subset sizes and parameter counts,
// checked at compile time.
// (tests/compile_fail holds the configs that must not compile, with their messages.)
#include <ratio>

#include "splitmask/model/decoder_config.hpp"
#include "splitmask/model/vit_config.hpp"
#include "splitmask/train/split_sampler.hpp"

namespace {

using namespace splitmask;

// Fashion-MNIST preset: 28 x 28 x 1, patch 4.
using ti28 = presets::vit_ti4_28;
static_assert(ti28::grid == 7 && ti28::patches == 49 && ti28::patch_length == 16);
static_assert(ti28::head_width == 64 && ti28::mlp_width == 768);
static_assert(ti28::layer_norm_eps == 1e-6);
static_assert(patch_split<ti28::patches, std::ratio<1, 2>>::kept == 24 &&
                  patch_split<ti28::patches, std::ratio<1, 2>>::masked == 25,
              "N = 49 at ratio 1/2: N_A rounds down as MAE's kept count");
static_assert(patch_split<ti28::patches, std::ratio<3, 4>>::kept == 12);

// CIFAR preset: 32 x 32 x 3, patch 4.
using s32 = presets::vit_s4_32;
static_assert(s32::patches == 64 && s32::patch_length == 48 && s32::head_width == 64);
static_assert(patch_split<s32::patches, std::ratio<1, 2>>::kept == 32);

// The paper's backbones.
using b16 = presets::vit_b16_224;
static_assert(b16::patches == 196 && b16::patch_length == 768 && b16::head_width == 64);
static_assert(presets::vit_s16_224::head_width == 64 && presets::vit_ti16_224::head_width == 64);
// ViT-B/16 without its classifier: 85.8 M parameters in timm, of which the class token (768)
// and a learned pos_embed (197 x 768) are not in our sin-cos, token-free encoder.
static_assert(b16::encoder_parameters == 85'798'656 - 768 - 197 * 768);
// ViT-Ti/16 likewise: 5,717,416 in timm with its 1000-class head (193,000).
static_assert(presets::vit_ti16_224::encoder_parameters == 5'717'416 - 193'000 - 192 - 197 * 192);

// A block of width d, MLP m: 2 norms (4d), qkv (3d² + 3d), proj (d² + d), fc1 (md + m), fc2.
static_assert(ti28::block_parameters(192, 768) == 4 * 192 + 3 * 192 * 192 + 3 * 192 + 192 * 192 +
                                                      192 + 768 * 192 + 768 + 192 * 768 + 192);
static_assert(ti28::encoder_parameters ==
              192 * 16 + 192 + 12 * ti28::block_parameters(192, 768) + 2 * 192);

// A decoder's sizes: the encoder's width and heads unless given, its MLP ratio.
using same = decoder_sizes<ti28, decoder_config<>>;
static_assert(same::width == 192 && same::heads == 3 && same::depth == 2 && same::mlp_width == 768);
static_assert(same::parameters(512) == 192 * 192 + 192 + 192 + 2 * ti28::block_parameters(192, 768) +
                                           2 * 192 + 512 * 192 + 512);
using narrow = decoder_sizes<ti28, decoder_config<64, 1, 2>>;
static_assert(narrow::width == 64 && narrow::depth == 1 && narrow::heads == 2 &&
              narrow::head_width == 32 && narrow::mlp_width == 256);

// Variations: the with_* aliases change one size and keep the others.
using custom = vit_config<32, 3, 8, 96, 4, 4>::with_mlp_ratio<2>;
static_assert(custom::patches == 16 && custom::mlp_width == 192 && custom::width == 96);
using learned = custom::with_position<position_embedding::learned>;
static_assert(learned::encoder_parameters == custom::encoder_parameters + 16 * 96);
static_assert(is_vit_config_v<learned> && !is_vit_config_v<int>);

}  // namespace
