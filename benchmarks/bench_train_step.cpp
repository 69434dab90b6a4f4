// One full SplitMask training step (tokens, split, forward and backward of both branches,
// clipping, AdamW) for the 28 x 28 x 1 patch-4 ViT-Ti preset (D 192, depth 12, 3 heads, decoder
// 2 x 192, K 512) at B = 64 and the 32 x 32 x 3 patch-4 ViT-S preset (D 384, depth 12, 6 heads,
// decoder 2 x 384, K 1024) at B = 32; and the BEiT and MAE steps on the first (MAE: mask ratio
// 3/4, the same decoder). images/s and GFLOP/s of
// matrix products (2·M·N·K per GEMM, backward counted as twice the forward). The products run on
// the CPU GEMM chosen at run time (SPLITMASK_GEMM overrides it; the context line names it);
// splitmask_step_bf16/... runs them with bf16 operands where the CPU has bf16 instructions.
// benchmarks/compare_pytorch.sh runs the SplitMask cases beside PyTorch's step.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <string>

#include <splitmask/splitmask.hpp>

namespace {
using namespace splitmask;
using config = presets::vit_ti4_28;

template <class Config>
auto random_images(std::size_t batch) {
  tensor<float, extents<dynamic, Config::channels, Config::image_size, Config::image_size>> images(
      batch);
  images = uniform<float>(counter_rng(7), images.extents(), 0.f, 1.f);
  return images;
}

// The vocabulary of each preset's tokenizer.
template <class Config>
constexpr std::size_t vocabulary = Config::width == 192 ? 512 : 1024;

template <class Config>
patch_tokenizer<Config, vocabulary<Config>> tokenizer_for(
    const tensor<float, extents<dynamic, Config::channels, Config::image_size, Config::image_size>>&
        images) {
  std::array<float, Config::channels> mean{}, std{};
  mean.fill(0.5f);
  std.fill(0.29f);
  return patch_tokenizer<Config, vocabulary<Config>>::sample(images, mean, std, 1);
}

// images/s and GFLOP/s of the steps run.
template <class Trainer>
void count(benchmark::State& state, std::size_t batch) {
  const double steps = static_cast<double>(state.iterations());
  state.counters["images/s"] =
      benchmark::Counter(steps * double(batch), benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(
      steps * Trainer::step_flops(double(batch)) * 1e-9, benchmark::Counter::kIsRate);
}

template <class Config>
void splitmask_step(benchmark::State& state, backend::cpu::matmul_precision precision) {
  const backend::cpu::matmul_precision_scope products(precision);
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto images = random_images<Config>(batch);
  using splitmask_trainer = trainer<splitmask_objective<vocabulary<Config>>, Config>;
  splitmask_trainer trainer(batch, pretrain_options{}, {}, tokenizer_for<Config>(images));
  trainer.step(images);  // first-use allocations (InfoNCE state) out of the timing
  for (auto _ : state) benchmark::DoNotOptimize(trainer.step(images).total);
  count<splitmask_trainer>(state, batch);
}

void beit_step(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto images = random_images<config>(batch);
  using beit_trainer = trainer<beit_objective<vocabulary<config>>, config>;
  beit_trainer trainer(batch, pretrain_options{}, {}, tokenizer_for<config>(images));
  for (auto _ : state) benchmark::DoNotOptimize(trainer.step(images).total);
  count<beit_trainer>(state, batch);
}

void mae_step(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const auto images = random_images<config>(batch);
  using mae_trainer = trainer<mae_objective<>, config>;
  mae_trainer trainer(batch, pretrain_options{});
  for (auto _ : state) benchmark::DoNotOptimize(trainer.step(images).total);
  count<mae_trainer>(state, batch);
}

template <class Config>
void register_splitmask_step(const char* name, std::int64_t batch) {
  using backend::cpu::matmul_precision;
  benchmark::RegisterBenchmark((std::string("splitmask_step/") + name).c_str(),
                               splitmask_step<Config>, matmul_precision::fp32)
      ->Arg(batch)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  if (backend::cpu::bf16_products_available())
    benchmark::RegisterBenchmark((std::string("splitmask_step_bf16/") + name).c_str(),
                                 splitmask_step<Config>, matmul_precision::bf16)
        ->Arg(batch)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
}

BENCHMARK(beit_step)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(mae_step)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("cpu_gemm", backend::cpu::gemm_description());
  register_splitmask_step<presets::vit_ti4_28>("ti4-28", 64);
  register_splitmask_step<presets::vit_s4_32>("s4-32", 32);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
