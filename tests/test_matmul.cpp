// matmul on the CPU against a naive double product, every transpose combination, with every
// GEMM library this build has (oneDNN, OpenBLAS, Eigen) and with bf16 operands where the CPU
// has them; and how the library is chosen at run time.
#include <splitmask/splitmask.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "cases/matmul_cases.hpp"

// The library chosen at run time (oneDNN where the build has it).
SPLITMASK_GEMM_TEST_CASES(splitmask::device::cpu, "cpu: ")

namespace {
using namespace splitmask;
namespace cpu = backend::cpu;

// The libraries this build has that can run well here (others are said and left out).
std::vector<cpu::gemm_library> usable_libraries() {
  std::vector<cpu::gemm_library> out;
  for (auto l : {cpu::gemm_library::onednn, cpu::gemm_library::openblas, cpu::gemm_library::eigen}) {
    const std::string reason = cpu::gemm_unusable_reason(l);
    if (reason.empty()) {
      out.push_back(l);
    } else {
      MESSAGE("CPU GEMM " << cpu::to_string(l) << " not tested: " << reason);
    }
  }
  return out;
}

template <class G>
void check_every_library() {
  for (const cpu::gemm_library library : usable_libraries()) {
    INFO("CPU GEMM " << cpu::to_string(library));
    const cpu::gemm_scope scope(library);
    testing::check_gemm<device::cpu, G>(1, 0);
    testing::check_gemm<device::cpu, G>(1, 1);
    testing::check_gemm<device::cpu, G>(-0.5, 0.25);
  }
}

// bf16 products against a double product of the operands rounded to bf16 (so only the fp32
// accumulation's rounding remains), and within the documented bound of the exact product:
// |error| <= 2^-7 sum_l |a_il b_lj| (each operand is off by at most 2^-9 of itself).
template <class G>
void check_bf16(double alpha, double beta) {
  constexpr std::size_t M = G::m, N = G::n, K = G::k;
  constexpr std::size_t count = G::batch > 0 ? G::batch : 1;
  std::vector<float> a(count * M * K), b(count * K * N), c(count * M * N);
  tensor<float, extents<dynamic>> fill(a.size() + b.size() + c.size());
  fill = uniform<float>(counter_rng(41), fill.extents(), -1.f, 1.f);
  std::copy(fill.data(), fill.data() + a.size(), a.begin());
  std::copy(fill.data() + a.size(), fill.data() + a.size() + b.size(), b.begin());
  std::copy(fill.data() + a.size() + b.size(), fill.data() + fill.size(), c.begin());
  std::vector<float> a16(a), b16(b), abs_a(a), abs_b(b);
  for (float& x : a16) x = cpu::from_bf16(cpu::to_bf16(x));
  for (float& x : b16) x = cpu::from_bf16(cpu::to_bf16(x));
  for (float& x : abs_a) x = std::abs(x);
  for (float& x : abs_b) x = std::abs(x);
  const auto rounded = testing::naive_gemm(a16.data(), b16.data(), c.data(), count, M, N, K,
                                           G::ta, G::tb, alpha, beta);
  const auto exact = testing::naive_gemm(a.data(), b.data(), c.data(), count, M, N, K, G::ta,
                                         G::tb, alpha, beta);
  const auto magnitude = testing::naive_gemm(abs_a.data(), abs_b.data(), c.data(), count, M, N,
                                             K, G::ta, G::tb, std::abs(alpha), 0);
  gemm_args<float> g;
  g.transpose_a = G::ta;
  g.transpose_b = G::tb;
  g.m = M;
  g.n = N;
  g.k = K;
  g.batch = count;
  g.alpha = float(alpha);
  g.beta = float(beta);
  g.a = a.data();
  g.b = b.data();
  g.c = c.data();
  {
    const cpu::matmul_precision_scope bf16(cpu::matmul_precision::bf16);
    detail::gemm_backend<device::cpu>::run(g);
  }
  const double eps = std::numeric_limits<float>::epsilon();
  double worst_rounded = 0, worst_bound = 0;
  std::size_t worst_at = 0;
  for (std::size_t i = 0; i < c.size(); ++i) {
    const double d = std::abs(double(c[i]) - rounded[i]);
    const double allowed = 4 * eps * std::sqrt(double(K)) * (magnitude[i] + std::abs(beta) + 1);
    if (d / allowed > worst_rounded) worst_rounded = d / allowed, worst_at = i;
    const double bound = std::ldexp(magnitude[i], -7) + allowed;
    worst_bound = std::max(worst_bound, std::abs(double(c[i]) - exact[i]) / bound);
  }
  CHECK_MESSAGE(worst_rounded <= 1, "M " << M << " N " << N << " K " << K << " batch "
                                         << G::batch << ": element " << worst_at << " is "
                                         << c[worst_at] << ", the rounded operands give "
                                         << rounded[worst_at]);
  CHECK_MESSAGE(worst_bound <= 1, "M " << M << " N " << N << " K " << K
                                       << ": beyond 2^-7 sum |a b| of the exact product");
}
}  // namespace

TEST_CASE_TEMPLATE("cpu: every GEMM library matches a double product (float)", G,
                   SPLITMASK_GEMM_CONFIGS_FOR(float)) {
  check_every_library<G>();
}

TEST_CASE_TEMPLATE("cpu: every GEMM library matches a double product (double)", G,
                   SPLITMASK_GEMM_CONFIGS_FOR(double)) {
  check_every_library<G>();
}

