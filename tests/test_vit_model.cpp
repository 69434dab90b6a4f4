// The ViT encoder as a whole: parameter names and counts, seeded initialisation, the gradient
// of one block and of the whole encoder by central finite differences in double, and the golden
// comparison with an independent PyTorch implementation (tests/golden).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "splitmask/model/transformer_block.hpp"
#include "splitmask/model/vit_encoder.hpp"
#include "splitmask/tensor/expr/random.hpp"
#include "support/compare.hpp"
#include "support/fixture.hpp"
#include "support/gradcheck.hpp"
#include "support/vit_pipeline.hpp"

namespace {

using namespace splitmask;
using splitmask::testing::check_gradients;
using splitmask::testing::classifier_pipeline;
using splitmask::testing::gradient_entry;
using splitmask::testing::load;
using splitmask::testing::load_fixture;
using splitmask::testing::relative_error;

// The golden fixture's model: 12 x 12 x 2 images, patch 4 (N = 9), D 16, depth 2, 2 heads.
using golden_config = vit_config<12, 2, 4, 16, 2, 2>;
using learned_config = golden_config::with_position<position_embedding::learned>;

template <class X>
void fill(X& x, std::uint64_t seed, double scale = 1.0) {
  using T = typename std::decay_t<decltype(x.view())>::value_type;
  x = normal<T>(counter_rng(seed), x.extents(), T(0), T(scale));
}

// ---- names, counts, initialisation ---------------------------------------------------------

TEST_CASE("parameters have timm's names and shapes, and the config counts them") {
  vit_encoder<learned_config> encoder(1);
  std::vector<std::string> names;
  std::size_t count = 0;
  encoder.params().for_each([&](const std::string& name, auto v, parameter_role) {
    names.push_back(name + " " + to_string(v.extents()));
    count += v.size();
  });
  CHECK(count == learned_config::encoder_parameters);
  CHECK(count == encoder.parameter_count());
  REQUIRE(names.size() == 2 + 1 + 2 * 12 + 2);
  CHECK(names[0] == "patch_embed.proj.weight (16, 2, 4, 4)");
  CHECK(names[2] == "pos_embed (1, 9, 16)");
  CHECK(names[3] == "blocks.0.norm1.weight (16)");
  CHECK(names[5] == "blocks.0.attn.qkv.weight (48, 16)");
  CHECK(names[13] == "blocks.0.mlp.fc2.weight (16, 64)");
  CHECK(names[15] == "blocks.1.norm1.weight (16)");
  CHECK(names.back() == "norm.bias (16)");
  CHECK(vit_encoder<golden_config>::parameter_count() ==
        learned_config::encoder_parameters - 9 * 16);
}

TEST_CASE("initialisation is seeded: truncated normal 0.02 weights, zero biases, unit norms") {
  vit_encoder<presets::vit_ti4_28> a(7), b(7), c(8);
  const auto pa = a.flat_params(), pb = b.flat_params(), pc = c.flat_params();
  bool same = true, differs = false;
  for (std::size_t i = 0; i < pa.size(); ++i) {
    same = same && pa(i) == pb(i);
    differs = differs || pa(i) != pc(i);
  }
  CHECK(same);
  CHECK(differs);
  double sum_sq = 0, largest = 0;
  const auto w = a.params().blocks[3].fc1_weight;  // (768, 192): 147456 draws
  for (std::size_t i = 0; i < w.size(); ++i) {
    sum_sq += double(w.data()[i]) * w.data()[i];
    largest = std::max(largest, std::abs(double(w.data()[i])));
  }
  // A normal truncated at 2 sigma has standard deviation 0.02 * 0.8796.
  CHECK(std::sqrt(sum_sq / double(w.size())) == doctest::Approx(0.02 * 0.8796).epsilon(0.01));
  CHECK(largest <= 0.04);
  CHECK(largest > 0.039);
  CHECK(a.params().blocks[3].fc1_bias(5) == 0.0f);
  CHECK(a.params().blocks[3].norm2_weight(5) == 1.0f);
  CHECK(a.params().norm_bias(0) == 0.0f);
}

// ---- gradients by finite differences -------------------------------------------------------

TEST_CASE("one transformer block: every parameter and input gradient by finite differences") {
  constexpr std::size_t D = 8, H = 2, M = 16, n = 5, B = 2;
  using block = transformer_block<double, D, H, M>;
  block::parameters p, g;
  auto p_memory = bind_arena<double>(p);
  auto g_memory = bind_arena<double>(g);
  for (std::size_t i = 0; i < p_memory.size(); ++i)
    p_memory.data()[i] = 0.3 * counter_rng(31).normal<double>(i);
  block::activations<n> act;
  block::workspace<n> ws;
  act.batch = ws.batch = B;
  auto act_memory = bind_arena<double>(act);
  auto ws_memory = bind_arena<double>(ws);
  tensor<double, extents<dynamic, n, D>> x(B), out(B), r(B), dx(B);
  fill(x, 32), fill(r, 33);
  auto loss = [&] {
    copy(act.input, x);
    block::forward(p, act, out, 1e-5);
    double s = 0;
    for (std::size_t i = 0; i < out.size(); ++i) s += out.data()[i] * r.data()[i];
    return s;
  };
  loss();
  dx = r;
  block::backward(p, g, act, ws, dx);
  std::vector<gradient_entry> entries{{"x", x.data(), dx.data(), x.size()}};
  // Pair each parameter with its gradient: both arenas have the same layout.
  p.for_each("", [&](const std::string& name, auto v, parameter_role) {
    entries.push_back({name, v.data(), g_memory.data() + (v.data() - p_memory.data()), v.size()});
  });
  CHECK(entries.size() == 1 + 12);
  const auto res = check_gradients(entries, loss);
  MESSAGE(res.describe());
  CHECK(res.worst < 1e-6);
}

#if defined(_OPENMP)
// Everything a block, the embedding, the subsets and the loss compute, for a batch whose
// tensors are above the parallel threshold (32 Ki elements), on `threads` threads.
std::vector<double> run_large_step(int threads) {
  using config = vit_config<28, 1, 4, 64, 2, 2>::with_position<position_embedding::learned>;
  omp_set_num_threads(threads);
  classifier_pipeline<config, float, 25, 10> net(24, 5);
  fill(net.images, 6);
  fill(net.head_weight, 7, 0.2);
  for (std::size_t b = 0; b < 24; ++b) {
    net.labels(b) = std::int32_t(b % 10);
    for (std::size_t i = 0; i < 25; ++i) net.index(b, i) = std::int32_t((b + 2 * i) % 49);
  }
  std::vector<double> out{net.forward()};
  net.backward();
  const auto g = net.encoder.flat_grads();
  out.insert(out.end(), g.data(), g.data() + g.size());
  out.insert(out.end(), net.act.output.data(), net.act.output.data() + net.act.output.size());
  return out;
}

TEST_CASE("above the parallel threshold, two threads compute what one thread does") {
  const int saved = omp_get_max_threads();
  const auto one = run_large_step(1);
  const auto two = run_large_step(2);
  omp_set_num_threads(saved);
  // Each thread sums whole rows or whole columns, so only the GEMMs may differ: OpenBLAS's
  // Haswell/Zen kernels round a row differently with the partition of the product (up to 3e-5
  // relative after two blocks, measured on AMD EPYC); a race would be off by far more.
  const auto c = splitmask::testing::compare(two, one, 1e-6, 1e-4);
  CHECK_MESSAGE(c.ok, c.describe());
}
#endif

TEST_CASE("the whole encoder (learned positions, a token subset, a head): finite differences") {
  classifier_pipeline<learned_config, double, 5, 5> net(3, 41);
  // Weights larger than the initialisation's, so that every path carries gradient.
  auto flat = net.encoder.flat_params();
  for (std::size_t i = 0; i < flat.size(); ++i) flat(i) += 0.2 * counter_rng(42).normal<double>(i);
  fill(net.head_weight, 43, 0.3), fill(net.head_bias, 44, 0.1), fill(net.images, 45);
  // Position 8 is in no subset: its learned position must get no gradient.
  const std::int32_t index[15] = {1, 4, 0, 3, 5, 7, 2, 6, 3, 0, 3, 4, 5, 6, 1};
  for (std::size_t i = 0; i < 15; ++i) net.index.data()[i] = index[i];
  for (std::size_t b = 0; b < 3; ++b) net.labels(b) = std::int32_t((2 * b + 1) % 5);
  net.forward();
  net.backward();
  std::vector<gradient_entry> entries;
  const auto grads = net.encoder.flat_grads();
  net.encoder.params().for_each([&](const std::string& name, auto v, parameter_role) {
    entries.push_back({name, v.data(), grads.data() + (v.data() - flat.data()), v.size()});
  });
  entries.push_back({"head.weight", net.head_weight.data(), net.d_head_weight.data(), 80});
  entries.push_back({"head.bias", net.head_bias.data(), net.d_head_bias.data(), 5});
  const auto res = check_gradients(
      entries, [&] { return net.forward(); }, 1e-3, 64);
  MESSAGE(res.describe());
  CHECK(res.worst < 1e-6);
  const auto d_position = grads.data() + (net.encoder.params().position.data() - flat.data());
  for (std::size_t c = 0; c < 16; ++c) CHECK(d_position[8 * 16 + c] == 0.0);
  CHECK(d_position[7 * 16 + 3] != 0.0);
}

TEST_CASE("the encoder checks its batch; vit_features follows the batch it is given") {
  vit_encoder<golden_config> encoder(3);
  vit_encoder<golden_config>::activations<9> act(2);
  tensor<float, extents<dynamic, 9, 16>> x(3);
  CHECK_THROWS_AS(encoder.forward(act, x), shape_error);

  tensor<float, vit_encoder<golden_config>::image_extents> two(2), three(3);
  fill(three, 5);
  copy(two, three.slice(0, 2));
  vit_features<golden_config> features;
  const auto f3 = features(encoder, three);
  const std::vector<double> first(f3.data(), f3.data() + 2 * 16);
  const auto f2 = features(encoder, two);
  CHECK(f2.batch() == 2);
  // Images do not interact. Equal up to rounding: a GEMM may round a row differently when the
  // number of rows changes (OpenBLAS's Haswell/Zen kernels do).
  const auto c = splitmask::testing::compare(f2.data(), first.data(), first.size(), 1e-6, 1e-5);
  CHECK_MESSAGE(c.ok, c.describe());
}

TEST_CASE("the gradient check detects a wrong gradient") {
  double x[3] = {0.5, -1.0, 2.0};
  const double wrong[3] = {2 * 0.5, 2 * -1.0, 2 * 2.0 * 1.001};  // d(x²)/dx, one 0.1% off
  const auto res = check_gradients({{"x", x, wrong, 3}},
                                   [&] { return x[0] * x[0] + x[1] * x[1] + x[2] * x[2]; });
  CHECK(res.index == 2);
  CHECK(res.worst > 5e-4);
}

// ---- the golden comparison with PyTorch ----------------------------------------------------

TEST_CASE("golden: forward, loss and every gradient equal PyTorch's in float32") {
  const auto fx = load_fixture("vit_fixture.json");
  const auto& cfg = fx.at("config");
  REQUIRE(cfg.at("image_size") == golden_config::image_size);
  REQUIRE(cfg.at("channels") == golden_config::channels);
  REQUIRE(cfg.at("patch_size") == golden_config::patch_size);
  REQUIRE(cfg.at("width") == golden_config::width);
  REQUIRE(cfg.at("depth") == golden_config::depth);
  REQUIRE(cfg.at("heads") == golden_config::heads);
  REQUIRE(cfg.at("layer_norm_eps").get<double>() == golden_config::layer_norm_eps);
  REQUIRE(cfg.at("subset") == 5);
  REQUIRE(cfg.at("classes") == 5);
  const std::size_t batch = cfg.at("batch");

  classifier_pipeline<golden_config, float, 5, 5> net(batch);
  std::size_t loaded = 0;
  net.encoder.params().for_each([&](const std::string& name, auto v, parameter_role) {
    load(fx.at("parameters").at(name), name, v);
    ++loaded;
  });
  load(fx.at("parameters").at("head.weight"), "head.weight", net.head_weight.view());
  load(fx.at("parameters").at("head.bias"), "head.bias", net.head_bias.view());
  CHECK(loaded + 2 == fx.at("parameters").size());  // every fixture tensor has a home
  load(fx.at("inputs").at("images"), "images", net.images.view());
  load(fx.at("inputs").at("index"), "index", net.index.view());
  load(fx.at("inputs").at("labels"), "labels", net.labels.view());

  const double loss = net.forward();
  const double loss_ref = fx.at("outputs").at("loss");
  CHECK(std::abs(loss - loss_ref) / std::abs(loss_ref) < 1e-5);
  const double encoded = relative_error(net.act.output, fx.at("outputs").at("encoded"));
  const double features = relative_error(net.pooled, fx.at("outputs").at("features"));
  vit_features<golden_config> full;
  const double features_full =
      relative_error(full(net.encoder, net.images), fx.at("outputs").at("features_full"));
  MESSAGE("loss " << loss << " (PyTorch " << loss_ref << "); relative errors: encoded " << encoded
                  << ", features " << features << ", all-patch features " << features_full);
  // The bound is 1e-4; float32 round-off alone gives a few 1e-7, so 1e-5 is kept.
  CHECK(encoded < 1e-5);
  CHECK(features < 1e-5);
  CHECK(features_full < 1e-5);

  net.backward();
  double worst = 0;
  std::string worst_name;
  std::size_t compared = 0;
  auto check_gradient = [&](const std::string& name, const auto& g) {
    const double e = relative_error(g, fx.at("gradients").at(name));
    ++compared;
    if (!(e <= worst)) worst = e, worst_name = name;
  };
  const auto params = net.encoder.flat_params();
  const auto grads = net.encoder.flat_grads();
  net.encoder.params().for_each([&](const std::string& name, auto v, parameter_role) {
    check_gradient(name,
                   tensor_view<float, extents<dynamic>>(grads.data() + (v.data() - params.data()),
                                                        extents<dynamic>(v.size())));
  });
  check_gradient("head.weight", net.d_head_weight.view());
  check_gradient("head.bias", net.d_head_bias.view());
  MESSAGE("gradients of " << compared << " tensors: worst ‖Δ‖/‖ref‖ " << worst << " (" << worst_name
                          << ")");
  CHECK(compared == fx.at("gradients").size());
  CHECK(worst < 1e-5);
}

}  // namespace
