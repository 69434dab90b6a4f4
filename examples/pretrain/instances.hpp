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
