// expect: CUDA tensors need <splitmask/cuda.hpp>
#include <splitmask/splitmask.hpp>
splitmask::tensor<float, splitmask::extents<4>, splitmask::device::cuda> t;
