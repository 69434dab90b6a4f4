// expect: operand shapes do not broadcast
#include <splitmask/splitmask.hpp>
using namespace splitmask;
void f(tensor<float, extents<dynamic>>& v, const tensor<float, extents<1>>& one) { v = v + one; }
