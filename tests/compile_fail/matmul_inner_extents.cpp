// expect: the inner extents of op\(A\) and op\(B\) differ
#include <splitmask/splitmask.hpp>
using namespace splitmask;
void f(tensor<float, extents<dynamic, 8>>& c, const tensor<float, extents<dynamic, 4>>& a,
       const tensor<float, extents<8, 5>>& w) {
  matmul(c, a, transposed(w));  // (M, 4) x (5, 8)^T: 4 != 5
}
