// expect: operand shapes do not broadcast
#include <splitmask/splitmask.hpp>
using namespace splitmask;
void f(tensor<float, extents<dynamic, 3, 4>>& x, const tensor<float, extents<3>>& b) { x = x + b; }
