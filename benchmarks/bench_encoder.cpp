// The ViT encoder on the CPU: forward, and forward + backward, for the 28 x 28 ViT-Ti preset
// (patch 4, N = 49, D 192, depth 12, 3 heads) at B = 64, on whole images (N tokens) and on a
// SplitMask subset (N_B = 25 tokens). Reports images/s and GFLOP/s of matrix products
// (2·M·N·K per GEMM; backward counted as twice the forward).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <splitmask/splitmask.hpp>

namespace {
using namespace splitmask;
using config = presets::vit_ti4_28;
using encoder_type = vit_encoder<config>;
constexpr std::size_t D = config::width;

template <std::size_t n>
struct encoder_run {
  encoder_type encoder{1};
  tensor<float, extents<dynamic, n, D>> x, d_x, d_out;  // (B, n, D)
  typename encoder_type::template activations<n> act;
  explicit encoder_run(std::size_t batch) : x(batch), d_x(batch), d_out(batch), act(batch) {
    x = normal<float>(counter_rng(2), x.extents(), 0.f, 1.f);
    d_out = normal<float>(counter_rng(3), d_out.extents(), 0.f, 1e-3f);
  }
};

void report(benchmark::State& state, std::size_t batch, double flops_per_step) {
  const double steps = static_cast<double>(state.iterations());
  state.counters["images/s"] =
      benchmark::Counter(steps * double(batch), benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(steps * flops_per_step * 1e-9, benchmark::Counter::kIsRate);
}

template <std::size_t n>
void encoder_forward(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  encoder_run<n> run(batch);
  for (auto _ : state) {
    auto out = run.encoder.forward(run.act, run.x);
    benchmark::DoNotOptimize(out.data());
  }
  report(state, batch, encoder_type::forward_flops(double(batch), double(n), false));
}

template <std::size_t n>
void encoder_forward_backward(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  encoder_run<n> run(batch);
  for (auto _ : state) {
    run.encoder.forward(run.act, run.x);
    run.encoder.backward(run.act, run.d_x, run.d_out);
    benchmark::DoNotOptimize(run.d_x.data());
  }
  report(state, batch, 3 * encoder_type::forward_flops(double(batch), double(n), false));
}

// Patchify + patch embedding + positions of whole images.
void embed_forward(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  encoder_type encoder(1);
  tensor<float, encoder_type::image_extents> images(batch);
  tensor<float, encoder_type::patch_extents> patches(batch);
  tensor<float, encoder_type::token_extents> tokens(batch);
  images = normal<float>(counter_rng(4), images.extents(), 0.f, 1.f);
  for (auto _ : state) {
    patchify<config::patch_size>(patches, images);
    encoder.embed(tokens, patches);
    benchmark::DoNotOptimize(tokens.data());
  }
  report(state, batch, 2.0 * double(batch) * config::patches * config::patch_length * D);
}

constexpr std::size_t N = config::patches, NB = N - N / 2;  // SplitMask's subset B
BENCHMARK(encoder_forward<N>)
    ->Name("encoder_forward/N=49")
    ->Arg(64)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(encoder_forward_backward<N>)
    ->Name("encoder_forward_backward/N=49")
    ->Arg(64)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(encoder_forward<NB>)
    ->Name("encoder_forward/N_B=25")
    ->Arg(64)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(encoder_forward_backward<NB>)
    ->Name("encoder_forward_backward/N_B=25")
    ->Arg(64)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(embed_forward)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
