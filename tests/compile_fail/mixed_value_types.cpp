// expect: operands have different value types
#include <splitmask/splitmask.hpp>
using namespace splitmask;
void f(tensor<float, extents<4>>& x, const tensor<double, extents<4>>& y) { x = x + y; }
