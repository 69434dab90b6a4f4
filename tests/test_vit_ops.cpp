// The ViT's ops: each forward against a naive double reference, each backward against central
// finite differences in double, and the write/accumulate modes.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "reference/vit_reference.hpp"
#include "splitmask/backend/cpu/simd.hpp"
#include "splitmask/ops/attention.hpp"
#include "splitmask/ops/cross_entropy.hpp"
#include "splitmask/ops/gelu.hpp"
#include "splitmask/ops/layernorm.hpp"
#include "splitmask/ops/linear.hpp"
#include "splitmask/ops/patchify.hpp"
#include "splitmask/ops/position_embedding.hpp"
#include "splitmask/ops/tokens.hpp"
#include "splitmask/tensor/expr/random.hpp"
#include "splitmask/tensor/tensor.hpp"
#include "support/compare.hpp"
#include "support/gradcheck.hpp"

namespace {

using namespace splitmask;
using splitmask::testing::check_gradients;
using splitmask::testing::compare;
using splitmask::testing::gradient_entry;
using splitmask::testing::tolerance;

constexpr double gradient_tolerance = 1e-6;  // worst relative error of central differences

template <class X>
void fill(X& x, std::uint64_t seed, double scale = 1.0) {
  using T = typename std::decay_t<decltype(x.view())>::value_type;
  x = normal<T>(counter_rng(seed), x.extents(), T(0), T(scale));
}

template <class X>
std::vector<double> values(const X& x) {
  const auto v = x.view();
  return std::vector<double>(v.data(), v.data() + v.size());
}

// Σ out ⊙ r: the scalar whose gradient with respect to out is r.
template <class X, class R>
double dot(const X& out, const R& r) {
  const auto a = out.view();
  const auto b = r.view();
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += double(a.data()[i]) * double(b.data()[i]);
  return s;
}

std::vector<double> twice(std::vector<double> v) {
  for (auto& x : v) x *= 2;
  return v;
}

// Equal up to double round-off (accumulating GEMMs may sum in another order).
bool same(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && compare(a, b, 1e-14, 1e-12).ok;
}

template <class X>
gradient_entry entry(const char* name, X& x, const X& grad) {
  return {name, x.data(), grad.data(), x.size()};
}

// ---- linear --------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("linear forward equals the naive product: overwriting, accumulating, residual", T, float,
                   double) {
  tensor<T, extents<dynamic, 5, 7>> x(3);
  tensor<T, extents<11, 7>> w;
  tensor<T, extents<11>> b;
  tensor<T, extents<dynamic, 5, 11>> y(3), y0(3);
  fill(x, 1), fill(w, 2), fill(b, 3), fill(y0, 4);
  const auto ref = reference::linear(values(x), values(w), values(b), 15, 7, 11);
  linear_forward(y, x, w, b);
  const auto c = compare(values(y), ref, tolerance<T>::atol * 10, tolerance<T>::rtol * 10);
  CHECK_MESSAGE(c.ok, c.describe());

  y = y0;
  linear_forward(y, x, w, b, write_mode::accumulate);
  auto ref_acc = ref;
  const auto prior = values(y0);
  for (std::size_t i = 0; i < ref_acc.size(); ++i) ref_acc[i] += prior[i];
  const auto ca = compare(values(y), ref_acc, tolerance<T>::atol * 10, tolerance<T>::rtol * 10);
  CHECK_MESSAGE(ca.ok, "accumulate: " << ca.describe());

  tensor<T, extents<dynamic, 5, 11>> out(3);
  out = T(7);  // overwritten, not read
  linear_forward_residual(out, y0, x, w, b);
  const auto cr = compare(values(out), ref_acc, tolerance<T>::atol * 10, tolerance<T>::rtol * 10);
  CHECK_MESSAGE(cr.ok, "residual: " << cr.describe());
}

