// The pretrainer's runs on the GPU (run_cuda.hpp), compiled by nvcc.
#include "run_cuda.hpp"
