// expect: an op's tensors must all live on one device
#include <splitmask/ops/layernorm.hpp>
using namespace splitmask;
// beta on the device, the other tensors on the host (beta was once missing from the check).
template <class E>
using host = tensor_view<float, E>;
void f(host<extents<dynamic, 8>> y, host<extents<dynamic>> mean, host<extents<dynamic>> rstd,
       host<extents<dynamic, 8>> x, host<extents<8>> gamma,
       tensor_view<float, extents<8>, device::cuda> beta) {
  layernorm_forward(y, mean, rstd, x, gamma, beta, 1e-6);
}
