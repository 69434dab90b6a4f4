// The pretrainer's runs for the presets of 32-pixel images, every objective: one translation
// unit per image size, so that a parallel build compiles them at once.
#include <splitmask/cpu_kernels.hpp>  // compiled once, in once.cpp

#include "run.hpp"

template int splitmask::examples::run_on_cpu<32>(const pretrain_settings&, const image_set&,
                                                 const run_control&);
