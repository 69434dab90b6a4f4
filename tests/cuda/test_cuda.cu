// The CUDA suite: the same expression, matmul and RNG cases as the CPU suite, on device tensors,
// each against the same naive double references.
#include <splitmask/cuda.hpp>

#include "cases/expr_cases.hpp"
#include "cases/matmul_cases.hpp"
#include "cases/rng_cases.hpp"

SPLITMASK_EXPR_TEST_CASES(splitmask::device::cuda, "cuda: ")
SPLITMASK_GEMM_TEST_CASES(splitmask::device::cuda, "cuda: ")
SPLITMASK_RNG_TEST_CASES(splitmask::device::cuda, "cuda: ")

TEST_CASE("cuda: device tensors round-trip through the host") {
  using namespace splitmask;
  tensor<float, extents<dynamic, 5, 3>> h(4);
  h = uniform<float>(counter_rng(3), h.extents());
  const auto d = to_device<device::cuda>(h);
  const auto back = to_device<device::cpu>(d);
  CHECK(std::equal(h.data(), h.data() + h.size(), back.data()));
  const auto d2 = d.clone();
  CHECK(std::equal(h.data(), h.data() + h.size(), to_device<device::cpu>(d2).data()));
}
