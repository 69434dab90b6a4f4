// Uses the public API the way a downstream project does; prints one number and exits 0.
#include <cstdio>
#include <splitmask/splitmask.hpp>

int main() {
  using namespace splitmask;
  tensor<float, extents<dynamic, 4, 8>> x(2), y(2);
  tensor<float, extents<8>> bias;
  bias = 1.0f;
  x = uniform<float>(counter_rng(1), x.extents());
  y = gelu(x + bias) - row_mean(x);
  tensor<float, extents<dynamic, 8>> c(8);
  matmul(c, y.reshape<extents<dynamic, 8>>(), tensor<float, extents<8, 8>>());
  std::printf("consumer ok: %zu elements\n", y.size());
  return 0;
}
