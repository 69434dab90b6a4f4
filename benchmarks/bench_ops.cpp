// The ops of the training step that the profile shows besides the GEMMs (docs/performance.md),
// on the shapes of the 28 x 28 ViT-Ti preset at B = 64 with a SplitMask subset of n = 25 tokens
// (1600 token rows, D 192, 3 heads, MLP 768, K 512). GELU runs both ways in one run: the
// hand-vectorised kernel that the model uses and the lazy expression with the C library's erf
// and exp (what the step ran before). images/s throughout; GFLOP/s of matrix products for
// attention; elements/s (parameters/s for AdamW) for the memory-bound ops.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <splitmask/splitmask.hpp>

namespace {
using namespace splitmask;
using config = presets::vit_ti4_28;
constexpr std::size_t B = 64, n = 25, D = config::width, H = config::heads, M = config::mlp_width;
constexpr std::size_t K = 512;  // the preset's vocabulary

template <class X>
void fill(X& x, std::uint64_t seed) {
  x = normal<float>(counter_rng(seed), x.extents(), 0.f, 1.f);
}

void report(benchmark::State& state, double elements_per_call, double flops_per_call = 0) {
  const double calls = static_cast<double>(state.iterations());
  state.counters["images/s"] = benchmark::Counter(calls * double(B), benchmark::Counter::kIsRate);
  state.counters["elements/s"] =
      benchmark::Counter(calls * elements_per_call, benchmark::Counter::kIsRate);
  if (flops_per_call > 0)
    state.counters["GFLOP/s"] =
        benchmark::Counter(calls * flops_per_call * 1e-9, benchmark::Counter::kIsRate);
}

// ---- GELU: the kernel against the expression -------------------------------------------------
struct gelu_data {
  tensor<float, extents<dynamic, n, M>> x{B}, y{B}, dy{B}, dx{B};
  gelu_data() { fill(x, 1), fill(dy, 2); }
};

void gelu_forward_kernel(benchmark::State& state) {
  gelu_data d;
  for (auto _ : state) {
    gelu_forward(d.y, d.x);
    benchmark::DoNotOptimize(d.y.data());
  }
  report(state, double(d.x.size()));
}
void gelu_forward_expression(benchmark::State& state) {
  gelu_data d;
  for (auto _ : state) {
    d.y = gelu(d.x.view());
    benchmark::DoNotOptimize(d.y.data());
  }
  report(state, double(d.x.size()));
}
void gelu_backward_kernel(benchmark::State& state) {
  gelu_data d;
  for (auto _ : state) {
    gelu_backward(d.dx, d.dy, d.x);
    benchmark::DoNotOptimize(d.dx.data());
  }
  report(state, double(d.x.size()));
}
void gelu_backward_expression(benchmark::State& state) {
  gelu_data d;
  const auto x = d.x.view();
  for (auto _ : state) {
    d.dx = d.dy.view() * (0.5f * (1.f + erf(x * 0.70710678f)) +
                          x * 0.39894228f * exp(-0.5f * x * x));
    benchmark::DoNotOptimize(d.dx.data());
  }
  report(state, double(d.x.size()));
}

// ---- Attention ---------------------------------------------------------------------------------
struct attention_data {
  tensor<float, extents<dynamic, n, 3 * D>> qkv{B}, d_qkv{B};
  tensor<float, extents<dynamic, n, D>> out{B}, d_out{B};
  tensor<float, extents<dynamic, n, n>> probs{B * H}, d_probs{B * H};
  attention_saved<float, n, D, H> saved{probs.view()};
  attention_scratch<float, n, D, H> scratch{d_probs.view()};
  attention_data() { fill(qkv, 3), fill(d_out, 4); }
  // q k^T and P v: 2 * 2 * n * n * Dh per (image, head).
  static constexpr double forward_flops = 4.0 * B * H * n * n * (D / H);
};

void attention_forward_op(benchmark::State& state) {
  attention_data d;
  for (auto _ : state) {
    attention_forward(d.out, d.saved, d.qkv);
    benchmark::DoNotOptimize(d.out.data());
  }
  report(state, double(d.out.size()), attention_data::forward_flops);
}
void attention_backward_op(benchmark::State& state) {
  attention_data d;
  attention_forward(d.out, d.saved, d.qkv);
  for (auto _ : state) {
    attention_backward(d.d_qkv, d.scratch, d.d_out, d.saved, d.qkv);
    benchmark::DoNotOptimize(d.d_qkv.data());
  }
  report(state, double(d.out.size()), 2 * attention_data::forward_flops);
}

// ---- LayerNorm ---------------------------------------------------------------------------------
struct layernorm_data {
  tensor<float, extents<dynamic, n, D>> x{B}, y{B}, dy{B}, dx{B};
  tensor<float, extents<dynamic, n, 1>> mean{B}, rstd{B};
  tensor<float, extents<D>> gamma, beta, d_gamma, d_beta;
  layernorm_data() { fill(x, 5), fill(dy, 6), fill(gamma, 7), fill(beta, 8); }
};

void layernorm_forward_op(benchmark::State& state) {
  layernorm_data d;
  for (auto _ : state) {
    layernorm_forward(d.y, d.mean, d.rstd, d.x, d.gamma, d.beta, 1e-6);
    benchmark::DoNotOptimize(d.y.data());
  }
  report(state, double(d.x.size()));
}
void layernorm_backward_op(benchmark::State& state) {
  layernorm_data d;
  layernorm_forward(d.y, d.mean, d.rstd, d.x, d.gamma, d.beta, 1e-6);
  for (auto _ : state) {
    layernorm_backward(d.dx, d.d_gamma, d.d_beta, d.dy, d.x, d.mean, d.rstd, d.gamma);
    benchmark::DoNotOptimize(d.dx.data());
  }
  report(state, double(d.x.size()));
}

// ---- Cross-entropy over the K logits of the predicted tokens -----------------------------------
void cross_entropy_op(benchmark::State& state) {
  tensor<float, extents<dynamic, n, K>> logits(B), d_logits(B);
  tensor<float, extents<dynamic, n>> lse(B);
  tensor<std::int32_t, extents<dynamic, n>> targets(B);
  fill(logits, 9);
  for (std::size_t i = 0; i < targets.size(); ++i) targets.data()[i] = std::int32_t(i * 7 % K);
  for (auto _ : state) {
    benchmark::DoNotOptimize(cross_entropy_forward(lse, logits, targets));
    cross_entropy_backward(d_logits, logits, lse, targets);
    benchmark::DoNotOptimize(d_logits.data());
  }
  report(state, double(logits.size()));
}

// ---- AdamW over the encoder's and decoder's parameters -------------------------------------------
void adamw_op(benchmark::State& state) {
  constexpr std::size_t P =
      config::encoder_parameters + decoder_sizes<config, decoder_config<>>::parameters(K);
  tensor<float, extents<dynamic>> values(P), grads(P);
  fill(values, 10), fill(grads, 11);
  adamw<float> optimizer;
  optimizer.add("all", values.data(), grads.data(), P, true);
  for (auto _ : state) {
    benchmark::DoNotOptimize(optimizer.gradient_norm());
    optimizer.step(1e-4);
    benchmark::DoNotOptimize(values.data());
  }
  const double calls = static_cast<double>(state.iterations());
  state.counters["parameters/s"] = benchmark::Counter(calls * P, benchmark::Counter::kIsRate);
}

BENCHMARK(gelu_forward_kernel)->Name("gelu_forward/kernel")->UseRealTime();
BENCHMARK(gelu_forward_expression)->Name("gelu_forward/expression")->UseRealTime();
BENCHMARK(gelu_backward_kernel)->Name("gelu_backward/kernel")->UseRealTime();
BENCHMARK(gelu_backward_expression)->Name("gelu_backward/expression")->UseRealTime();
BENCHMARK(attention_forward_op)->Name("attention_forward")->UseRealTime();
BENCHMARK(attention_backward_op)->Name("attention_backward")->UseRealTime();
BENCHMARK(layernorm_forward_op)->Name("layernorm_forward")->UseRealTime();
BENCHMARK(layernorm_backward_op)->Name("layernorm_backward")->UseRealTime();
BENCHMARK(cross_entropy_op)->Name("cross_entropy_forward_backward")->UseRealTime();
BENCHMARK(adamw_op)->Name("adamw_norm_and_step")->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
