// The pretrainer's run for each preset is compiled once, in its own translation unit (three
// files by image size, so that a parallel build compiles them at once): main.cpp only calls.
#pragma once

#include "../common/presets.hpp"
#include "run.hpp"

#define SPLITMASK_PRETRAIN_INSTANCE(prefix, config)                                      \
  prefix template int splitmask::examples::run_pretraining<config>(                      \
      const splitmask::examples::pretrain_settings&, const splitmask::image_set&,        \
      const splitmask::examples::run_control&);

#define SPLITMASK_PRETRAIN_INSTANCES_28(prefix)                              \
  SPLITMASK_PRETRAIN_INSTANCE(prefix, splitmask::examples::nano_28)          \
  SPLITMASK_PRETRAIN_INSTANCE(prefix, splitmask::examples::mini_28)          \
  SPLITMASK_PRETRAIN_INSTANCE(prefix, splitmask::presets::vit_ti4_28)
#define SPLITMASK_PRETRAIN_INSTANCES_32(prefix)                              \
  SPLITMASK_PRETRAIN_INSTANCE(prefix, splitmask::examples::mini_32)          \
  SPLITMASK_PRETRAIN_INSTANCE(prefix, splitmask::presets::vit_s4_32)
#define SPLITMASK_PRETRAIN_INSTANCES_224(prefix)                             \
  SPLITMASK_PRETRAIN_INSTANCE(prefix, splitmask::presets::vit_ti16_224)      \
  SPLITMASK_PRETRAIN_INSTANCE(prefix, splitmask::presets::vit_s16_224)       \
  SPLITMASK_PRETRAIN_INSTANCE(prefix, splitmask::presets::vit_b16_224)

SPLITMASK_PRETRAIN_INSTANCES_28(extern)
SPLITMASK_PRETRAIN_INSTANCES_32(extern)
SPLITMASK_PRETRAIN_INSTANCES_224(extern)

// The presets the pretrainer runs on the GPU (--device cuda): instances_cuda.cu, compiled by nvcc
// when CUDA is on (SPLITMASK_PRETRAIN_CUDA). Fewer, for compile time: the smoke size, the demos
// and ViT-B/16.
#define SPLITMASK_PRETRAIN_CUDA_INSTANCE(prefix, config)                                 \
  prefix template int splitmask::examples::run_pretraining_on_cuda<config>(              \
      const splitmask::examples::pretrain_settings&, const splitmask::image_set&,        \
      const splitmask::examples::run_control&);
#define SPLITMASK_PRETRAIN_CUDA_INSTANCES(prefix)                            \
  SPLITMASK_PRETRAIN_CUDA_INSTANCE(prefix, splitmask::examples::nano_28)     \
  SPLITMASK_PRETRAIN_CUDA_INSTANCE(prefix, splitmask::examples::mini_28)     \
  SPLITMASK_PRETRAIN_CUDA_INSTANCE(prefix, splitmask::examples::mini_32)     \
  SPLITMASK_PRETRAIN_CUDA_INSTANCE(prefix, splitmask::presets::vit_b16_224)

#if defined(SPLITMASK_PRETRAIN_CUDA)
SPLITMASK_PRETRAIN_CUDA_INSTANCES(extern)

namespace splitmask::examples {
/// Calls f(preset<Config>{}) for a preset compiled for the GPU; refuses the others by name.
template <class F>
int with_cuda_preset(const std::string& name, F&& f) {
  if (name == "nano-28") return f(preset<nano_28>{});
  if (name == "mini-28") return f(preset<mini_28>{});
  if (name == "mini-32") return f(preset<mini_32>{});
  if (name == "b16-224") return f(preset<presets::vit_b16_224>{});
  throw std::invalid_argument("preset " + name +
                              " is not compiled for --device cuda; the GPU presets are nano-28, "
                              "mini-28, mini-32 and b16-224");
}
}  // namespace splitmask::examples
#endif
