// expect: must be compiled by nvcc
#include <splitmask/cuda.hpp>
