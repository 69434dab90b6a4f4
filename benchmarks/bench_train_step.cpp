// One full SplitMask training step (tokens, split, forward and backward of both branches,
// clipping, AdamW) for the 28 x 28 x 1 patch-4 ViT-Ti preset (D 192, depth 12, 3 heads, decoder
// 2 x 192, K 512) at B = 64; and the BEiT step on the same components. images/s and GFLOP/s of
// matrix products (2·M·N·K per GEMM, backward counted as twice the forward).
#include <benchmark/benchmark.h>

#include <splitmask/splitmask.hpp>
#include <splitmask/train/beit_trainer.hpp>
#include <splitmask/train/splitmask_trainer.hpp>

namespace {
using namespace splitmask;
using config = presets::vit_ti4_28;

tensor<float, extents<dynamic, 1, 28, 28>> random_images(std::size_t batch) {
  tensor<float, extents<dynamic, 1, 28, 28>> images(batch);
  images = uniform<float>(counter_rng(7), images.extents(), 0.f, 1.f);
  return images;
}

void splitmask_step(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto images = random_images(batch);
  splitmask_trainer<config> trainer(
      batch, patch_tokenizer<config>::sample(images, {0.5f}, {0.29f}, 1), pretrain_options{});
  trainer.step(images);  // first-use allocations (InfoNCE state) out of the timing
  for (auto _ : state) benchmark::DoNotOptimize(trainer.step(images).total);
  const double steps = static_cast<double>(state.iterations());
  state.counters["images/s"] =
      benchmark::Counter(steps * double(batch), benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(steps * splitmask_trainer<config>::step_flops(double(batch)) * 1e-9,
                         benchmark::Counter::kIsRate);
}

void beit_step(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto images = random_images(batch);
  beit_trainer<config> trainer(batch, patch_tokenizer<config>::sample(images, {0.5f}, {0.29f}, 1),
                               pretrain_options{});
  for (auto _ : state) benchmark::DoNotOptimize(trainer.step(images).total);
  const double steps = static_cast<double>(state.iterations());
  const double flops =
      3 * (vit_encoder<config>::forward_flops(double(batch), config::patches) +
           2.0 * double(batch) * config::subset_b * config::width * config::vocabulary) +
      2.0 * double(batch) * config::patches * config::patch_length * config::vocabulary;
  state.counters["images/s"] =
      benchmark::Counter(steps * double(batch), benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(steps * flops * 1e-9, benchmark::Counter::kIsRate);
}

BENCHMARK(splitmask_step)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(beit_step)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