TEST_CASE("linear backward: finite differences of x, W and b") {
  tensor<double, extents<dynamic, 4, 6>> x(2), dx(2);
  tensor<double, extents<9, 6>> w, dw;
  tensor<double, extents<9>> b, db;
  tensor<double, extents<dynamic, 4, 9>> y(2), r(2);
  fill(x, 1), fill(w, 2), fill(b, 3), fill(r, 4);
  linear_backward(dx, dw, db, r, x, w);
  const auto res = check_gradients({entry("x", x, dx), entry("W", w, dw), entry("b", b, db)}, [&] {
    linear_forward(y, x, w, b);
    return dot(y, r);
  });
  MESSAGE(res.describe());
  CHECK(res.worst < gradient_tolerance);

  // Parameter gradients accumulate; the input gradient accumulates on request.
  const auto dw1 = values(dw);
  const auto db1 = values(db);
  const auto dx1 = values(dx);
  linear_backward(dx, dw, db, r, x, w, write_mode::accumulate);
  CHECK(same(values(dw), twice(dw1)));

  // dx may reuse x's memory: the weight gradient reads x first.
  tensor<double, extents<9, 6>> dw_in_place;
  tensor<double, extents<9>> db_in_place;
  auto x_then_dx = x.clone();
  linear_backward(x_then_dx, dw_in_place, db_in_place, r, x_then_dx, w);
  CHECK(same(values(dw_in_place), dw1));
  CHECK(same(values(x_then_dx), dx1));
  CHECK(same(values(db), twice(db1)));
  CHECK(same(values(dx), twice(dx1)));
}

// ---- LayerNorm -----------------------------------------------------------------------------

TEST_CASE_TEMPLATE("layernorm forward equals the definition and saves mean and rstd", T, float,
                   double) {
  tensor<T, extents<dynamic, 3, 33>> x(4), y(4);
  tensor<T, extents<dynamic, 3, 1>> mean(4), rstd(4);
  tensor<T, extents<33>> g, b;
  fill(x, 5, 3.0), fill(g, 6), fill(b, 7);
  x = x + T(10);  // an offset larger than the spread: the variance must be computed centred
  layernorm_forward(y, mean, rstd, x, g, b, 1e-5);
  const auto ref = reference::layernorm(values(x), values(g), values(b), 12, 33, 1e-5);
  const auto c = compare(values(y), ref, tolerance<T>::atol * 20, tolerance<T>::rtol * 20);
  CHECK_MESSAGE(c.ok, c.describe());
  double m = 0;
  for (std::size_t i = 0; i < 33; ++i) m += double(x(1, 2, i)) / 33;
  CHECK(double(mean(1, 2, 0)) == doctest::Approx(m).epsilon(1e-6));
}

TEST_CASE("layernorm backward: finite differences of x, gamma and beta") {
  tensor<double, extents<dynamic, 3, 8>> x(2), y(2), dx(2), r(2);
  tensor<double, extents<dynamic, 3, 1>> mean(2), rstd(2);
  tensor<double, extents<8>> g, b, dg, db;
  fill(x, 8), fill(g, 9), fill(b, 10), fill(r, 11);
  layernorm_forward(y, mean, rstd, x, g, b, 1e-5);
  layernorm_backward(dx, dg, db, r, x, mean, rstd, g);
  const auto res =
      check_gradients({entry("x", x, dx), entry("gamma", g, dg), entry("beta", b, db)}, [&] {
        layernorm_forward(y, mean, rstd, x, g, b, 1e-5);
        return dot(y, r);
      });
  MESSAGE(res.describe());
  CHECK(res.worst < gradient_tolerance);

  const auto dx1 = values(dx);
  const auto dg1 = values(dg);
  const auto db1 = values(db);
  layernorm_backward(dx, dg, db, r, x, mean, rstd, g, write_mode::accumulate);
  CHECK(same(values(dx), twice(dx1)));
  CHECK(same(values(dg), twice(dg1)));
  CHECK(same(values(db), twice(db1)));

  // In place (dx is dy): the same dx, and gamma's and beta's gradients still read dy.
  dg = 0.0;
  db = 0.0;
  auto d = r.clone();
  layernorm_backward(d, dg, db, d, x, mean, rstd, g);
  CHECK(same(values(d), dx1));
  CHECK(same(values(dg), dg1));
  CHECK(same(values(db), db1));
}

// ---- GELU ----------------------------------------------------------------------------------

// Distance in units in the last place between two finite floats of one sign, or 0 and a tiny.
std::int64_t ulps(float a, float b) {
  std::int32_t ia, ib;
  std::memcpy(&ia, &a, sizeof a);
  std::memcpy(&ib, &b, sizeof b);
  return ia > ib ? std::int64_t(ia) - ib : std::int64_t(ib) - ia;
}

