// SplitMask pre-training: the split sampler, the tokenizer, InfoNCE, the whole loss's gradient by
// finite differences, the golden comparison with PyTorch (losses, gradients, 3 AdamW steps), the
// BEiT variant, that a step allocates nothing, and an over-fitting check.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "splitmask/ops/infonce.hpp"
#include "splitmask/tensor/expr/random.hpp"
#include "splitmask/tokenizer/patch_tokenizer.hpp"
#include "splitmask/train/objectives/beit.hpp"
#include "splitmask/train/objectives/mae.hpp"
#include "splitmask/train/objectives/splitmask.hpp"
#include "splitmask/train/split_sampler.hpp"
#include "splitmask/train/trainer.hpp"
#include "support/fixture.hpp"
#include "support/gradcheck.hpp"
#include "support/model_gradients.hpp"
#include "support/synthetic_images.hpp"

// Every allocation through operator new in this program is counted, so that a test can check
// that a training step allocates nothing once it has run once.
namespace {
std::atomic<std::size_t> allocations{0};
void* counted_allocation(std::size_t bytes, std::size_t alignment) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  bytes = bytes == 0 ? 1 : bytes;
  void* p = alignment <= alignof(std::max_align_t)
                ? std::malloc(bytes)
                : std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace
void* operator new(std::size_t bytes) { return counted_allocation(bytes, 0); }
void* operator new(std::size_t bytes, std::align_val_t a) {
  return counted_allocation(bytes, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

using namespace splitmask;
using splitmask::testing::check_gradients;
using splitmask::testing::gradient_entry;
using splitmask::testing::load;
using splitmask::testing::load_fixture;

// The golden fixture's model: 12 x 12 x 2 images, patch 4 (N = 9), D 16, depth 2, 2 heads;
// decoder 2 blocks of width 12 with 2 heads; K = 7; N_A = 4, N_B = 5.
using tiny = vit_config<12, 2, 4, 16, 2, 2>;
using tiny_splitmask = splitmask_objective<7, std::ratio<1, 2>, decoder_config<12, 2, 2>>;
using tiny_beit = beit_objective<7>;

template <class X>
void fill(X& x, std::uint64_t seed, double scale = 1.0) {
  using T = typename std::decay_t<decltype(x.view())>::value_type;
  x = normal<T>(counter_rng(seed), x.extents(), T(0), T(scale));
}

// ---- split sampler -------------------------------------------------------------------------

TEST_CASE("split sampler: disjoint subsets covering every patch, sorted, seeded") {
  using cfg = presets::vit_ti4_28;
  using sampler_type =
      split_sampler<cfg::patches, patch_split<cfg::patches, std::ratio<1, 2>>::kept>;
  static_assert(sampler_type::N_A == 24 && sampler_type::N_B == 25);
  sampler_type sampler(11);
  tensor<std::int32_t, extents<dynamic, 24>> a(8), a2(8), a3(4);
  tensor<std::int32_t, extents<dynamic, 25>> b(8), b2(8), b3(4);
  sampler.sample(a, b, 40);  // images 40 to 47 of the run
  for (std::size_t i = 0; i < 8; ++i) {
    std::vector<int> seen(49, 0);
    for (std::size_t j = 0; j < 24; ++j) ++seen[static_cast<std::size_t>(a(i, j))];
    for (std::size_t j = 0; j < 25; ++j) ++seen[static_cast<std::size_t>(b(i, j))];
    CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
    CHECK(std::is_sorted(a.data() + i * 24, a.data() + (i + 1) * 24));
    CHECK(std::is_sorted(b.data() + i * 25, b.data() + (i + 1) * 25));
  }
  sampler.sample(a2, b2, 40);
  CHECK(std::equal(a.data(), a.data() + a.size(), a2.data()));
  sampler.sample(a2, b2, 48);
  CHECK(!std::equal(a.data(), a.data() + a.size(), a2.data()));
  CHECK(!std::equal(a.data(), a.data() + 24, a.data() + 24));  // images differ
  CHECK(!std::equal(a.data(), a.data() + a.size(), a2.data()));
  // The split of an image depends on its number in the run, not on how batches are cut.
  sampler.sample(a3, b3, 44);
  CHECK(std::equal(a3.data(), a3.data() + a3.size(), a.data() + 4 * 24));
  // Another seed, other splits.
  sampler_type(12).sample(a2, b2, 40);
  CHECK(!std::equal(a.data(), a.data() + a.size(), a2.data()));
}

TEST_CASE("split sampler: every position is in subset A about N_A / N of the time") {
  using cfg = presets::vit_ti4_28;
  constexpr std::size_t images = 4000;
  split_sampler<cfg::patches, 24> sampler(12);
  tensor<std::int32_t, extents<dynamic, 24>> a(images);
  tensor<std::int32_t, extents<dynamic, 25>> b(images);
  sampler.sample(a, b, 0);
  std::vector<double> count(49, 0.0);
  for (std::size_t i = 0; i < a.size(); ++i) count[static_cast<std::size_t>(a.data()[i])] += 1;
  // Pearson's chi-square against the uniform expectation, 48 degrees of freedom. A count has
  // variance n p (1 - p), and within an image the 49 memberships are drawn without
  // replacement (they sum to N_A), which scales the statistic by N / (N - 1): both undone here.
  const double p = 24.0 / 49.0, expected = images * p;
  double chi2 = 0;
  for (double c : count) chi2 += (c - expected) * (c - expected) / (expected * (1 - p));
  chi2 *= 48.0 / 49.0;
  MESSAGE("chi-square of subset-A counts over 49 positions: " << chi2 << " (48 dof)");
  CHECK(chi2 < 84.0);  // the 0.1% critical value
  CHECK(chi2 > 23.0);  // the 99.9% one: a sampler this regular would not be random
}

// ---- tokenizer -----------------------------------------------------------------------------

TEST_CASE("tokenizer: ids are the brute-force argmax of cosine similarity, in double") {
  using cfg = vit_config<12, 2, 4, 16, 2, 2>;
  using tokenizer = patch_tokenizer<cfg, 32>;
  tensor<float, extents<dynamic, 2, 12, 12>> images(6);
  fill(images, 1);
  auto tok = tokenizer::sample(images, {0.1f, -0.2f}, {0.9f, 1.1f}, 3);
  const auto& v = tok.vocabulary();
  for (std::size_t k = 0; k < 32; ++k) {
    double n = 0;
    for (std::size_t c = 0; c < 32; ++c) n += double(v(k, c)) * v(k, c);
    CHECK(std::sqrt(n) == doctest::Approx(1.0).epsilon(1e-6));
  }
  tensor<float, extents<dynamic, 9, 32>> patches(6);
  patchify<4>(patches, images);
  tensor<std::int32_t, extents<dynamic, 9>> ids(6);
  tok.assign(ids, patches);
  std::size_t mismatches = 0;
  for (std::size_t r = 0; r < 54; ++r) {
    std::size_t best = 0;
    double best_score = -1e300;
    for (std::size_t k = 0; k < 32; ++k) {
      double dot = 0, norm = 0;
      for (std::size_t c = 0; c < 32; ++c) {
        const double x =
            (double(patches.data()[r * 32 + c]) - (c < 16 ? 0.1 : -0.2)) / (c < 16 ? 0.9 : 1.1);
        dot += x * v(k, c);
        norm += x * x;
      }
      if (dot / std::sqrt(norm) > best_score) best_score = dot / std::sqrt(norm), best = k;
    }
    mismatches += static_cast<std::size_t>(ids.data()[r]) != best;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("tokenizer: a patch at the channel means and a constant patch get defined ids") {
  using cfg = vit_config<12, 2, 4, 16, 2, 2>;
  using tokenizer = patch_tokenizer<cfg, 32>;
  tensor<float, extents<dynamic, 2, 12, 12>> images(4);
  fill(images, 2);
  auto tok = tokenizer::sample(images, {0.1f, -0.2f}, {0.9f, 1.1f}, 3);
  tensor<float, extents<dynamic, 9, 32>> patches(1);
  for (std::size_t c = 0; c < 32; ++c) {
    patches(0, 0, c) = c < 16 ? 0.1f : -0.2f;  // standardises to zero: no direction
    patches(0, 1, c) = 5.0f;                   // constant
    patches(0, 2, c) = 0.0f;                   // black
  }
  tensor<std::int32_t, extents<dynamic, 9>> ids(1);
  tok.assign(ids, patches);
  CHECK(ids(0, 0) == 0);  // all scores 0: the lowest id, never a NaN's
  for (std::size_t t = 0; t < 9; ++t) {
    CHECK(ids(0, t) >= 0);
    CHECK(ids(0, t) < 32);
  }
  // Images at the channel means everywhere cannot fill a vocabulary.
  tensor<float, extents<dynamic, 2, 12, 12>> flat(2);
  for (std::size_t i = 0; i < flat.size(); ++i) flat.data()[i] = (i % 288) < 144 ? 0.1f : -0.2f;
  CHECK_THROWS_AS(tokenizer::sample(flat, {0.1f, -0.2f}, {0.9f, 1.1f}, 3), shape_error);
  CHECK_THROWS_AS(tokenizer({0.f, 0.f}, {1.f, 0.f}), std::invalid_argument);
  // A zero row is refused and the vocabulary left as it was.
  tensor<float, extents<32, 32>> rows;
  rows = 1.0f;
  for (std::size_t c = 0; c < 32; ++c) rows(7, c) = 0.0f;
  const float before = tok.vocabulary()(0, 0);
  CHECK_THROWS_AS(tok.set_vocabulary(rows), std::invalid_argument);
  CHECK(tok.vocabulary()(0, 0) == before);
}

TEST_CASE("tokenizer: spherical k-means does not lower the mean similarity") {
  using cfg = vit_config<12, 2, 4, 16, 2, 2>;
  tensor<float, extents<dynamic, 2, 12, 12>> images(40);
  fill(images, 3);
  auto tok = patch_tokenizer<cfg, 16>::sample(images, {0.f, 0.f}, {1.f, 1.f}, 4);
  tensor<float, extents<dynamic, 9, 32>> patches(40);
  patchify<4>(patches, images);
  const double first = tok.refine(patches, 1);  // measured before its update: the sample's
  const double later = tok.refine(patches, 5);
  MESSAGE("mean cosine similarity: " << first << " for the sampled vocabulary, " << later
                                     << " after 5 iterations");
  CHECK(later >= first - 1e-6);
  CHECK(later > first);
}

// Whether vocabulary rows i and j point the same way (the rule sample() refuses repeats by).
template <class Tokenizer>
bool same_word(const Tokenizer& tok, std::size_t i, std::size_t j) {
  double product = 0;
  for (std::size_t c = 0; c < Tokenizer::L; ++c)
    product += double(tok.vocabulary()(i, c)) * tok.vocabulary()(j, c);
  return product > 1 - 1e-6;
}

TEST_CASE("tokenizer: distinct draws refuse a repeated word, and change nothing before one") {
  // Black images (under the channel mean 0.5: one direction) whose first row of 3 patches is
  // noise: two thirds of the patches are one word.
  using words = patch_tokenizer<tiny, 16>;
  tensor<float, extents<dynamic, 2, 12, 12>> images(40);
  fill(images, 5);
  for (std::size_t i = 0; i < 40; ++i)
    for (std::size_t c = 0; c < 2; ++c)
      for (std::size_t y = 4; y < 12; ++y)
        for (std::size_t x = 0; x < 12; ++x) images(i, c, y, x) = 0.0f;
  const std::array<float, 2> mean{0.5f, 0.5f}, std_dev{1.f, 1.f};
  const auto any = words::sample(images, mean, std_dev, 4);
  const auto distinct = words::sample(images, mean, std_dev, 4, word_draw::distinct);
  std::size_t repeats = 0, first_repeat = 16;
  for (std::size_t k = 0; k < 16; ++k)
    for (std::size_t j = 0; j < k; ++j) {
      if (same_word(any, k, j)) {
        ++repeats;
        first_repeat = std::min(first_repeat, k);
      }
      CHECK_FALSE(same_word(distinct, k, j));
    }
  MESSAGE(repeats << " repeated pairs among 16 words drawn from any patch, the first at word "
                  << first_repeat);
  CHECK(repeats > 0);
  for (std::size_t k = 0; k < first_repeat; ++k)
    for (std::size_t c = 0; c < tiny::patch_length; ++c)
      CHECK(distinct.vocabulary()(k, c) == any.vocabulary()(k, c));
  // All black: one direction, which fills any number of words but only one distinct word.
  images = 0.0f;
  CHECK_NOTHROW(words::sample(images, mean, std_dev, 4));
  CHECK_THROWS_WITH_AS(
      words::sample(images, mean, std_dev, 4, word_draw::distinct),
      doctest::Contains("and from each other"), shape_error);
}

// ---- InfoNCE -------------------------------------------------------------------------------

TEST_CASE("InfoNCE: ln B for identical descriptors, and its gradient by finite differences") {
  infonce_state<double, 6> state;
  tensor<double, extents<dynamic, 6>> pa(5), pb(5), da(5), db(5);
  pa = 1.0;
  pb = 2.0;
  CHECK(infonce_forward(state, pa, pb, 0.2) == doctest::Approx(std::log(5.0)));
  fill(pa, 4), fill(pb, 5);
  infonce_forward(state, pa, pb, 0.3);
  infonce_backward(da, db, state, 0.7);
  const auto res = check_gradients(
      {{"p_a", pa.data(), da.data(), pa.size()}, {"p_b", pb.data(), db.data(), pb.size()}},
      [&] { return 0.7 * infonce_forward(state, pa, pb, 0.3); });
  MESSAGE(res.describe());
  CHECK(res.worst < 1e-6);
}

// ---- the whole loss ------------------------------------------------------------------------

patch_tokenizer<tiny, 7> identity_tokenizer() {
  std::array<float, tiny::channels> mean{}, std_dev{};
  std_dev.fill(1.0f);
  return patch_tokenizer<tiny, 7>(mean, std_dev);
}

TEST_CASE("options no step could use are refused, naming the option") {
  pretrain_options options;
  options.warmup_steps = 100;
  options.total_steps = 50;
  using splitmask_trainer = trainer<tiny_splitmask, tiny>;
  CHECK_THROWS_AS(splitmask_trainer(4, options, {}, identity_tokenizer()), std::invalid_argument);
  CHECK_THROWS_AS(splitmask_trainer(4, {}, {0.0, 1.0}, identity_tokenizer()),
                  std::invalid_argument);  // tau
  CHECK_THROWS_AS(splitmask_trainer(4, {}, {0.2, -1.0}, identity_tokenizer()),
                  std::invalid_argument);  // lambda
  CHECK_THROWS_AS(splitmask_trainer(1, {}, {}, identity_tokenizer()), std::invalid_argument);
  // The schedule: warm-up from lr/warmup, the peak, the cosine's middle, the end.
  CHECK(warmup_cosine_lr(1.0, 0, 10, 110) == doctest::Approx(0.1));
  CHECK(warmup_cosine_lr(1.0, 9, 10, 110) == doctest::Approx(1.0));
  CHECK(warmup_cosine_lr(1.0, 60, 10, 110) == doctest::Approx(0.5));
  CHECK(warmup_cosine_lr(1.0, 110, 10, 110, 0.01) == doctest::Approx(0.01));
  CHECK(warmup_cosine_lr(1.0, 3, 10, 0) == doctest::Approx(0.4));
  CHECK(warmup_cosine_lr(1.0, 30, 10, 0) == doctest::Approx(1.0));
}

TEST_CASE("SplitMask: the whole loss's gradient by finite differences, every tensor") {
  pretrain_options options;
  options.seed = 21;
  trainer<tiny_splitmask, tiny, double> trainer(3, options, {0.5, 0.8}, identity_tokenizer());
  // Larger weights than the initialisation's, so that every path carries gradient.
  for (auto flat : {trainer.encoder().flat_params(), trainer.objective().decoder().flat_params()})
    for (std::size_t i = 0; i < flat.size(); ++i)
      flat(i) += 0.2 * counter_rng(22, flat.size()).normal<double>(i);
  tensor<double, extents<dynamic, 9, 32>> patches(3);
  fill(patches, 23);
  tensor<std::int32_t, extents<dynamic, 9>> ids(3);
  for (std::size_t i = 0; i < ids.size(); ++i) ids.data()[i] = std::int32_t((i * 5 + 1) % 7);
  tensor<std::int32_t, extents<dynamic, 4>> a(3);
  tensor<std::int32_t, extents<dynamic, 5>> b(3);
  split_sampler<9, 4>(24).sample(a, b, 0);
  trainer.objective().set_targets(ids, a, b);
  trainer.compute_gradients(patches);
  // A position in both subsets is refused (it would silently lose gradient).
  {
    auto bad = b.clone();
    bad(1, 0) = a(1, 0);
    CHECK_THROWS_AS(trainer.objective().set_targets(ids, a, bad), shape_error);
  }
  std::vector<std::vector<double>> analytic;
  const auto entries = splitmask::testing::model_gradient_entries(analytic, trainer.encoder(),
                                                                  trainer.objective().decoder());
  const auto res = check_gradients(
      entries, [&] { return trainer.compute_gradients(patches).total; }, 1e-3, 12);
  MESSAGE(res.describe() << " (" << entries.size() << " tensors)");
  CHECK(entries.size() == 28 + 31);  // encoder (sin-cos positions) and decoder
  CHECK(res.worst < 1e-6);
}

TEST_CASE("BEiT: the loss's gradient by finite differences, every tensor") {
  pretrain_options options;
  options.seed = 31;
  trainer<tiny_beit, tiny, double> trainer(2, options, {}, identity_tokenizer());
  for (auto flat : {trainer.encoder().flat_params(), trainer.objective().head().flat_params()})
    for (std::size_t i = 0; i < flat.size(); ++i)
      flat(i) += 0.2 * counter_rng(32, flat.size()).normal<double>(i);
  tensor<double, extents<dynamic, 9, 32>> patches(2);
  fill(patches, 33);
  tensor<std::int32_t, extents<dynamic, 9>> ids(2);
  for (std::size_t i = 0; i < ids.size(); ++i) ids.data()[i] = std::int32_t((i * 3 + 2) % 7);
  tensor<std::int32_t, extents<dynamic, 4>> visible(2);
  tensor<std::int32_t, extents<dynamic, 5>> masked(2);
  split_sampler<9, 4>(34).sample(visible, masked, 0);
  {
    auto repeated = masked.clone();
    repeated(0, 1) = repeated(0, 0);
    CHECK_THROWS_AS(trainer.objective().set_targets(ids, visible, repeated), shape_error);
  }
  trainer.objective().set_targets(ids, visible, masked);
  trainer.compute_gradients(patches);
  std::vector<std::vector<double>> analytic;
  const auto entries = splitmask::testing::model_gradient_entries(analytic, trainer.encoder(),
                                                                  trainer.objective().head());
  const auto res = check_gradients(
      entries, [&] { return trainer.compute_gradients(patches).total; }, 1e-3, 12);
  MESSAGE(res.describe());
  CHECK(res.worst < 1e-6);
}

// ---- golden comparison with PyTorch --------------------------------------------------------

TEST_CASE("golden: SplitMask losses, every gradient and 3 AdamW steps equal PyTorch's") {
  const auto fx = load_fixture("splitmask_fixture.json");
  const auto& cfg = fx.at("config");
  using model = tiny_splitmask::model<tiny, float, device::cpu>;
  REQUIRE(cfg.at("patches") == tiny::patches);
  REQUIRE(cfg.at("decoder_width") == model::Dd);
  REQUIRE(cfg.at("vocabulary_size") == model::K);
  REQUIRE(cfg.at("subset_a") == model::N_A);
  const std::size_t batch = cfg.at("batch");
  const auto& opt = fx.at("adamw");

  // The tokenizer: the fixture's vocabulary and statistics give the fixture's ids.
  const auto mean = cfg.at("channel_mean").get<std::vector<float>>();
  const auto std_dev = cfg.at("channel_std").get<std::vector<float>>();
  patch_tokenizer<tiny, 7> tokenizer({mean[0], mean[1]}, {std_dev[0], std_dev[1]});
  tensor<float, extents<7, 32>> vocabulary;
  load(fx.at("inputs").at("vocabulary"), "vocabulary", vocabulary.view());
  tokenizer.set_vocabulary(vocabulary);

  pretrain_options options;
  options.lr = opt.at("lr");
  options.clip = opt.at("clip");
  options.adamw.beta1 = opt.at("betas")[0];
  options.adamw.beta2 = opt.at("betas")[1];
  options.adamw.eps = opt.at("eps");
  options.adamw.weight_decay = opt.at("weight_decay");
  const splitmask_options splitmask{cfg.at("temperature"), cfg.at("lambda")};
  trainer<tiny_splitmask, tiny> trainer(batch, options, splitmask, std::move(tokenizer));

  std::size_t loaded = 0;
  auto load_all = [&](auto& model) {
    model.params().for_each([&](const std::string& name, auto v, parameter_role) {
      load(fx.at("parameters").at(name), name, v);
      ++loaded;
    });
  };
  load_all(trainer.encoder());
  load_all(trainer.objective().decoder());
  CHECK(loaded == fx.at("parameters").size());

  tensor<float, extents<dynamic, 2, 12, 12>> images(batch);
  tensor<float, extents<dynamic, 9, 32>> patches(batch);
  tensor<std::int32_t, extents<dynamic, 9>> ids(batch), ids_ref(batch);
  tensor<std::int32_t, extents<dynamic, 4>> a(batch);
  tensor<std::int32_t, extents<dynamic, 5>> b(batch);
  load(fx.at("inputs").at("images"), "images", images.view());
  load(fx.at("inputs").at("ids"), "ids", ids_ref.view());
  load(fx.at("inputs").at("index_a"), "index_a", a.view());
  load(fx.at("inputs").at("index_b"), "index_b", b.view());
  patchify<4>(patches, images);
  trainer.objective().tokenizer().assign(ids, patches);
  CHECK(std::equal(ids.data(), ids.data() + ids.size(), ids_ref.data()));

  trainer.objective().set_targets(ids, a, b);
  const auto losses = trainer.compute_gradients(patches);
  const auto& out = fx.at("outputs");
  auto rel = [](double got, double ref) { return std::abs(got - ref) / std::abs(ref); };
  MESSAGE("CE_A " << losses["ce_a"] << ", CE_B " << losses["ce_b"] << ", InfoNCE "
                  << losses["infonce"] << ", total " << losses.total << ", gradient norm "
                  << losses.grad_norm << " (PyTorch " << out.at("loss").get<double>() << ", "
                  << fx.at("grad_norm").get<double>() << ")");
  CHECK(rel(losses["ce_a"], out.at("ce_a")) < 1e-5);
  CHECK(rel(losses["ce_b"], out.at("ce_b")) < 1e-5);
  CHECK(rel(losses["infonce"], out.at("infonce")) < 1e-5);
  CHECK(rel(losses.total, out.at("loss")) < 1e-5);
  CHECK(rel(losses.grad_norm, fx.at("grad_norm")) < 1e-5);

  splitmask::testing::check_golden_gradients_and_steps(trainer, patches, fx);
}

TEST_CASE("bf16 products: a SplitMask step's losses and gradient norm stay near fp32's") {
  namespace cpu = backend::cpu;
  if (!cpu::bf16_products_available()) {
    MESSAGE("skipped: this CPU (" << cpu::cpu_isa() << ") or build has no bf16 products");
    return;
  }
  using small = vit_config<28, 1, 4, 64, 2, 4>;
  constexpr std::size_t B = 16;
  tensor<float, extents<dynamic, 1, 28, 28>> images(B);
  splitmask::testing::synthetic_images<1, 28>(images.data(), B, 5);
  const auto tokenizer = patch_tokenizer<small, 64>::sample(images, {0.2f}, {0.35f}, 1);
  trainer<splitmask_objective<64>, small> fp32(B, {}, {}, tokenizer);
  trainer<splitmask_objective<64>, small> bf16(B, {}, {}, tokenizer);
  auto rel = [](double got, double ref) { return std::abs(got - ref) / std::abs(ref); };
  for (int s = 0; s < 3; ++s) {
    const step_losses ref = fp32.step(images);
    const step_losses got = [&] {
      const cpu::matmul_precision_scope products(cpu::matmul_precision::bf16);
      return bf16.step(images);
    }();
    MESSAGE("step " << s << ": total " << got.total << " (fp32 " << ref.total << "), gradient norm "
                    << got.grad_norm << " (fp32 " << ref.grad_norm << ")");
    // bf16 keeps 8 bits of each operand: losses within 1%, the gradient's norm within 5%.
    for (const char* term : {"ce_a", "ce_b", "infonce"}) CHECK(rel(got[term], ref[term]) < 1e-2);
    CHECK(rel(got.grad_norm, ref.grad_norm) < 5e-2);
  }
}

// ---- learning ------------------------------------------------------------------------------

TEST_CASE("a SplitMask, BEiT or MAE step allocates no memory once the first step has run") {
  // Our code's allocations, with Eigen's products: oneDNN makes small heap allocations of its
  // own in every product it runs (memory objects, the argument map: 16 per product, measured
  // with oneDNN 2.6.3), which no caller can avoid.
  const backend::cpu::gemm_scope eigen_products(backend::cpu::gemm_library::eigen);
  using small = vit_config<28, 1, 4, 64, 2, 4>;
  constexpr std::size_t B = 40;  // tensors above the parallel threshold: threads run too
  tensor<float, extents<dynamic, 1, 28, 28>> images(B);
  splitmask::testing::synthetic_images<1, 28>(images.data(), B, 5);
  const auto tokenizer = patch_tokenizer<small, 64>::sample(images, {0.2f}, {0.35f}, 1);
  trainer<splitmask_objective<64>, small> splitmask(B, {}, {}, tokenizer);
  trainer<beit_objective<64>, small> beit(B, {}, {}, tokenizer);
  trainer<mae_objective<>, small> mae(B, {});
  splitmask.step(images);
  beit.step(images);
  mae.step(images);
  const std::size_t probe = allocations.load();
  int* volatile seen = new int(1);  // volatile: the compiler may not elide this pair
  delete seen;
  REQUIRE(allocations.load() == probe + 1);  // the counter sees allocations
  const std::size_t before = allocations.load();
  for (int s = 0; s < 2; ++s) {
    splitmask.step(images);
    beit.step(images);
    mae.step(images);
  }
  CHECK(allocations.load() - before == 0);
}

TEST_CASE("SplitMask over-fits 16 images: the loss more than halves in 200 steps") {
  using small = vit_config<28, 1, 4, 64, 4, 4>;
  constexpr std::size_t B = 16;
  tensor<float, extents<dynamic, 1, 28, 28>> images(B);
  splitmask::testing::synthetic_images<1, 28>(images.data(), B, 7);
  pretrain_options options;
  options.lr = 1.5e-2;
  options.warmup_steps = 20;
  options.total_steps = 200;
  options.seed = 3;
  trainer<splitmask_objective<64>, small> trainer(
      B, options, {}, patch_tokenizer<small, 64>::sample(images, {0.2f}, {0.35f}, 1));
  const auto first = trainer.step(images);
  MESSAGE("at initialisation: CE_A "
          << first["ce_a"] << ", CE_B " << first["ce_b"] << " (ln K = " << std::log(64.0)
          << "), InfoNCE " << first["infonce"] << " (ln B = " << std::log(double(B)) << ")");
  CHECK(std::abs(first["ce_a"] - std::log(64.0)) < 0.3);
  CHECK(std::abs(first["ce_b"] - std::log(64.0)) < 0.3);
  CHECK(std::abs(first["infonce"] - std::log(double(B))) < 0.05);
  step_losses last;
  for (int s = 1; s < 200; ++s) last = trainer.step(images);
  MESSAGE("after 200 steps: CE_A " << last["ce_a"] << ", CE_B " << last["ce_b"] << ", InfoNCE "
                                   << last["infonce"] << "; total " << first.total << " -> "
                                   << last.total);
  CHECK(last.total < 0.5 * first.total);
}

}  // namespace
