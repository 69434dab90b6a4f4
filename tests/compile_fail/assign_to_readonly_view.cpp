// expect: cannot assign to a read-only view
#include <splitmask/splitmask.hpp>
using namespace splitmask;
void f(tensor_view<const float, extents<4>> v) { v = 1.0f; }
