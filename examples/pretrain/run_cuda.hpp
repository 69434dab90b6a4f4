// run_on_cuda: the pretrainer's run on the GPU (the current CUDA device), every objective, for
// the presets compiled for it (preset_sizes' OnCuda). Compiled by nvcc only (instances_cuda.cu);
// the data loading, checkpoints and logs are run.hpp's, unchanged.
#pragma once

#include <splitmask/cuda.hpp>
#include <stdexcept>
#include <string>
#if defined(SPLITMASK_PRETRAIN_NCCL)
#include <memory>
#include <splitmask/comm/nccl_communicator.cuh>
#endif

#include "run.hpp"

namespace splitmask::examples {

int run_on_cuda(const pretrain_settings& s, const image_set& set, const run_control& control) {
  using presets = decltype(presets_of<0>(all_presets{}));
  std::string names;
  std::apply(
      [&](auto... p) { ((names += (names.empty() ? "" : ", ") + std::string(p.name)), ...); },
      presets{});
  bool compiled = false;
  std::apply([&](auto... p) { ((compiled = compiled || s.preset == p.name), ...); }, presets{});
  if (!compiled)
    throw std::invalid_argument("preset " + s.preset +
                                " is not compiled for --device cuda; the GPU presets are " + names);
  // No GPU: a clear error here, before the tokenizer is built.
  backend::cuda::set_matmul_precision(
      control.precision == "bf16"   ? backend::cuda::matmul_precision::bf16
      : control.precision == "tf32" ? backend::cuda::matmul_precision::tf32
                                    : backend::cuda::matmul_precision::fp32);
  // Several processes: one GPU each (rank r on device r mod the GPUs), NCCL between them.
  run_control on_gpus = control;
#if defined(SPLITMASK_PRETRAIN_NCCL)
  std::unique_ptr<nccl_communicator> nccl;
  if (control.comm->size() > 1) {
    int gpus = 0;
    SPLITMASK_CUDA_CHECK(cudaGetDeviceCount(&gpus));
    SPLITMASK_CUDA_CHECK(cudaSetDevice(control.comm->rank() % gpus));
    nccl = std::make_unique<nccl_communicator>(*control.comm);
    on_gpus.comm = nccl.get();
  }
#else
  if (control.comm->size() > 1)
    throw std::invalid_argument("--device cuda with " + control.comm->description() +
                                ": this splitmask-pretrain was built without NCCL");
#endif
  return with_preset<presets>(s.preset, [&](auto p) {
    using P = typename decltype(p)::type;
    return with_objective<P>(s.objective, [&](auto objective) {
      return train<trainer<decltype(objective), typename P::encoder, float, device::cuda>>(s, set,
                                                                                           on_gpus);
    });
  });
}

}  // namespace splitmask::examples
