// CPU matrix products: GFLOP/s (2 M N K per product) of every GEMM library this build has
// (oneDNN, OpenBLAS, Eigen), and of oneDNN's bf16 products where the CPU has them, on the same
// shapes in one run: square products and the products of a SplitMask step for ti4-28 (B 64: a
// subset of 25 tokens x 64 images = 1600 rows, D 192) and s4-32 (B 32: 32 tokens x 32 images =
// 1024 rows, D 384), forward (y = x W^T), input gradient (dx = dy W) and weight gradient
// (dW = dy^T x). `matmul/...` is the public entry point with the library chosen at run time.
//   OMP_NUM_THREADS=2 build/benchmarks/bench_matmul --benchmark_filter=vit
#include <benchmark/benchmark.h>

#include <splitmask/splitmask.hpp>
#include <string>

namespace {
using namespace splitmask;
namespace cpu = backend::cpu;

struct shape {
  std::string name;
  std::size_t batch, m, n, k;
  bool transpose_a, transpose_b;
};

// The three products of a linear layer (Out, In) over `rows` token rows.
void add_linear(std::vector<shape>& out, const std::string& name, std::size_t rows,
                std::size_t in, std::size_t outs) {
  const std::string dims = "_" + std::to_string(in) + "to" + std::to_string(outs);
  out.push_back({name + dims + "_fwd", 1, rows, outs, in, false, true});   // x W^T
  out.push_back({name + dims + "_dx", 1, rows, in, outs, false, false});   // dy W
  out.push_back({name + dims + "_dw", 1, outs, in, rows, true, false});    // dy^T x
}

std::vector<shape> all_shapes() {
  std::vector<shape> s = {{"square_1024", 1, 1024, 1024, 1024, false, false},
                          {"square_2048", 1, 2048, 2048, 2048, false, false}};
  add_linear(s, "vit_ti4-28_qkv", 1600, 192, 576);
  add_linear(s, "vit_ti4-28_fc1", 1600, 192, 768);
  add_linear(s, "vit_ti4-28_fc2", 1600, 768, 192);
  add_linear(s, "vit_s4-32_qkv", 1024, 384, 1152);
  add_linear(s, "vit_s4-32_fc1", 1024, 384, 1536);
  add_linear(s, "vit_s4-32_fc2", 1024, 1536, 384);
  s.push_back({"heads_qk_192x25x25x64", 192, 25, 25, 64, false, true});  // 64 images x 3 heads
  return s;
}

struct operands {
  tensor<float, extents<dynamic>> a, b, c;
  gemm_args<float> g;
  explicit operands(const shape& s)
      : a(s.batch * s.m * s.k), b(s.batch * s.k * s.n), c(s.batch * s.m * s.n) {
    a = uniform<float>(counter_rng(1), a.extents(), -1.f, 1.f);
    b = uniform<float>(counter_rng(2), b.extents(), -1.f, 1.f);
    c = 0.f;
    g.m = s.m;
    g.n = s.n;
    g.k = s.k;
    g.batch = s.batch;
    g.transpose_a = s.transpose_a;
    g.transpose_b = s.transpose_b;
    g.beta = 1;  // as the step runs them: bias or gradient already in C
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

void register_all(const std::vector<shape>& shapes) {
  std::vector<cpu::gemm_library> libraries;
#if defined(SPLITMASK_HAS_ONEDNN)
  libraries.push_back(cpu::gemm_library::onednn);
#endif
#if defined(SPLITMASK_HAS_OPENBLAS)
  libraries.push_back(cpu::gemm_library::openblas);  // measured even where it is refused
#endif
  libraries.push_back(cpu::gemm_library::eigen);
  for (const shape& s : shapes) {
    for (const cpu::gemm_library library : libraries) {
      benchmark::RegisterBenchmark(
          (std::string(cpu::to_string(library)) + "/" + s.name).c_str(),
          [&s, library](benchmark::State& st) {
            measure(st, s, [library](const gemm_args<float>& g) { cpu::gemm_with(library, g); });
          })
          ->UseRealTime();
    }
#if defined(SPLITMASK_HAS_ONEDNN)
    benchmark::RegisterBenchmark(("onednn_sgemm/" + s.name).c_str(), [&s](benchmark::State& st) {
      measure(st, s, [](const gemm_args<float>& g) { cpu::gemm_batched(g, cpu::onednn_sgemm); });
    })->UseRealTime();
    if (cpu::bf16_products_available()) {
      benchmark::RegisterBenchmark(("onednn_bf16/" + s.name).c_str(), [&s](benchmark::State& st) {
        measure(st, s, [](const gemm_args<float>& g) { cpu::onednn_bf16_gemm(g); });
      })->UseRealTime();
    }
#endif
  }
  // The public entry point on a linear layer's shapes (views, shape checks, dispatch).
  benchmark::RegisterBenchmark("matmul/vit_ti4-28_fc1_192to768_fwd", [](benchmark::State& st) {
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
  benchmark::AddCustomContext("cpu_gemm", cpu::gemm_description());
  benchmark::AddCustomContext("cpu_isa", cpu::cpu_isa());
  static const std::vector<shape> shapes = all_shapes();
  register_all(shapes);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