// f over `width` inputs as one pack and as plain floats (a loop's tail): they must agree bit for bit.
template <class F>
bool packs_equal_tails(const float* x, F f) {
#if defined(SPLITMASK_HAS_VECTOR_EXTENSIONS)
  namespace simd = backend::cpu::simd;
  float packed[simd::width];
  simd::store(packed, f(simd::load(simd::float_pack{}, x)));
  for (std::size_t l = 0; l < simd::width; ++l) {
    const float single = f(x[l]);
    if (std::memcmp(&packed[l], &single, sizeof single) != 0) return false;
  }
#else
  (void)x, (void)f;
#endif
  return true;
}

TEST_CASE("simd exp: within 1 ulp of e^x from underflow to overflow; inf, NaN; packs = tails") {
  namespace simd = backend::cpu::simd;
  const auto exp_of = [](auto v) { return simd::exp(v); };
  std::int64_t worst = 0;
  float worst_x = 0;
  bool packs_ok = true;
  float x[simd::width];
  std::size_t lane = 0;
  for (double v = -103.0; v < 88.72; v += 0.000977) {  // 196 000 points, subnormals included
    const float f = float(v);
    const float want = float(std::exp(double(f)));
    const std::int64_t u = ulps(simd::exp(f), want);
    if (u > worst) worst = u, worst_x = f;
    x[lane++] = f;
    if (lane == simd::width) packs_ok = packs_ok && packs_equal_tails(x, exp_of), lane = 0;
  }
  MESSAGE("worst " << worst << " ulp at x = " << worst_x);
  CHECK(worst <= 1);
  CHECK(packs_ok);
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(simd::exp(-inf) == 0.f);
  CHECK(simd::exp(-120.f) == 0.f);
  CHECK(simd::exp(0.f) == 1.f);
  CHECK(simd::exp(88.73f) == inf);
  CHECK(simd::exp(inf) == inf);
  CHECK(std::isnan(simd::exp(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("gelu in float: within float rounding of the double erf form, NaN propagates") {
  tensor<float, extents<dynamic, 1000>> x(8), y(8), dx(8), ones(8);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = -12.f + 24.f * float(i) / 8000.f;
  ones = 1.f;
  gelu_forward(y, x);
  gelu_backward(dx, ones, x);
  double worst_y = 0, worst_dx = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double v = x.data()[i];
    const double phi = std::exp(-0.5 * v * v) / std::sqrt(2 * 3.14159265358979323846);
    const double cdf = 0.5 * (1 + std::erf(v / std::sqrt(2.0)));
    // Phi is within 7.5e-8: y is off by |x| times that, plus rounding of y itself.
    worst_y = std::max(worst_y, std::abs(y.data()[i] - reference::gelu(v)) / (1 + std::abs(v)));
    worst_dx = std::max(worst_dx, std::abs(dx.data()[i] - (cdf + v * phi)) / (1 + std::abs(v)));
  }
  MESSAGE("worst |error| / (1 + |x|): gelu " << worst_y << ", gelu' " << worst_dx);
  CHECK(worst_y < 2e-7);
  CHECK(worst_dx < 2e-7);
  tensor<float, extents<dynamic, 3>> n(1), out(1);
  n.data()[0] = std::numeric_limits<float>::quiet_NaN(), n.data()[1] = 1.f, n.data()[2] = -1.f;
  gelu_forward(out, n);
  CHECK(std::isnan(out.data()[0]));
  CHECK(out.data()[1] == doctest::Approx(reference::gelu(1.0)).epsilon(1e-6));
}


TEST_CASE("gelu: forward is the erf form, backward matches finite differences") {
  tensor<double, extents<dynamic, 17>> x(3), y(3), dx(3), r(3);
  fill(x, 12, 2.0), fill(r, 13);
  gelu_forward(y, x);
  std::vector<double> ref;
  for (double v : values(x)) ref.push_back(reference::gelu(v));
  const auto c = compare(values(y), ref, 1e-15, 1e-14);
  CHECK_MESSAGE(c.ok, c.describe());
  gelu_backward(dx, r, x);
  auto in_place = r.clone();
  gelu_backward(in_place, in_place, x);
  CHECK(same(values(in_place), values(dx)));
  const auto res = check_gradients({entry("x", x, dx)}, [&] {
    gelu_forward(y, x);
    return dot(y, r);
  });
  MESSAGE(res.describe());
  CHECK(res.worst < gradient_tolerance);
}

// ---- attention -----------------------------------------------------------------------------

template <class T, std::size_t N, std::size_t D, std::size_t H>
struct attention_buffers {
  tensor<T, extents<dynamic, N, N>> probs, d_probs;
  attention_saved<T, N, D, H> saved;
  attention_scratch<T, N, D, H> scratch;
  explicit attention_buffers(std::size_t b)
      : probs(b * H), d_probs(b * H), saved{probs.view()}, scratch{d_probs.view()} {}
};

TEST_CASE_TEMPLATE("attention forward equals the naive per-head softmax", T, float, double) {
  constexpr std::size_t N = 7, D = 12, H = 3;
  attention_buffers<T, N, D, H> buf(2);
  tensor<T, extents<dynamic, N, 3 * D>> qkv(2);
  tensor<T, extents<dynamic, N, D>> out(2);
  fill(qkv, 14, 1.5);
  attention_forward(out, buf.saved, qkv);
  const auto ref = reference::attention(values(qkv), 2, N, D, H);
  const auto c = compare(values(out), ref, tolerance<T>::atol * 10, tolerance<T>::rtol * 10);
  CHECK_MESSAGE(c.ok, c.describe());
}

TEST_CASE("attention backward: finite differences of qkv") {
  constexpr std::size_t N = 5, D = 8, H = 2;
  attention_buffers<double, N, D, H> buf(2);
  tensor<double, extents<dynamic, N, 3 * D>> qkv(2), dqkv(2);
  tensor<double, extents<dynamic, N, D>> out(2), r(2);
  fill(qkv, 15, 1.5), fill(r, 16);
  attention_forward(out, buf.saved, qkv);
  attention_backward(dqkv, buf.scratch, r, buf.saved, qkv);
  const auto res = check_gradients({entry("qkv", qkv, dqkv)}, [&] {
    attention_forward(out, buf.saved, qkv);
    return dot(out, r);
  });
  MESSAGE(res.describe());
  CHECK(res.worst < gradient_tolerance);
}

// ---- patches, positions, token subsets, pooling --------------------------------------------

TEST_CASE("patchify follows the definition, unpatchify inverts it, and is its gradient") {
  tensor<double, extents<dynamic, 2, 8, 8>> images(3), back(3), d_images(3);
  tensor<double, extents<dynamic, 4, 32>> patches(3), r(3);
  fill(images, 17), fill(r, 18);
  patchify<4>(patches, images);
  CHECK(values(patches) == reference::patchify(values(images), 3, 2, 8, 4));
  unpatchify<4>(back, patches);
  CHECK(values(back) == values(images));
  unpatchify<4>(d_images, r);
  const auto res = check_gradients({entry("images", images, d_images)}, [&] {
    patchify<4>(patches, images);
    return dot(patches, r);
  });
  MESSAGE(res.describe());
  CHECK(res.worst < gradient_tolerance);
}

TEST_CASE(
    "the sin-cos position embedding is MAE's: columns in the first half, rows in the second") {
  tensor<double, extents<9, 8>> pos;
  sincos_position_embedding<3>(pos);
  // Token 5 is row 1, column 2. D/4 = 2 frequencies: 1 and 1/100.
  const double expected[8] = {std::sin(2.0), std::sin(0.02), std::cos(2.0), std::cos(0.02),
                              std::sin(1.0), std::sin(0.01), std::cos(1.0), std::cos(0.01)};
  for (std::size_t c = 0; c < 8; ++c)
    CHECK(pos(5, c) == doctest::Approx(expected[c]).epsilon(1e-15));
}

TEST_CASE("gather and scatter of token subsets are each other's gradient") {
  tensor<double, extents<dynamic, 6, 4>> all(2), d_all(2), all2(2);
  tensor<double, extents<dynamic, 3, 4>> sub(2), r(2), d_sub(2), r_all_sub(2);
  tensor<std::int32_t, extents<dynamic, 3>> index(2);
  const std::int32_t idx[6] = {4, 0, 2, 5, 3, 1};
  for (std::size_t i = 0; i < 6; ++i) index.data()[i] = idx[i];
  fill(all, 19), fill(r, 20);
  gather_tokens(sub, all, index);
  CHECK(sub(1, 2, 3) == all(1, 1, 3));
  CHECK(sub(0, 0, 1) == all(0, 4, 1));
  scatter_tokens(d_all, r, index);  // gather's gradient (d_all starts at 0)
  const auto res = check_gradients({entry("all", all, d_all)}, [&] {
    gather_tokens(sub, all, index);
    return dot(sub, r);
  });
  MESSAGE(res.describe());
  CHECK(res.worst < gradient_tolerance);

  // scatter overwrites only the named rows; accumulate adds.
  all2 = 1.0;
  scatter_tokens(all2, r, index);
  CHECK(all2(0, 1, 0) == 1.0);
  CHECK(all2(0, 4, 2) == r(0, 0, 2));
  scatter_tokens(all2, r, index, write_mode::accumulate);
  CHECK(all2(0, 4, 2) == 2 * r(0, 0, 2));

  index.data()[3] = 6;
  CHECK_THROWS_AS(gather_tokens(sub, all, index), shape_error);
  index.data()[3] = -1;
  CHECK_THROWS_AS(scatter_tokens(all, sub, index), shape_error);
}

TEST_CASE("mean pooling of tokens and its gradient") {
  tensor<double, extents<dynamic, 5, 3>> x(2), dx(2);
  tensor<double, extents<dynamic, 3>> pooled(2), r(2);
  fill(x, 21), fill(r, 22);
  mean_tokens_forward(pooled, x);
  double m = 0;
  for (std::size_t t = 0; t < 5; ++t) m += x(1, t, 2) / 5;
  CHECK(pooled(1, 2) == doctest::Approx(m));
  mean_tokens_backward(dx, r);
  const auto dx1 = values(dx);
  mean_tokens_backward(dx, r, write_mode::accumulate);
  CHECK(same(values(dx), twice(dx1)));
  mean_tokens_backward(dx, r);
  const auto res = check_gradients({entry("x", x, dx)}, [&] {
    mean_tokens_forward(pooled, x);
    return dot(pooled, r);
  });
  MESSAGE(res.describe());
  CHECK(res.worst < gradient_tolerance);
}

// ---- cross-entropy -------------------------------------------------------------------------

TEST_CASE_TEMPLATE("cross-entropy equals the definition, stable for large logits", T, float,
                   double) {
  tensor<T, extents<dynamic, 10>> logits(6);
  tensor<T, extents<dynamic>> lse(6);
  tensor<std::int32_t, extents<dynamic>> target(6);
  fill(logits, 23, 3.0);
  logits = logits + T(80);  // exp(80) overflows float: only a stable form survives this
  std::vector<int> t;
  for (std::size_t i = 0; i < 6; ++i) t.push_back(int(target(i) = std::int32_t((i * 7) % 10)));
  const double loss = cross_entropy_forward(lse, logits, target);
  CHECK(loss == doctest::Approx(reference::cross_entropy(values(logits), t, 10)).epsilon(1e-5));
  target(2) = 10;
  CHECK_THROWS_AS(cross_entropy_forward(lse, logits, target), shape_error);
  CHECK_THROWS_AS(cross_entropy_backward(logits, logits, lse, target), shape_error);
  target(2) = -1;
  CHECK_THROWS_AS(cross_entropy_forward(lse, logits, target), shape_error);
}

TEST_CASE("cross-entropy backward: finite differences of the logits") {
  tensor<double, extents<dynamic, 6>> logits(4), d_logits(4);
  tensor<double, extents<dynamic>> lse(4);
  tensor<std::int32_t, extents<dynamic>> target(4);
  fill(logits, 24, 2.0);
  for (std::size_t i = 0; i < 4; ++i) target(i) = std::int32_t(i + 1);
  cross_entropy_forward(lse, logits, target);
  cross_entropy_backward(d_logits, logits, lse, target, 0.5);
  auto in_place = logits.clone();
  cross_entropy_backward(in_place, in_place, lse, target, 0.5);
  CHECK(same(values(in_place), values(d_logits)));
  const auto res = check_gradients({entry("logits", logits, d_logits)}, [&] {
    return 0.5 * cross_entropy_forward(lse, logits, target);
  });
  MESSAGE(res.describe());
  CHECK(res.worst < gradient_tolerance);
}

}  // namespace
