// expect: the expression lives on another device than the destination
#include <splitmask/splitmask.hpp>
using namespace splitmask;
void f(tensor_view<float, extents<4>> host, tensor_view<float, extents<4>, device::cuda> dev) {
  host = dev * 2.0f;
}
