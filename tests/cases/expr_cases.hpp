// Expression tests shared by the CPU (tests/test_expr.cpp) and CUDA (tests/cuda/) suites: each
// op, broadcast and reduction against a naive double loop over odd and even shapes; aliasing
// and error cases. A suite instantiates them with SPLITMASK_EXPR_TEST_CASES(device, "prefix").
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "splitmask/core/extents.hpp"
#include "splitmask/core/rng.hpp"
#include "splitmask/tensor/expr/elementwise.hpp"
#include "splitmask/tensor/expr/random.hpp"
#include "splitmask/tensor/expr/reduce.hpp"
#include "splitmask/tensor/tensor.hpp"
#include "support/compare.hpp"
#include "support/device_io.hpp"

namespace splitmask::testing {

/// A value type, a shape (B, A, L) and its batch.
template <class T, std::size_t A, std::size_t L, std::size_t Batch>
struct expr_config {
  using value_type = T;
  using shape = extents<dynamic, A, L>;
  static constexpr std::size_t batch = Batch;
};

// odd and tiny; even; odd and above the CPU's parallel threshold (9 * 37 * 129 = 42957)
#define SPLITMASK_EXPR_CONFIGS                            \
  splitmask::testing::expr_config<float, 3, 5, 3>,        \
      splitmask::testing::expr_config<float, 8, 64, 2>,   \
      splitmask::testing::expr_config<float, 37, 129, 9>, \
      splitmask::testing::expr_config<double, 3, 5, 3>,   \
      splitmask::testing::expr_config<double, 37, 129, 9>

/// Inputs and an output on the device under test, with host copies for references.
template <class Device, class Config>
struct expr_fixture {
  using T = typename Config::value_type;
  using E = typename Config::shape;
  static constexpr std::size_t A = E::static_extent(1), L = E::static_extent(2);

  tensor<T, E> x{Config::batch}, y{Config::batch}, p{Config::batch};  // host
  tensor<T, E, Device> dx, dy, dp, out{Config::batch};
  std::size_t n = x.size();

  expr_fixture() {
    x = uniform<T>(counter_rng(11), x.extents(), T(-2), T(2));
    y = uniform<T>(counter_rng(12), y.extents(), T(-2), T(2));
    p = uniform<T>(counter_rng(13), p.extents(), T(0.1), T(3));  // positive: log, sqrt, rsqrt
    dx = on_device<Device>(x);
    dy = on_device<Device>(y);
    dp = on_device<Device>(p);
  }

  /// Checks `got` (any tensor) against ref(i) for each element index i.
  template <class Got, class Ref>
  void check(const char* name, const Got& got, Ref ref, double rtol_scale = 1) const {
    const auto values = host_values(got);
    std::vector<double> expected(values.size());
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = ref(i);
    const auto c =
        compare(values, expected, tolerance<T>::atol * rtol_scale, tolerance<T>::rtol * rtol_scale);
    CHECK_MESSAGE(c.ok, name << ": " << c.describe());
  }

