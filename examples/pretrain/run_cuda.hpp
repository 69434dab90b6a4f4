// run_pretraining_on_cuda: the pretrainer's run with the SplitMask trainer on the GPU (the
// current CUDA device). Compiled by nvcc only (instances_cuda.cu); the data loading, checkpoints
// and logs are run.hpp's, unchanged.
#pragma once

#include <stdexcept>

#include <splitmask/cuda.hpp>
#include <splitmask/splitmask.hpp>

#include "run.hpp"

namespace splitmask::examples {

template <class Config>
int run_pretraining_on_cuda(const pretrain_settings& s, const image_set& set,
                            const run_control& control) {
  if (s.objective != "splitmask")
    throw std::invalid_argument("--device cuda runs the splitmask objective; the " + s.objective +
                                " objective runs on the CPU (--device cpu)");
  backend::cuda::context::current();  // no GPU: a clear error before the tokenizer is built
  return detail::train<splitmask_trainer<Config, float, device::cuda>>(s, set, control);
}

}  // namespace splitmask::examples
