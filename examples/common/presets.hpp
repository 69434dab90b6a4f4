// The closed list of ViT sizes the example programs are compiled for, by name. A run-time name
// maps to a compile-time config through with_preset(); each preset costs compile time, so the
// list is short: a nano size for smoke tests, small sizes for demos, and the paper's sizes.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include <splitmask/model/vit_config.hpp>

namespace splitmask::examples {

// Fashion-MNIST / MNIST (28 x 28 x 1)
using nano_28 = vit_config<28, 1, 7, 32, 2, 2>::with_decoder<32, 1, 2>::with_vocabulary<64>;
using mini_28 = vit_config<28, 1, 4, 96, 4, 3>::with_decoder<96, 2, 3>::with_vocabulary<256>;
// CIFAR-10/100 (32 x 32 x 3)
using mini_32 = vit_config<32, 3, 4, 96, 4, 3>::with_decoder<96, 2, 3>::with_vocabulary<256>;

/// A preset as a type, for generic lambdas: typename decltype(p)::config.
template <class Config>
struct preset {
  using config = Config;
};

struct preset_info {
  const char* name;
  std::size_t image_size, channels;
  const char* use;
};

inline const std::vector<preset_info>& preset_list() {
  static const std::vector<preset_info> list{
      {"nano-28", 28, 1, "smoke tests: seconds per epoch"},
      {"mini-28", 28, 1, "the Fashion-MNIST demo: minutes on 2 cores"},
      {"ti4-28", 28, 1, "ViT-Ti, patch 4, for 28 x 28 grey images"},
      {"mini-32", 32, 3, "a CIFAR demo"},
      {"s4-32", 32, 3, "ViT-S, patch 4, for CIFAR"},
      {"ti16-224", 224, 3, "ViT-Ti/16"},
      {"s16-224", 224, 3, "ViT-S/16"},
      {"b16-224", 224, 3, "ViT-B/16"},
  };
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

/// Calls f(preset<Config>{}) for the preset called `name`.
template <class F>
decltype(auto) with_preset(const std::string& name, F&& f) {
  find_preset(name);  // the error for an unknown name
  if (name == "nano-28") return f(preset<nano_28>{});
  if (name == "mini-28") return f(preset<mini_28>{});
  if (name == "ti4-28") return f(preset<presets::vit_ti4_28>{});
  if (name == "mini-32") return f(preset<mini_32>{});
  if (name == "s4-32") return f(preset<presets::vit_s4_32>{});
  if (name == "ti16-224") return f(preset<presets::vit_ti16_224>{});
  if (name == "s16-224") return f(preset<presets::vit_s16_224>{});
  if (name == "b16-224") return f(preset<presets::vit_b16_224>{});
  throw std::logic_error("preset '" + name + "' is listed but not dispatched");
}

}  // namespace splitmask::examples