  double X(std::size_t i) const { return static_cast<double>(x.data()[i]); }
  double Y(std::size_t i) const { return static_cast<double>(y.data()[i]); }
  double P(std::size_t i) const { return static_cast<double>(p.data()[i]); }
};

template <class Device, class Config>
void check_unary_ops() {
  expr_fixture<Device, Config> f;
  auto& o = f.out;
  const auto& x = f.dx;
  const auto& p = f.dp;
  // clang-format off
  o = -x;          f.check("neg", o, [&](std::size_t i) { return -f.X(i); });
  o = abs(x);      f.check("abs", o, [&](std::size_t i) { return std::abs(f.X(i)); });
  o = exp(x);      f.check("exp", o, [&](std::size_t i) { return std::exp(f.X(i)); });
  o = log(p);      f.check("log", o, [&](std::size_t i) { return std::log(f.P(i)); });
  o = sqrt(p);     f.check("sqrt", o, [&](std::size_t i) { return std::sqrt(f.P(i)); });
  o = rsqrt(p);    f.check("rsqrt", o, [&](std::size_t i) { return 1 / std::sqrt(f.P(i)); });
  o = tanh(x);     f.check("tanh", o, [&](std::size_t i) { return std::tanh(f.X(i)); });
  o = erf(x);      f.check("erf", o, [&](std::size_t i) { return std::erf(f.X(i)); });
  o = relu(x);     f.check("relu", o, [&](std::size_t i) { return f.X(i) > 0 ? f.X(i) : 0.0; });
  o = square(x);   f.check("square", o, [&](std::size_t i) { return f.X(i) * f.X(i); });
  o = gelu(x);     f.check("gelu", o, [&](std::size_t i) {
                     return 0.5 * f.X(i) * (1 + std::erf(f.X(i) / std::sqrt(2.0))); });
  // clang-format on
}

template <class Device, class Config>
void check_binary_ops() {
  using T = typename Config::value_type;
  expr_fixture<Device, Config> f;
  auto& o = f.out;
  const auto& x = f.dx;
  const auto& y = f.dy;
  // clang-format off
  o = x + y;        f.check("add", o, [&](std::size_t i) { return f.X(i) + f.Y(i); });
  o = x - y;        f.check("sub", o, [&](std::size_t i) { return f.X(i) - f.Y(i); });
  o = x * y;        f.check("mul", o, [&](std::size_t i) { return f.X(i) * f.Y(i); });
  o = x / f.dp;     f.check("div", o, [&](std::size_t i) { return f.X(i) / f.P(i); });
  o = min(x, y);    f.check("min", o, [&](std::size_t i) { return std::min(f.X(i), f.Y(i)); });
  o = max(x, y);    f.check("max", o, [&](std::size_t i) { return std::max(f.X(i), f.Y(i)); });
  o = T(2.5) - x;   f.check("scalar - x", o, [&](std::size_t i) { return 2.5 - f.X(i); });
  o = x / 4;        f.check("x / int", o, [&](std::size_t i) { return f.X(i) / 4; });
  o = max(x, T(0)); f.check("max(x, 0)", o, [&](std::size_t i) { return std::max(f.X(i), 0.0); });
  o = cast<T>(x > y);
  f.check("greater", o, [&](std::size_t i) { return f.X(i) > f.Y(i) ? 1.0 : 0.0; });
  o = cast<T>(x <= T(0.5));
  f.check("less_equal", o, [&](std::size_t i) { return f.X(i) <= 0.5 ? 1.0 : 0.0; });
  o = select(x > y, x, y * 2);
  f.check("select", o, [&](std::size_t i) { return f.X(i) > f.Y(i) ? f.X(i) : 2 * f.Y(i); });
  o = select(x < T(0), 0, x);
  f.check("select scalar", o, [&](std::size_t i) { return f.X(i) < 0 ? 0.0 : f.X(i); });
  // A chain of several ops in one pass.
  o = gelu(x * y + T(0.5)) - exp(-abs(x)) / (f.dp + 1);
  f.check("chain", o, [&](std::size_t i) {
    const double h = f.X(i) * f.Y(i) + 0.5;
    return 0.5 * h * (1 + std::erf(h / std::sqrt(2.0))) - std::exp(-std::abs(f.X(i))) / (f.P(i) + 1);
  }, 4);
  // clang-format on
}

template <class Device, class Config>
void check_broadcasts() {
  using T = typename Config::value_type;
  using E = typename Config::shape;
  using F = expr_fixture<Device, Config>;
  constexpr std::size_t A = F::A, L = F::L;
  F f;
  const auto& x = f.dx;

  tensor<T, extents<L>> bias;  // (L): the same for every row
  bias = uniform<T>(counter_rng(21), bias.extents(), T(-1), T(1));
  tensor<T, extents<A, L>> pos;  // (A, L): the same for every item of the batch
  pos = uniform<T>(counter_rng(22), pos.extents(), T(-1), T(1));
  tensor<T, with_last_t<E, 1>> col(Config::batch);  // (B, A, 1): one value per row
  col = uniform<T>(counter_rng(23), col.extents(), T(-1), T(1));
  const auto dbias = on_device<Device>(bias);
  const auto dpos = on_device<Device>(pos);
  const auto dcol = on_device<Device>(col);
  auto b = [&](std::size_t i) { return static_cast<double>(bias.data()[i % L]); };
  auto q = [&](std::size_t i) { return static_cast<double>(pos.data()[i % (A * L)]); };
  auto c = [&](std::size_t i) { return static_cast<double>(col.data()[i / L]); };

  // clang-format off
  f.out = x + dbias;          f.check("x + bias (L)", f.out, [&](std::size_t i) { return f.X(i) + b(i); });
  f.out = dbias * x;          f.check("bias (L) * x", f.out, [&](std::size_t i) { return b(i) * f.X(i); });
  f.out = x + dpos;           f.check("x + pos (A, L)", f.out, [&](std::size_t i) { return f.X(i) + q(i); });
  f.out = x - dcol;           f.check("x - col (B, A, 1)", f.out, [&](std::size_t i) { return f.X(i) - c(i); });
  f.out = (x - dcol) * dbias + dpos;
  f.check("(x - col) * bias + pos", f.out, [&](std::size_t i) { return (f.X(i) - c(i)) * b(i) + q(i); });
  f.out = dbias;              f.check("assign (L) to (B, A, L)", f.out, [&](std::size_t i) { return b(i); });
  f.out = T(1.5);             f.check("fill", f.out, [&](std::size_t) { return 1.5; });
  f.out = select(dcol > T(0), x, dbias);
  f.check("select with broadcasts", f.out, [&](std::size_t i) { return c(i) > 0 ? f.X(i) : b(i); });
  // clang-format on
}

template <class Device, class Config>
void check_reductions() {
  using T = typename Config::value_type;
  using E = typename Config::shape;
  using F = expr_fixture<Device, Config>;
  constexpr std::size_t L = F::L;
  F f;
  const auto& x = f.dx;
  const std::size_t rows = f.n / L;

  // Per-row references in double.
  std::vector<double> sum(rows, 0), sumsq(rows, 0), mx(rows, -INFINITY), var(rows, 0);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t k = 0; k < L; ++k) {
      const double v = f.X(r * L + k);
      sum[r] += v;
      sumsq[r] += v * v;
      mx[r] = std::max(mx[r], v);
    }
    for (std::size_t k = 0; k < L; ++k) var[r] += std::pow(f.X(r * L + k) - sum[r] / L, 2) / L;
  }
  std::vector<double> expsum(rows, 0);
  for (std::size_t i = 0; i < f.n; ++i) expsum[i / L] += std::exp(f.X(i) - mx[i / L]);

  const double scale = L > 64 ? 8 : 2;  // float sums of L terms round L times
  tensor<T, with_last_t<E, 1>, Device> r(Config::batch);
  // clang-format off
  r = row_sum(x);          f.check("row_sum", r, [&](std::size_t i) { return sum[i]; }, scale);
  r = row_mean(x);         f.check("row_mean", r, [&](std::size_t i) { return sum[i] / L; }, scale);
  r = row_max(x);          f.check("row_max", r, [&](std::size_t i) { return mx[i]; });
  r = row_sum_squares(x);  f.check("row_sum_squares", r, [&](std::size_t i) { return sumsq[i]; }, scale);
  r = row_max(x) * 2 + row_sum(x);
  f.check("two reductions", r, [&](std::size_t i) { return 2 * mx[i] + sum[i]; }, scale);
  f.out = x - row_max(x);
  f.check("x - row_max(x)", f.out, [&](std::size_t i) { return f.X(i) - mx[i / L]; });
  f.out = exp(x - row_max(x)) / row_sum(exp(x - row_max(x)));
  f.check("softmax in one pass", f.out, [&](std::size_t i) {
    return std::exp(f.X(i) - mx[i / L]) / expsum[i / L]; }, scale);
  f.out = (x - row_mean(x)) * rsqrt(row_mean(square(x - row_mean(x))) + T(1e-5));
  f.check("layernorm in one pass (nested reductions)", f.out, [&](std::size_t i) {
    return (f.X(i) - sum[i / L] / L) / std::sqrt(var[i / L] + 1e-5); }, 4 * scale);
  // clang-format on
}

