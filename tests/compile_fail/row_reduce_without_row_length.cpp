// expect: a row reduction needs a compile-time row length
#include <splitmask/splitmask.hpp>
using namespace splitmask;
void f(tensor<float, extents<1>>& s, const tensor<float, extents<dynamic>>& x) { s = row_sum(x); }
