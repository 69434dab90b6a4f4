// What main.cpp needs of a pre-training run, without compiling one: how an invocation runs, the
// stop flag (common/stop_signal.hpp), and the runs compiled elsewhere (instances_*.cpp, .cu).
#pragma once

#include <cstddef>
#include <cstdint>
#include <splitmask/comm/communicator.hpp>
#include <splitmask/data/image_set.hpp>
#include <string>

#include "../common/stop_signal.hpp"  // stop_requested: the run saves a checkpoint and ends
#include "settings.hpp"

namespace splitmask::examples {

/// How this invocation runs, beside the run's own settings (these may change on --resume).
struct run_control {
  std::string out;                 // output folder
  std::string resume;              // a checkpoint to continue, or empty
  std::uint64_t save_every = 0;    // steps between checkpoints; 0: ten per run
  std::uint64_t stop_after = 0;    // end (with a checkpoint) after this many steps; 0: to the end
  std::string device = "cpu";      // cpu or cuda
  std::string precision = "fp32";  // of the GPU's products: fp32, tf32 or bf16
  communicator* comm = &one_process();  // the run's processes (mpirun -np N): --batch is theirs
};

/// Runs (or continues, from control.resume) the pre-training `s` describes on `set`, on the CPU,
/// for the presets of images ImageSize x ImageSize (instances_<ImageSize>.cpp). Returns the exit
/// status: 0 done or stopped as asked, 3 a non-finite loss, 130 interrupted.
template <std::size_t ImageSize>
int run_on_cpu(const pretrain_settings& s, const image_set& set, const run_control& control);

/// The same on the current GPU, for the presets compiled for it (instances_cuda.cu).
int run_on_cuda(const pretrain_settings& s, const image_set& set, const run_control& control);

}  // namespace splitmask::examples
