// expect: x must be \(B, n, D\) for activations<n>
#include <splitmask/model/vit_encoder.hpp>
using namespace splitmask;
using cfg = vit_config<8, 1, 4, 16, 1, 2>;
void f(vit_encoder<cfg>& e, vit_encoder<cfg>::activations<2>& act,
       const tensor<float, extents<dynamic, 3, 16>>& x) {
  e.forward(act, x);
}
