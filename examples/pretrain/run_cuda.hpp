// run_pretraining_on_cuda: the pretrainer's run with the SplitMask trainer on the GPU (the
// current CUDA device). Compiled by nvcc only (instances_cuda.cu); the data loading, checkpoints
// and logs are run.hpp's, unchanged.
#pragma once

#include <splitmask/cuda.hpp>
#include <splitmask/splitmask.hpp>
#include <stdexcept>

#include "run.hpp"

namespace splitmask::examples {

template <class Config>
int run_pretraining_on_cuda(const pretrain_settings& s, const image_set& set,
                            const run_control& control) {
  if (s.objective != "splitmask")
    throw std::invalid_argument("--device cuda runs the splitmask objective; the " + s.objective +
                                " objective runs on the CPU (--device cpu)");
  // No GPU: a clear error here, before the tokenizer is built.
  backend::cuda::set_matmul_precision(
      control.precision == "bf16"   ? backend::cuda::matmul_precision::bf16
      : control.precision == "tf32" ? backend::cuda::matmul_precision::tf32
                                    : backend::cuda::matmul_precision::fp32);
  return detail::train<splitmask_trainer<Config, float, device::cuda>>(s, set, control);
}

}  // namespace splitmask::examples
