// CPU matrix products: GFLOP/s (2 M N K per product) of Eigen's product and OpenBLAS's sgemm
// (when the build uses it) on the same shapes in one run: square products, the linear layers of
// a ViT-Ti training step, and batched attention-head products. `matmul/...` is the public entry
// point with this build's backend, so its overhead shows too.
#include <benchmark/benchmark.h>

#include <splitmask/splitmask.hpp>
#include <string>

namespace {
using namespace splitmask;

struct shape {
  const char* name;
  std::size_t batch, m, n, k;
  bool transpose_b;
};

// ViT-Ti at 28x28 patch 4, B = 64 images, one subset of 25 tokens: 1600 token rows.
const shape shapes[] = {
    {"square_512", 1, 512, 512, 512, false},
    {"square_1024", 1, 1024, 1024, 1024, false},
    {"square_2048", 1, 2048, 2048, 2048, false},
    {"vit_qkv_1600x576x192", 1, 1600, 576, 192, true},
    {"vit_fc1_1600x768x192", 1, 1600, 768, 192, true},
    {"vit_fc2_1600x192x768", 1, 1600, 192, 768, true},
    {"heads_qk_192x25x25x64", 192, 25, 25, 64, true},   // 64 images x 3 heads: Q K^T
    {"heads_pv_192x25x64x25", 192, 25, 64, 25, false},  // P V
};

struct operands {
  tensor<float, extents<dynamic>> a, b, c;
  gemm_args<float> g;
  explicit operands(const shape& s)
      : a(s.batch * s.m * s.k), b(s.batch * s.k * s.n), c(s.batch * s.m * s.n) {
    a = uniform<float>(counter_rng(1), a.extents(), -1.f, 1.f);
    b = uniform<float>(counter_rng(2), b.extents(), -1.f, 1.f);
    g.m = s.m;
    g.n = s.n;
    g.k = s.k;
    g.batch = s.batch;
    g.transpose_b = s.transpose_b;
    g.a = a.data();
    g.b = b.data();
    g.c = c.data();
  }
};

template <class Run>
void measure(benchmark::State& state, const shape& s, Run run) {
  operands o(s);
  for (auto _ : state) {
    run(o.g);
    benchmark::DoNotOptimize(o.c.data());
    benchmark::ClobberMemory();
  }
  const double flops = 2.0 * double(s.batch) * double(s.m) * double(s.n) * double(s.k);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void register_all() {
  for (const shape& s : shapes) {
    const std::string n = s.name;
    benchmark::RegisterBenchmark(("eigen/" + n).c_str(), [&s](benchmark::State& st) {
      measure(st, s, [](const gemm_args<float>& g) {
        backend::cpu::gemm_batched(g, backend::cpu::eigen_gemm<float>);
      });
    })->UseRealTime();
#if defined(SPLITMASK_USE_OPENBLAS)
    benchmark::RegisterBenchmark(("openblas/" + n).c_str(), [&s](benchmark::State& st) {
      measure(st, s, [](const gemm_args<float>& g) {
        backend::cpu::gemm_batched(g, backend::cpu::openblas_gemm<float>);
      });
    })->UseRealTime();
#endif
  }
  // The public entry point on a linear layer's shapes (views, shape checks, dispatch).
  benchmark::RegisterBenchmark("matmul/vit_fc1_1600x768x192", [](benchmark::State& st) {
    tensor<float, extents<dynamic, 192>> x(1600);
    tensor<float, extents<768, 192>> w;
    tensor<float, extents<dynamic, 768>> y(1600);
    x = uniform<float>(counter_rng(1), x.extents(), -1.f, 1.f);
    w = uniform<float>(counter_rng(2), w.extents(), -1.f, 1.f);
    for (auto _ : st) {
      matmul(y, x, transposed(w));
      benchmark::DoNotOptimize(y.data());
    }
    st.counters["GFLOP/s"] = benchmark::Counter(
        2.0 * 1600 * 768 * 192 * double(st.iterations()) / 1e9, benchmark::Counter::kIsRate);
  })->UseRealTime();
}
}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("cpu_gemm", backend::cpu::gemm_name());
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
