// matmul throughput (GFLOP/s = 2 M N K / time) for square products and the shapes of a ViT-Ti
// training step, with OpenBLAS's sgemm on the same shapes as the peer when it is installed.
#include <benchmark/benchmark.h>

#include <splitmask/splitmask.hpp>

#if defined(SPLITMASK_BENCH_OPENBLAS)
#include <cblas.h>
#endif

namespace {
using namespace splitmask;

template <std::size_t K, std::size_t N>
struct problem {
  tensor<float, extents<dynamic, K>> a;  // (M, K)
  tensor<float, extents<N, K>> w;        // (N, K): read transposed, as a linear layer's weight
  tensor<float, extents<dynamic, N>> c;  // (M, N)
  explicit problem(std::size_t m) : a(m), c(m) {
    a = uniform<float>(counter_rng(1), a.extents(), -1.f, 1.f);
    w = uniform<float>(counter_rng(2), w.extents(), -1.f, 1.f);
  }
};

void set_flops(benchmark::State& state, double m, double n, double k) {
  state.counters["GFLOP/s"] = benchmark::Counter(2 * m * n * k * double(state.iterations()) / 1e9,
                                                 benchmark::Counter::kIsRate);
}

// C = A W^T with A (M, K), W (N, K).
template <std::size_t K, std::size_t N>
void splitmask_matmul(benchmark::State& state) {
  const auto m = static_cast<std::size_t>(state.range(0));
  problem<K, N> p(m);
  for (auto _ : state) {
    matmul(p.c, p.a, transposed(p.w));
    benchmark::DoNotOptimize(p.c.data());
  }
  set_flops(state, double(m), N, K);
}

#if defined(SPLITMASK_BENCH_OPENBLAS)
template <std::size_t K, std::size_t N>
void openblas_sgemm(benchmark::State& state) {
  const auto m = static_cast<std::size_t>(state.range(0));
  problem<K, N> p(m);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(N), int(K), 1.0f,
                p.a.data(), int(K), p.w.data(), int(K), 0.0f, p.c.data(), int(N));
    benchmark::DoNotOptimize(p.c.data());
  }
  set_flops(state, double(m), N, K);
}
#endif

// Square products.
BENCHMARK(splitmask_matmul<512, 512>)->Arg(512)->Name("square/splitmask/512")->UseRealTime();
BENCHMARK(splitmask_matmul<1024, 1024>)->Arg(1024)->Name("square/splitmask/1024")->UseRealTime();
BENCHMARK(splitmask_matmul<2048, 2048>)->Arg(2048)->Name("square/splitmask/2048")->UseRealTime();
// ViT-Ti at 28x28 patch 4, B = 64, one subset of 25 tokens: M = 1600 token rows.
BENCHMARK(splitmask_matmul<192, 576>)->Arg(1600)->Name("vit_qkv/splitmask/1600x576x192")->UseRealTime();
BENCHMARK(splitmask_matmul<192, 768>)->Arg(1600)->Name("vit_fc1/splitmask/1600x768x192")->UseRealTime();
BENCHMARK(splitmask_matmul<768, 192>)->Arg(1600)->Name("vit_fc2/splitmask/1600x192x768")->UseRealTime();
#if defined(SPLITMASK_BENCH_OPENBLAS)
BENCHMARK(openblas_sgemm<512, 512>)->Arg(512)->Name("square/openblas/512")->UseRealTime();
BENCHMARK(openblas_sgemm<1024, 1024>)->Arg(1024)->Name("square/openblas/1024")->UseRealTime();
BENCHMARK(openblas_sgemm<2048, 2048>)->Arg(2048)->Name("square/openblas/2048")->UseRealTime();
BENCHMARK(openblas_sgemm<192, 576>)->Arg(1600)->Name("vit_qkv/openblas/1600x576x192")->UseRealTime();
BENCHMARK(openblas_sgemm<192, 768>)->Arg(1600)->Name("vit_fc1/openblas/1600x768x192")->UseRealTime();
BENCHMARK(openblas_sgemm<768, 192>)->Arg(1600)->Name("vit_fc2/openblas/1600x192x768")->UseRealTime();
#endif
}  // namespace

BENCHMARK_MAIN();