template <class Device, class Config>
void check_aliasing() {
  using T = typename Config::value_type;
  using F = expr_fixture<Device, Config>;
  constexpr std::size_t L = F::L;
  F f;
  auto z = f.dx.clone();
  z = z * T(2) + f.dy;
  f.check("z = z * 2 + y", z, [&](std::size_t i) { return 2 * f.X(i) + f.Y(i); });

  z = f.dx;
  z = z - row_max(z);
  std::vector<double> mx(f.n / L, -INFINITY);
  for (std::size_t i = 0; i < f.n; ++i) mx[i / L] = std::max(mx[i / L], f.X(i));
  f.check("z = z - row_max(z)", z, [&](std::size_t i) { return f.X(i) - mx[i / L]; });

  // An operand that overlaps the destination without being it is refused.
  auto flat = z.template reshape<extents<dynamic>>();
  const std::size_t n = flat.batch(), b = z.batch();
  CHECK_THROWS_AS(flat.slice(1, n - 1) = flat.slice(0, n - 1) * T(2), shape_error);
  CHECK_THROWS_AS(z.slice(0, b - 1) = z.slice(0, b - 1) + z[0], shape_error);
  // The destination read as itself through a view is fine.
  auto zv = z.view();
  zv = zv + T(1);
}

template <class Device, class Config>
void check_shape_errors() {
  using T = typename Config::value_type;
  using E = typename Config::shape;
  tensor<T, E, Device> a(Config::batch), b(Config::batch + 1);
  try {
    a = a + b;
    FAIL("a batch mismatch was not detected");
  } catch (const shape_error& e) {
    const std::string m = e.what();
    CHECK_MESSAGE(m.find(to_string(a.extents())) != std::string::npos, m);
    CHECK_MESSAGE(m.find(to_string(b.extents())) != std::string::npos, m);
  }
  CHECK_THROWS_AS(a = b, shape_error);
  CHECK_THROWS_AS(a = exp(b), shape_error);
}

