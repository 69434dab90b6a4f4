// The pretrainer's runs on the GPU (see instances.hpp), compiled by nvcc.
#include "instances.hpp"
#include "run_cuda.hpp"

SPLITMASK_PRETRAIN_CUDA_INSTANCES()
