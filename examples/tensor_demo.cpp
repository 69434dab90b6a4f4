// A tour of the tensor layer on the shapes of a ViT-Ti block (B images, N = 49 tokens, D = 192):
// compile-time shapes, a linear layer through matmul, fused bias + GELU, LayerNorm and softmax
// each in one pass, and the counter-based RNG. Prints what it computed and how fast.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <splitmask/splitmask.hpp>

#if defined(_OPENMP)
#include <omp.h>
#endif

using namespace splitmask;

constexpr std::size_t N = 49, D = 192, hidden = 4 * D;

template <class F>
double seconds(F&& f, int repeats = 5) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    best = dt.count() < best ? dt.count() : best;
  }
  return best;
}

int main(int argc, char** argv) {
  const std::size_t batch = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 64;
  int threads = 1;
#if defined(_OPENMP)
  threads = omp_get_max_threads();
#endif
  std::printf(
      "splitmask %d.%d.%d tensor demo: B = %zu images of N = %zu tokens, D = %zu, %d threads\n",
      SPLITMASK_VERSION_MAJOR, SPLITMASK_VERSION_MINOR, SPLITMASK_VERSION_PATCH, batch, N, D,
      threads);

  // Shapes are types; only the batch is a run-time number.
  tensor<float, extents<dynamic, N, D>> x(batch);       // (B, N, D) tokens
  tensor<float, extents<hidden, D>> w1;                 // (4D, D) fc1 weight
  tensor<float, extents<hidden>> b1;                    // (4D) fc1 bias
  tensor<float, extents<dynamic, N, hidden>> h(batch);  // (B, N, 4D) MLP hidden
  tensor<float, extents<dynamic, N, D>> y(batch);       // (B, N, D) normalised tokens
  tensor<float, extents<D>> gamma, beta;                // (D) LayerNorm affine

  const counter_rng rng(42);
  x = normal<float>(rng.with_stream(0), x.extents(), 0.5f, 2.0f);
  w1 = normal<float>(rng.with_stream(1), w1.extents(), 0.0f, 0.02f);
  b1 = 0.01f;
  gamma = 1.0f;
  beta = 0.0f;

  // LayerNorm over D, one pass: the row means are computed once per row, in cache.
  const float eps = 1e-6f;
  const double t_ln = seconds([&] {
    y = (x - row_mean(x)) * rsqrt(row_mean(square(x - row_mean(x))) + eps) * gamma + beta;
  });

  // fc1 as a matmul over all B*N token rows, then bias + GELU fused in one pass.
  auto tokens = y.reshape<extents<dynamic, D>>();            // (B*N, D)
  auto hidden_rows = h.reshape<extents<dynamic, hidden>>();  // (B*N, 4D)
  const double t_fc1 = seconds([&] { matmul(hidden_rows, tokens, transposed(w1)); });
  const double t_gelu = seconds([&] { h = gelu(h + b1); });

  // Softmax over the last axis in one pass (max-subtracted for stability).
  const double t_softmax = seconds([&] { y = exp(x - row_max(x)) / row_sum(exp(x - row_max(x))); });

  // Self-checks: LayerNorm output has mean 0 and variance 1 per row; softmax rows sum to 1.
  tensor<float, extents<dynamic, N, 1>> stat(batch);
  stat = row_sum(y);
  double worst_softmax = 0;
  for (std::size_t i = 0; i < stat.size(); ++i)
    worst_softmax = std::max(worst_softmax, std::abs(double(stat.data()[i]) - 1.0));
  y = (x - row_mean(x)) * rsqrt(row_mean(square(x - row_mean(x))) + eps);
  stat = row_mean(square(y));
  double worst_variance = 0;
  for (std::size_t i = 0; i < stat.size(); ++i)
    worst_variance = std::max(worst_variance, std::abs(double(stat.data()[i]) - 1.0));

  const double flops = 2.0 * double(batch * N) * hidden * D;
  const double mib = double(x.size()) * sizeof(float) / (1 << 20);
  std::printf("  layernorm (B, N, D), one pass      %8.3f ms  %6.1f GB/s\n", 1e3 * t_ln,
              2 * mib * 1.048576e-3 / t_ln);
  std::printf("  fc1 matmul (B*N, D) x (4D, D)^T    %8.3f ms  %6.1f GFLOP/s\n", 1e3 * t_fc1,
              flops / t_fc1 / 1e9);
  std::printf("  bias + gelu (B, N, 4D), one pass   %8.3f ms\n", 1e3 * t_gelu);
  std::printf("  softmax (B, N, D), one pass        %8.3f ms\n", 1e3 * t_softmax);
  std::printf("  check: |row variance - 1| <= %.2e, |softmax row sum - 1| <= %.2e\n",
              worst_variance, worst_softmax);
  const bool ok = worst_variance < 1e-4 && worst_softmax < 1e-5;
  std::printf("%s\n", ok ? "demo ok" : "demo FAILED its self-check");
  return ok ? 0 : 1;
}