TEST_CASE_TEMPLATE("cpu: bf16 products match the product of bf16-rounded operands", G,
                   SPLITMASK_GEMM_CONFIGS_FOR(float)) {
  if (!cpu::bf16_products_available()) {
    MESSAGE("skipped: this CPU (" << cpu::cpu_isa() << ") or build has no bf16 products");
    return;
  }
  check_bf16<G>(1, 0);
  check_bf16<G>(1, 1);
  check_bf16<G>(2, -0.5);
}

TEST_CASE("cpu: asking for bf16 products where there are none is an error naming the CPU") {
  if (cpu::bf16_products_available()) {
    const cpu::matmul_precision_scope bf16(cpu::matmul_precision::bf16);  // accepted
    CHECK(cpu::get_matmul_precision() == cpu::matmul_precision::bf16);
    MESSAGE("this CPU has bf16 products (" << cpu::cpu_isa() << "): the refusal is not tested");
    return;
  }
  CHECK_THROWS_WITH_AS(cpu::set_matmul_precision(cpu::matmul_precision::bf16),
                       doctest::Contains("AVX512_BF16"), std::invalid_argument);
  CHECK(cpu::get_matmul_precision() == cpu::matmul_precision::fp32);
}

TEST_CASE("cpu: bf16 rounding is to nearest, ties to even, and keeps NaN and infinities") {
  CHECK(cpu::to_bf16(1.0f) == 0x3f80);
  CHECK(cpu::from_bf16(cpu::to_bf16(1.0f + 1.0f / 256)) == 1.0f);           // a tie: to even
  CHECK(cpu::from_bf16(cpu::to_bf16(1.0f + 3.0f / 256)) == 1.0f + 4.0f / 256);  // tie: up to even
  CHECK(cpu::from_bf16(cpu::to_bf16(1.0f + 1.5f / 256)) == 1.0f + 2.0f / 256);  // nearest
  CHECK(std::isnan(cpu::from_bf16(cpu::to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(cpu::from_bf16(cpu::to_bf16(std::numeric_limits<float>::infinity())) ==
        std::numeric_limits<float>::infinity());
  CHECK(cpu::from_bf16(cpu::to_bf16(-2.5f)) == -2.5f);
}

TEST_CASE("cpu: the GEMM library is chosen from the machine, or as asked") {
  CHECK(cpu::parse_gemm_library("onednn") == cpu::gemm_library::onednn);
  CHECK_THROWS_WITH_AS(cpu::parse_gemm_library("mkl"), doctest::Contains("onednn, openblas and eigen"),
                       std::invalid_argument);
  CHECK(cpu::gemm_unusable_reason(cpu::gemm_library::eigen).empty());
  // OpenBLAS's SSE-era cores are generic on a CPU with AVX2; its AVX2 and AVX-512 cores are not.
  CHECK(cpu::openblas_core_is_generic("Prescott", true));
  CHECK(cpu::openblas_core_is_generic("Sandybridge", true));
  CHECK_FALSE(cpu::openblas_core_is_generic("Haswell", true));
  CHECK_FALSE(cpu::openblas_core_is_generic("SkylakeX", true));
  CHECK_FALSE(cpu::openblas_core_is_generic("Prescott", false));
#if defined(SPLITMASK_HAS_ONEDNN)
  if (std::getenv("SPLITMASK_GEMM") == nullptr) CHECK(cpu::default_gemm() == cpu::gemm_library::onednn);
  CHECK(cpu::gemm_unusable_reason(cpu::gemm_library::onednn).empty());
#else
  CHECK_THROWS_WITH_AS(cpu::use_gemm(cpu::gemm_library::onednn), doctest::Contains("libdnnl-dev"),
                       std::invalid_argument);
#endif
  MESSAGE("products here: " << cpu::gemm_description());
}

// Run by its own CTest entry with OPENBLAS_CORETYPE=Prescott (OpenBLAS reads it when it loads).
TEST_CASE("cpu: a generic OpenBLAS core is refused with a message") {
#if defined(SPLITMASK_HAS_OPENBLAS)
  if (cpu::openblas_core() != "Prescott") {
    MESSAGE("OpenBLAS runs its " << cpu::openblas_core()
                                 << " kernels here; the ctest entry gemm_generic_openblas forces "
                                    "Prescott");
    return;
  }
  if (!__builtin_cpu_supports("avx2")) {
    MESSAGE("skipped: this CPU has no AVX2, so Prescott kernels are not generic for it");
    return;
  }
  const std::string reason = cpu::gemm_unusable_reason(cpu::gemm_library::openblas);
  CHECK(reason.find("generic Prescott kernels") != std::string::npos);
  CHECK_THROWS_WITH_AS(cpu::use_gemm(cpu::gemm_library::openblas),
                       doctest::Contains("generic Prescott"), std::invalid_argument);
  CHECK(cpu::default_gemm() != cpu::gemm_library::openblas);
  ::setenv("SPLITMASK_GEMM", "openblas", 1);
  CHECK_THROWS_WITH_AS(cpu::default_gemm(), doctest::Contains("SPLITMASK_GEMM=openblas"),
                       std::invalid_argument);
  ::unsetenv("SPLITMASK_GEMM");
#else
  MESSAGE("skipped: this build has no OpenBLAS");
#endif
}
