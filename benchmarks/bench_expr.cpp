// Fusion pays: a chain of 4 elementwise ops evaluated in one pass, against the same 4 ops as
// separate passes through a temporary, from L1-sized to DRAM-sized tensors.
#include <benchmark/benchmark.h>

#include <splitmask/splitmask.hpp>

namespace {
using namespace splitmask;
using shape = extents<dynamic, 1024>;

struct operands {
  tensor<float, shape> x, b, out;
  explicit operands(std::size_t rows) : x(rows), b(rows), out(rows) {
    x = uniform<float>(counter_rng(1), x.extents(), -1.f, 1.f);
    b = uniform<float>(counter_rng(2), b.extents(), -1.f, 1.f);
  }
};

void set_counters(benchmark::State& state, std::size_t n, int streams) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.counters["MiB"] = double(n) * sizeof(float) / (1 << 20);
  // Bytes that must cross memory for the whole computation (reads + writes of 4-byte floats).
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n * 4 * streams));
}

// out = max((x * 1.5 + b) * 0.5, 0): multiply, add, multiply, max.
void fused_chain(benchmark::State& state) {
  operands o(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    o.out = max((o.x * 1.5f + o.b) * 0.5f, 0.0f);
    benchmark::DoNotOptimize(o.out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, o.x.size(), 3);
}

void separate_passes(benchmark::State& state) {
  operands o(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    o.out = o.x * 1.5f;
    o.out = o.out + o.b;
    o.out = o.out * 0.5f;
    o.out = max(o.out, 0.0f);
    benchmark::DoNotOptimize(o.out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, o.x.size(), 3);
}

// Rows of 1024 floats: 4 KiB (L1) up to 256 MiB per tensor (far beyond L2 and L3).
BENCHMARK(fused_chain)->RangeMultiplier(8)->Range(1, 1 << 16)->UseRealTime();
BENCHMARK(separate_passes)->RangeMultiplier(8)->Range(1, 1 << 16)->UseRealTime();
}  // namespace

BENCHMARK_MAIN();
