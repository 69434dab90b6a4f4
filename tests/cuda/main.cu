// The runner of the CUDA suite: runs the tests where a GPU is present, and otherwise says so and
// exits with 77, which CTest reports as skipped (the suite was compiled, not run).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <splitmask/cuda.hpp>

int main(int argc, char** argv) {
  const int devices = splitmask::backend::cuda::device_count();
  if (devices == 0) {
    std::printf("SKIPPED: no CUDA device is present; the CUDA tests were compiled but not run.\n");
    return 77;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    std::printf("CUDA tests on %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
  doctest::Context context(argc, argv);
  return context.run();
}
