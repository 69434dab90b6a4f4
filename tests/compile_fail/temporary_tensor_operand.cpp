// expect: an expression cannot read a temporary tensor
#include <splitmask/splitmask.hpp>
using namespace splitmask;
tensor<float, extents<4>> make();
void f(tensor<float, extents<4>>& y) { y = make() + 1.0f; }
