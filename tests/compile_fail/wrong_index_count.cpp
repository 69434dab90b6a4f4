// expect: one index per axis
#include <splitmask/splitmask.hpp>
using namespace splitmask;
float f(const tensor<float, extents<dynamic, 3, 4>>& x) { return x(0, 1); }
