// expect: a floating-point scalar with an integer operand would be truncated
#include <splitmask/splitmask.hpp>
using namespace splitmask;
void f(tensor<int, extents<4>>& n) { n = n * 0.5; }
