// The closed list of ViT sizes the example programs are compiled for. Each preset is declared
// once, below: its name, the encoder, and what its objectives add (vocabulary, decoder). A
// run-time name maps to the compile-time preset through with_preset(); each preset costs compile
// time, so the list is short: a nano size for smoke tests, small sizes for demos, the paper's.
#pragma once

#include <cstddef>
#include <splitmask/model/decoder_config.hpp>
#include <splitmask/model/vit_config.hpp>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace splitmask::examples {

/// A preset: an encoder, the tokenizer's vocabulary and the decoder of the objectives that have
/// them, and whether the pretrainer is compiled for it on the GPU.
template <class Encoder, std::size_t Vocabulary, class Decoder = decoder_config<>,
          bool OnCuda = false>
struct preset_sizes {
  using encoder = Encoder;
  static constexpr std::size_t vocabulary = Vocabulary;
  using decoder = Decoder;
  static constexpr bool on_cuda = OnCuda;
};

// Fashion-MNIST / MNIST (28 x 28 x 1)
struct nano_28 : preset_sizes<vit_config<28, 1, 7, 32, 2, 2>, 64, decoder_config<32, 1, 2>, true> {
  static constexpr const char* name = "nano-28";
  static constexpr const char* use = "smoke tests: seconds per epoch";
};
struct mini_28 : preset_sizes<vit_config<28, 1, 4, 96, 4, 3>, 256, decoder_config<96, 2, 3>, true> {
  static constexpr const char* name = "mini-28";
  static constexpr const char* use = "the Fashion-MNIST demo: minutes on 2 cores";
};
// mini-28 with other vocabularies, for the vocabulary-size experiment (docs/results.md)
struct mini_28_k64 : preset_sizes<mini_28::encoder, 64, mini_28::decoder> {
  static constexpr const char* name = "mini-28-k64";
  static constexpr const char* use = "mini-28 with 64 token ids";
};
struct mini_28_k1024 : preset_sizes<mini_28::encoder, 1024, mini_28::decoder> {
  static constexpr const char* name = "mini-28-k1024";
  static constexpr const char* use = "mini-28 with 1024 token ids";
};
struct ti4_28 : preset_sizes<presets::vit_ti4_28, 512> {
  static constexpr const char* name = "ti4-28";
  static constexpr const char* use = "ViT-Ti, patch 4, for 28 x 28 grey images";
};
// CIFAR-10/100 (32 x 32 x 3)
struct mini_32 : preset_sizes<vit_config<32, 3, 4, 96, 4, 3>, 256, decoder_config<96, 2, 3>, true> {
  static constexpr const char* name = "mini-32";
  static constexpr const char* use = "a CIFAR demo";
};
struct s4_32 : preset_sizes<presets::vit_s4_32, 1024> {
  static constexpr const char* name = "s4-32";
  static constexpr const char* use = "ViT-S, patch 4, for CIFAR";
};
// The paper's backbones (224 x 224 x 3)
struct ti16_224 : preset_sizes<presets::vit_ti16_224, 8192> {
  static constexpr const char* name = "ti16-224";
  static constexpr const char* use = "ViT-Ti/16";
};
struct s16_224 : preset_sizes<presets::vit_s16_224, 8192> {
  static constexpr const char* name = "s16-224";
  static constexpr const char* use = "ViT-S/16";
};
struct b16_224 : preset_sizes<presets::vit_b16_224, 8192, decoder_config<>, true> {
  static constexpr const char* name = "b16-224";
  static constexpr const char* use = "ViT-B/16";
};

using all_presets =
    std::tuple<nano_28, mini_28, mini_28_k64, mini_28_k1024, ti4_28, mini_32, s4_32, ti16_224, s16_224, b16_224>;

/// A preset as a value, for generic lambdas: typename decltype(p)::type, ::config (its encoder).
template <class Preset>
struct preset {
  using type = Preset;
  using config = typename Preset::encoder;
};

struct preset_info {
  const char* name;
  std::size_t image_size, channels;
  const char* use;
};

inline const std::vector<preset_info>& preset_list() {
  static const std::vector<preset_info> list = [] {
    std::vector<preset_info> l;
    std::apply(
        [&](auto... p) {
          (l.push_back({decltype(p)::name, decltype(p)::encoder::image_size,
                        decltype(p)::encoder::channels, decltype(p)::use}),
           ...);
        },
        all_presets{});
    return l;
  }();
  return list;
}

/// "nano-28, mini-28, ..." (for messages).
inline std::string preset_names() {
  std::string names;
  for (const auto& p : preset_list()) names += (names.empty() ? "" : ", ") + std::string(p.name);
  return names;
}

/// The presets whose images are size x size x channels, or "none" (for messages).
inline std::string presets_fitting(std::size_t size, std::size_t channels) {
  std::string names;
  for (const auto& p : preset_list())
    if (p.image_size == size && p.channels == channels)
      names += (names.empty() ? "" : ", ") + std::string(p.name);
  return names.empty() ? "none" : names;
}

inline const preset_info& find_preset(const std::string& name) {
  for (const auto& p : preset_list())
    if (name == p.name) return p;
  throw std::invalid_argument("unknown preset '" + name + "'; the presets are " + preset_names());
}

/// Calls f(preset<P>{}) for the preset P called `name` among Presets (a std::tuple; all presets
/// by default) and returns its result; throws std::invalid_argument for a name not among them.
template <class Presets = all_presets, class F>
auto with_preset(const std::string& name, F&& f) {
  find_preset(name);  // the error for an unknown name
  using result = decltype(f(preset<std::tuple_element_t<0, Presets>>{}));
  result r{};
  bool found = false;
  std::apply(
      [&](auto... p) {
        ((!found && name == decltype(p)::name ? (r = f(preset<decltype(p)>{}), found = true)
                                              : false),
         ...);
      },
      Presets{});
  if (!found) throw std::invalid_argument("preset " + name + " is not compiled here");
  return r;
}

}  // namespace splitmask::examples