template <class Device, class Config>
void check_nan_propagation() {
  using T = typename Config::value_type;
  using E = typename Config::shape;
  tensor<T, E> h(Config::batch);
  h = T(1);
  h.data()[1] = std::numeric_limits<T>::quiet_NaN();  // row 0
  auto d = on_device<Device>(h);
  tensor<T, with_last_t<E, 1>, Device> r(Config::batch);
  r = row_max(d);
  const auto rv = host_values(r);
  CHECK(std::isnan(rv[0]));
  CHECK(rv[1] == T(1));
  tensor<T, E, Device> o(Config::batch);
  o = max(d, T(0)) + relu(d) + min(T(0), d);
  CHECK(std::isnan(host_values(o)[1]));
}

/// A rank-1 dynamic shape is evaluated as one flat range.
template <class Device>
void check_rank1_dynamic() {
  tensor<float, extents<dynamic>> h(1001);
  h = uniform<float>(counter_rng(5), h.extents(), -1.f, 1.f);
  auto d = on_device<Device>(h);
  tensor<float, extents<dynamic>, Device> o(1001);
  o = d * d + 1.f;
  const auto v = host_values(o);
  std::vector<double> ref(1001);
  for (std::size_t i = 0; i < ref.size(); ++i) ref[i] = double(h.data()[i]) * h.data()[i] + 1;
  const auto c = compare(v, ref, 1e-6, 2e-6);
  CHECK_MESSAGE(c.ok, c.describe());
}

}  // namespace splitmask::testing

// The test cases for one device; `prefix` names the suite in test names.
#define SPLITMASK_EXPR_TEST_CASES(Device, prefix)                                         \
  TEST_CASE_TEMPLATE(prefix "unary ops match a double loop", C, SPLITMASK_EXPR_CONFIGS) { \
    splitmask::testing::check_unary_ops<Device, C>();                                     \
  }                                                                                       \
  TEST_CASE_TEMPLATE(prefix "binary ops, scalars, comparisons, select", C,                \
                     SPLITMASK_EXPR_CONFIGS) {                                            \
    splitmask::testing::check_binary_ops<Device, C>();                                    \
  }                                                                                       \
  TEST_CASE_TEMPLATE(prefix "broadcasting of trailing shapes and row values", C,          \
                     SPLITMASK_EXPR_CONFIGS) {                                            \
    splitmask::testing::check_broadcasts<Device, C>();                                    \
  }                                                                                       \
  TEST_CASE_TEMPLATE(prefix "row reductions and fused row-wise expressions", C,           \
                     SPLITMASK_EXPR_CONFIGS) {                                            \
    splitmask::testing::check_reductions<Device, C>();                                    \
  }                                                                                       \
  TEST_CASE_TEMPLATE(prefix "aliasing: the destination as an operand", C,                 \
                     SPLITMASK_EXPR_CONFIGS) {                                            \
    splitmask::testing::check_aliasing<Device, C>();                                      \
  }                                                                                       \
  TEST_CASE_TEMPLATE(prefix "batch mismatches throw and name both shapes", C,             \
                     splitmask::testing::expr_config<float, 3, 5, 3>) {                   \
    splitmask::testing::check_shape_errors<Device, C>();                                  \
  }                                                                                       \
  TEST_CASE_TEMPLATE(prefix "NaN propagates through max, min, relu and row_max", C,       \
                     splitmask::testing::expr_config<float, 3, 5, 3>,                     \
                     splitmask::testing::expr_config<double, 8, 64, 2>) {                 \
    splitmask::testing::check_nan_propagation<Device, C>();                               \
  }                                                                                       \
  TEST_CASE(prefix "rank-1 dynamic shapes") { splitmask::testing::check_rank1_dynamic<Device>(); }
