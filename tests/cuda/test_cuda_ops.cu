// The model's ops on the GPU against the same ops on the CPU: each op runs on fresh random host
// inputs (counter_rng expressions, never zeros), and on device copies of them; every result comes
// back to the host and is compared element by element, |gpu - cpu| <= atol + rtol·|cpu|, the
// worst element named in the failure message (cuda_compare.hpp).
//
// Tolerances: results of fp32 reductions that the two paths sum in different orders (LayerNorm's
// row statistics, GEMMs, column sums, softmax sums) get rtol 1e-5..1e-4 and an atol that is a
// small fraction of the largest reference value (1e-6..2e-5 of max |cpu|): an element near zero
// from cancellation carries the absolute error of the large terms that cancelled. Pure copies
// (patches, token gathers and scatters, ids, splits) must be equal; the AdamW update is claimed
// bit for bit up to the host compiler's FMA contraction, so it gets rtol 1e-6.
//
// A backward op takes the CPU forward's saved statistics (copied to the device), so that it is
// compared on the same inputs. Products are exact fp32 (the context's default precision); TF32 or
// bf16 products would fail the GEMM-based checks by design.
//
// Each case is a function template of its sizes: nvcc 13's front end misprints, in the host code
// it hands to the host compiler, a type such as extents<dynamic, 96> spelled again in a later
// non-template function ("unsigned long((96))": invalid C++); dependent types are left alone.
#ifndef EIGEN_NO_CUDA
#define EIGEN_NO_CUDA 1  // Eigen serves host code only here (the CPU references)
#endif
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <ratio>
#include <splitmask/cuda.hpp>
#include <splitmask/splitmask.hpp>  // the CPU ops: the references
#include <splitmask/tokenizer/device_tokenizer.hpp>
#include <string>
#include <vector>

#include "cuda_compare.hpp"

namespace {

using namespace splitmask;
using gpu = splitmask::device::cuda;
using splitmask::testing::host_copy;
using splitmask::testing::max_abs;
using splitmask::testing::relative_error;

template <class X>
void fill_normal(X& x, std::uint64_t seed, float mean = 0.0f, float sd = 1.0f) {
  x = normal<float>(counter_rng(seed, 0xc0da), x.extents(), mean, sd);
}
template <class X>
void fill_uniform(X& x, std::uint64_t seed, float low, float high) {
  x = uniform<float>(counter_rng(seed, 0xc0db), x.extents(), low, high);
}
/// Integers uniform in [0, bound) from the seed.
template <class X>
void fill_ints(X& x, std::uint64_t seed, std::uint32_t bound) {
  const counter_rng rng(seed, 0xc0dc);
  for (std::size_t i = 0; i < x.size(); ++i)
    x.data()[i] = static_cast<std::int32_t>(rng.bits(i).v[0] % bound);
}
template <class X>
auto on_gpu(const X& x) {
  return to_device<gpu>(x);
}

// ---- LayerNorm --------------------------------------------------------------------------------

template <std::size_t N, std::size_t D>
void check_layernorm(std::size_t batch, std::uint64_t seed) {
  CAPTURE(N);
  CAPTURE(D);
  using E = extents<dynamic, N, D>;
  const std::size_t rows = batch * N;
  constexpr double eps = 1e-6;
  tensor<float, E> x(batch), y(batch), dy(batch), dx(batch), dx_acc(batch), dx0(batch);
  tensor<float, extents<D>> gamma, beta, dgamma0, dbeta0;
  tensor<float, extents<dynamic>> mean(rows), rstd(rows);
  fill_normal(x, seed, 0.5f, 2.0f);  // off-centre: the mean matters
  fill_uniform(gamma, seed + 1, 0.5f, 1.5f);
  fill_normal(beta, seed + 2, 0.0f, 0.3f);
  fill_normal(dy, seed + 3);
  fill_normal(dx0, seed + 4);  // what accumulate adds to, and garbage that overwrite replaces
  fill_normal(dgamma0, seed + 5);
  fill_normal(dbeta0, seed + 6);

  // Forward.
  layernorm_forward(y, mean, rstd, x, gamma, beta, eps);
  const auto gx = on_gpu(x);
  const auto ggamma = on_gpu(gamma);
  const auto gbeta = on_gpu(beta);
  auto gy = on_gpu(dx0);  // overwritten
  tensor<float, extents<dynamic>, gpu> gmean(rows), grstd(rows);
  layernorm_forward(gy, gmean, grstd, gx, ggamma, gbeta, eps);
  SPLITMASK_CHECK_CLOSE("layernorm_forward y", gy, y, 2e-5, 2e-5);
  SPLITMASK_CHECK_CLOSE("layernorm_forward mean", gmean, mean, 1e-6 * max_abs(x), 1e-5);
  SPLITMASK_CHECK_CLOSE("layernorm_forward rstd", grstd, rstd, 0.0, 2e-5);

  // Backward, from the CPU's statistics. dgamma and dbeta accumulate onto random values.
  auto dgamma = dgamma0.clone();
  auto dbeta = dbeta0.clone();
  layernorm_backward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma);  // overwrite
  copy(dx_acc, dx0);
  auto dgamma_acc = dgamma0.clone();
  auto dbeta_acc = dbeta0.clone();
  layernorm_backward(dx_acc, dgamma_acc, dbeta_acc, dy, x, mean, rstd, gamma,
                     write_mode::accumulate);
  const auto gdy = on_gpu(dy);
  const auto gmean_ref = on_gpu(mean);
  const auto grstd_ref = on_gpu(rstd);
  const double dx_atol = 1e-5 * max_abs(dx), dx_acc_atol = 1e-5 * max_abs(dx_acc);
  const double dg_atol = 1e-5 * max_abs(dgamma), db_atol = 1e-5 * max_abs(dbeta);
  {  // overwrite, into garbage
    auto gdx = on_gpu(dx0);
    auto gdg = on_gpu(dgamma0);
    auto gdb = on_gpu(dbeta0);
    layernorm_backward(gdx, gdg, gdb, gdy, gx, gmean_ref, grstd_ref, ggamma);
    SPLITMASK_CHECK_CLOSE("layernorm_backward dx (overwrite)", gdx, dx, dx_atol, 1e-4);
    SPLITMASK_CHECK_CLOSE("layernorm_backward dgamma (+=)", gdg, dgamma, dg_atol, 1e-5);
    SPLITMASK_CHECK_CLOSE("layernorm_backward dbeta (+=)", gdb, dbeta, db_atol, 1e-5);
  }
  {  // accumulate
    auto gdx = on_gpu(dx0);
    auto gdg = on_gpu(dgamma0);
    auto gdb = on_gpu(dbeta0);
    layernorm_backward(gdx, gdg, gdb, gdy, gx, gmean_ref, grstd_ref, ggamma,
                       write_mode::accumulate);
    SPLITMASK_CHECK_CLOSE("layernorm_backward dx (accumulate)", gdx, dx_acc, dx_acc_atol, 1e-4);
    SPLITMASK_CHECK_CLOSE("layernorm_backward dgamma (accumulate call)", gdg, dgamma_acc, dg_atol,
                          1e-5);
    SPLITMASK_CHECK_CLOSE("layernorm_backward dbeta (accumulate call)", gdb, dbeta_acc, db_atol,
                          1e-5);
  }
  {  // dx is dy: in place
    auto gdx = on_gpu(dy);
    auto gdg = on_gpu(dgamma0);
    auto gdb = on_gpu(dbeta0);
    layernorm_backward(gdx, gdg, gdb, gdx, gx, gmean_ref, grstd_ref, ggamma);
    SPLITMASK_CHECK_CLOSE("layernorm_backward dx aliasing dy", gdx, dx, dx_atol, 1e-4);
    SPLITMASK_CHECK_CLOSE("layernorm_backward dgamma (dx aliasing dy)", gdg, dgamma, dg_atol, 1e-5);
    SPLITMASK_CHECK_CLOSE("layernorm_backward dbeta (dx aliasing dy)", gdb, dbeta, db_atol, 1e-5);
  }
}

TEST_CASE("cuda ops: layernorm_forward and layernorm_backward (both modes, dx aliasing dy)") {
  check_layernorm<49, 100>(3, 100);  // a width with a partial warp
  check_layernorm<98, 768>(2, 110);  // ViT-B
}

// ---- Linear, column sums ----------------------------------------------------------------------

template <std::size_t N, std::size_t In, std::size_t Out>
void check_linear(std::size_t B) {
  tensor<float, extents<dynamic, N, In>> x(B), dx(B), dx_acc(B), dx0(B);
  tensor<float, extents<dynamic, N, Out>> y(B), y_acc(B), y0(B), dy(B);
  tensor<float, extents<Out, In>> w, dw0;
  tensor<float, extents<Out>> b, db0;
  fill_normal(x, 200);
  fill_normal(w, 201, 0.0f, 0.036f);  // about 1 / sqrt(In): outputs of order 1
  fill_normal(b, 202, 0.0f, 0.5f);
  fill_normal(y0, 203);
  fill_normal(dy, 204);
  fill_normal(dx0, 205);
  fill_normal(dw0, 206);
  fill_normal(db0, 207);
  const auto gx = on_gpu(x);
  const auto gw = on_gpu(w);
  const auto gb = on_gpu(b);
  const auto gdy = on_gpu(dy);

  linear_forward(y, x, w, b);
  copy(y_acc, y0);
  linear_forward(y_acc, x, w, b, write_mode::accumulate);
  {
    auto gy = on_gpu(y0);
    linear_forward(gy, gx, gw, gb);
    SPLITMASK_CHECK_CLOSE("linear_forward (overwrite)", gy, y, 2e-5 * max_abs(y), 1e-5);
    auto gy_acc = on_gpu(y0);
    linear_forward(gy_acc, gx, gw, gb, write_mode::accumulate);
    SPLITMASK_CHECK_CLOSE("linear_forward (accumulate)", gy_acc, y_acc, 2e-5 * max_abs(y_acc),
                          1e-5);
  }

  auto dw = dw0.clone();
  auto db = db0.clone();
  linear_backward(dx, dw, db, dy, x, w);
  auto dw2 = dw0.clone();
  auto db2 = db0.clone();
  copy(dx_acc, dx0);
  linear_backward(dx_acc, dw2, db2, dy, x, w, write_mode::accumulate);
  {
    auto gdx = on_gpu(dx0);
    auto gdw = on_gpu(dw0);
    auto gdb = on_gpu(db0);
    linear_backward(gdx, gdw, gdb, gdy, gx, gw);
    SPLITMASK_CHECK_CLOSE("linear_backward dx (overwrite)", gdx, dx, 2e-5 * max_abs(dx), 1e-5);
    SPLITMASK_CHECK_CLOSE("linear_backward dW (+=)", gdw, dw, 2e-5 * max_abs(dw), 1e-5);
    SPLITMASK_CHECK_CLOSE("linear_backward db (+= column sums of dy)", gdb, db, 2e-5 * max_abs(db),
                          1e-5);
  }
  {
    auto gdx = on_gpu(dx0);
    auto gdw = on_gpu(dw0);
    auto gdb = on_gpu(db0);
    linear_backward(gdx, gdw, gdb, gdy, gx, gw, write_mode::accumulate);
    SPLITMASK_CHECK_CLOSE("linear_backward dx (accumulate)", gdx, dx_acc, 2e-5 * max_abs(dx_acc),
                          1e-5);
    SPLITMASK_CHECK_CLOSE("linear_backward dW (accumulate call)", gdw, dw2, 2e-5 * max_abs(dw2),
                          1e-5);
    SPLITMASK_CHECK_CLOSE("linear_backward db (accumulate call)", gdb, db2, 2e-5 * max_abs(db2),
                          1e-5);
  }
}

TEST_CASE("cuda ops: linear_forward and linear_backward (dx both modes, dW, db = column sums)") {
  check_linear<98, 768, 200>(2);  // K = 768 forward, 200 for dx, 196 rows for dW and db
}

template <std::size_t L>
void check_column_sums(std::size_t rows) {
  tensor<float, extents<dynamic, L>> m(rows);
  tensor<float, extents<L>> sums;
  fill_normal(m, 300, 0.25f, 1.0f);  // a drift: sums of about 1250, with cancellation in places
  fill_normal(sums, 301);            // added to
  const auto gm = on_gpu(m);
  auto gsums = on_gpu(sums);
  detail::add_column_sums(sums, m);
  detail::add_column_sums(gsums, gm);
  // The CPU sums each column in sequence (rounding error of order 1e-3 at 1250); the GPU in chunks.
  SPLITMASK_CHECK_CLOSE("add_column_sums", gsums, sums, 2e-5 * max_abs(sums), 2e-5);
  // A second call adds again (+=, deterministic).
  detail::add_column_sums(sums, m);
  detail::add_column_sums(gsums, gm);
  SPLITMASK_CHECK_CLOSE("add_column_sums twice", gsums, sums, 4e-5 * max_abs(sums), 2e-5);
}

TEST_CASE("cuda ops: add_column_sums over 5000 rows of a width that is not a multiple of 32") {
  check_column_sums<1000>(5000);
}

// ---- GELU -------------------------------------------------------------------------------------

template <std::size_t N, std::size_t M>
void check_gelu(std::size_t B) {
  tensor<float, extents<dynamic, N, M>> x(B), y(B), dy(B), dx(B), garbage(B);
  fill_normal(x, 400, 0.0f, 2.0f);
  fill_normal(dy, 401);
  fill_normal(garbage, 402);
  gelu_forward(y, x);
  gelu_backward(dx, dy, x);
  const auto gx = on_gpu(x);
  const auto gdy = on_gpu(dy);
  auto gy = on_gpu(garbage);
  gelu_forward(gy, gx);
  // The CPU's float GELU uses Phi within 7.5e-8 (A&S 7.1.26) and its own exp; the GPU erff.
  SPLITMASK_CHECK_CLOSE("gelu_forward", gy, y, 2e-6, 1e-5);
  auto gdx = on_gpu(garbage);
  gelu_backward(gdx, gdy, gx);
  SPLITMASK_CHECK_CLOSE("gelu_backward", gdx, dx, 1e-6 * std::max(1.0, max_abs(dx)), 1e-5);
  auto gin = on_gpu(x);
  gelu_forward(gin, gin);
  SPLITMASK_CHECK_CLOSE("gelu_forward in place", gin, y, 2e-6, 1e-5);
  auto gd = on_gpu(dy);
  gelu_backward(gd, gd, gx);
  SPLITMASK_CHECK_CLOSE("gelu_backward in place (dx is dy)", gd, dx,
                        1e-6 * std::max(1.0, max_abs(dx)), 1e-5);
}

TEST_CASE("cuda ops: gelu_forward and gelu_backward (and in place)") { check_gelu<49, 384>(3); }

// ---- Attention --------------------------------------------------------------------------------

template <std::size_t N, std::size_t D, std::size_t H>
void check_attention(std::size_t batch, std::uint64_t seed) {
  CAPTURE(N);
  CAPTURE(D);
  CAPTURE(H);
  using qkv_t = tensor<float, extents<dynamic, N, 3 * D>>;
  using out_t = tensor<float, extents<dynamic, N, D>>;
  using probs_t = tensor<float, extents<dynamic, N, N>>;
  qkv_t qkv(batch), d_qkv(batch), qkv_garbage(batch);
  out_t out(batch), d_out(batch), out_garbage(batch);
  probs_t probs(batch * H), d_probs(batch * H), probs_garbage(batch * H);
  fill_normal(qkv, seed);  // scores q.k / sqrt(Dh) of order 1: softmax neither flat nor one-hot
  fill_normal(d_out, seed + 1);
  fill_normal(qkv_garbage, seed + 2);
  fill_normal(out_garbage, seed + 3);
  fill_normal(probs_garbage, seed + 4);

  const attention_saved<float, N, D, H> saved{probs.view()};
  attention_forward(out, saved, qkv);
  const attention_scratch<float, N, D, H> scratch{d_probs.view()};
  attention_backward(d_qkv, scratch, d_out, saved, qkv);

  const auto gqkv = on_gpu(qkv);
  const auto gd_out = on_gpu(d_out);
  auto gout = on_gpu(out_garbage);
  auto gprobs = on_gpu(probs_garbage);
  const attention_saved<float, N, D, H, gpu> gsaved{gprobs.view()};
  attention_forward(gout, gsaved, gqkv);
  SPLITMASK_CHECK_CLOSE("attention_forward probs", gprobs, probs, 1e-7, 1e-5);
  SPLITMASK_CHECK_CLOSE("attention_forward out", gout, out, 1e-5 * max_abs(out), 1e-4);

  // Backward from the CPU's probabilities; d_qkv is written in full (garbage before).
  auto gprobs_ref = on_gpu(probs);
  const attention_saved<float, N, D, H, gpu> gsaved_ref{gprobs_ref.view()};
  auto gd_probs = on_gpu(probs_garbage);
  const attention_scratch<float, N, D, H, gpu> gscratch{gd_probs.view()};
  auto gd_qkv = on_gpu(qkv_garbage);
  attention_backward(gd_qkv, gscratch, gd_out, gsaved_ref, gqkv);
  SPLITMASK_CHECK_CLOSE("attention_backward d_qkv", gd_qkv, d_qkv, 2e-5 * max_abs(d_qkv), 1e-4);
  SPLITMASK_CHECK_CLOSE("attention_backward dS (d_probs)", gd_probs, d_probs,
                        1e-5 * max_abs(d_probs), 1e-4);
}

TEST_CASE("cuda ops: attention_forward and attention_backward, tiny ViT and ViT-B shapes") {
  check_attention<49, 96, 3>(2, 500);    // N 49, Dh 32
  check_attention<98, 768, 12>(2, 510);  // ViT-B's width and heads, Dh 64
}

// ---- Cross-entropy ----------------------------------------------------------------------------

template <std::size_t K>
void check_cross_entropy(std::size_t rows, std::uint64_t seed) {
  CAPTURE(K);
  tensor<float, extents<dynamic, K>> logits(rows), d_logits(rows);
  tensor<std::int32_t, extents<dynamic>> targets(rows);
  tensor<float, extents<dynamic>> lse(rows), lse_garbage(rows);
  fill_normal(logits, seed, 0.0f, 2.0f);
  fill_ints(targets, seed + 1, K);
  fill_normal(lse_garbage, seed + 2);
  const double loss = cross_entropy_forward(lse, logits, targets);
  cross_entropy_backward(d_logits, logits, lse, targets, 0.7);

  const auto glogits = on_gpu(logits);
  const auto gtargets = on_gpu(targets);
  auto glse = on_gpu(lse_garbage);
  const double gloss = cross_entropy_forward(glse, glogits, gtargets);
  CHECK_MESSAGE(std::abs(gloss - loss) <= 1e-5 * std::abs(loss) + 1e-6,
                "cross_entropy_forward loss: gpu " << gloss << ", cpu " << loss);
  SPLITMASK_CHECK_CLOSE("cross_entropy_forward lse", glse, lse, 1e-6, 1e-5);

  // Backward in place (d_logits is logits), from the CPU's log-sum-exp.
  auto gd = on_gpu(logits);
  const auto glse_ref = on_gpu(lse);
  cross_entropy_backward(gd, gd, glse_ref, gtargets, 0.7);
  SPLITMASK_CHECK_CLOSE("cross_entropy_backward in place", gd, d_logits, 1e-5 * max_abs(d_logits),
                        1e-5);

  // A target outside [0, K) on the device: forward throws shape_error (and clears the count).
  auto bad = targets.clone();
  bad.data()[rows / 2] = static_cast<std::int32_t>(K);
  bad.data()[rows - 1] = -1;
  const auto gbad = on_gpu(bad);
  CHECK_THROWS_AS(cross_entropy_forward(glse, glogits, gbad), shape_error);
  double again = 0;
  CHECK_NOTHROW(again = cross_entropy_forward(glse, glogits, gtargets));
  CHECK(again == gloss);  // deterministic, and the error count was cleared
  // Backward reports a bad target at the next check of the device's errors.
  auto gd2 = on_gpu(logits);
  cross_entropy_backward(gd2, glogits, glse_ref, gbad, 0.7);
  CHECK_THROWS_AS(backend::cuda::context::current().check_errors("test"), shape_error);
  CHECK_NOTHROW(backend::cuda::context::current().check_errors("test"));
}

TEST_CASE("cuda ops: cross_entropy_forward (loss, lse), backward in place, bad targets throw") {
  check_cross_entropy<1000>(300, 600);  // not a power of two: partial warps
  check_cross_entropy<8192>(64, 610);   // ViT-B's vocabulary: 1024 threads per row
}

// ---- InfoNCE ----------------------------------------------------------------------------------

template <std::size_t D>
void check_infonce(std::size_t B) {
  constexpr double tau = 0.2, scale = 0.7;
  tensor<float, extents<dynamic, D>> pa(B), pb(B), noise(B), dpa(B), dpb(B), garbage(B);
  fill_normal(pa, 700);
  fill_normal(noise, 701);
  fill_normal(garbage, 702);
  for (std::size_t i = 0; i < pb.size(); ++i)  // positives alike, negatives not
    pb.data()[i] = 1.5f * pa.data()[i] + 0.6f * noise.data()[i];
  infonce_state<float, D> state;
  const double loss = infonce_forward(state, pa, pb, tau);
  infonce_backward(dpa, dpb, state, scale);

  infonce_state<float, D, gpu> gstate;
  const auto gpa = on_gpu(pa);
  const auto gpb = on_gpu(pb);
  const double gloss = infonce_forward(gstate, gpa, gpb, tau);
  CHECK_MESSAGE(relative_error(gloss, loss) < 1e-5,
                "infonce_forward loss: gpu " << gloss << ", cpu " << loss);
  SPLITMASK_CHECK_CLOSE("infonce q_a", gstate.q_a, state.q_a, 1e-7, 1e-5);
  SPLITMASK_CHECK_CLOSE("infonce q_b", gstate.q_b, state.q_b, 1e-7, 1e-5);
  SPLITMASK_CHECK_CLOSE("infonce |p_a|", gstate.norm_a, state.norm_a, 0.0, 1e-5);
  SPLITMASK_CHECK_CLOSE("infonce |p_b|", gstate.norm_b, state.norm_b, 0.0, 1e-5);
  SPLITMASK_CHECK_CLOSE("infonce row softmax", gstate.row_softmax, state.row_softmax, 1e-7, 1e-5);
  SPLITMASK_CHECK_CLOSE("infonce column softmax", gstate.column_softmax, state.column_softmax, 1e-7,
                        1e-5);
  auto gdpa = on_gpu(garbage);
  auto gdpb = on_gpu(garbage);
  infonce_backward(gdpa, gdpb, gstate, scale);
  SPLITMASK_CHECK_CLOSE("infonce_backward dp_a", gdpa, dpa, 1e-5 * max_abs(dpa), 1e-4);
  SPLITMASK_CHECK_CLOSE("infonce_backward dp_b", gdpb, dpb, 1e-5 * max_abs(dpb), 1e-4);
}

TEST_CASE("cuda ops: infonce_forward and infonce_backward, B = 8, D = 96") { check_infonce<96>(8); }

// ---- Token subsets, pooling, patches -----------------------------------------------------------

template <std::size_t N, std::size_t n, std::size_t W, std::uint32_t K>
void check_tokens(std::size_t B) {
  tensor<float, extents<dynamic, N, W>> all(B);
  tensor<float, extents<dynamic, n, W>> subset(B), gathered(B), sub_garbage(B), d_tokens(B);
  tensor<std::int32_t, extents<dynamic, n>> index(B);
  tensor<std::int32_t, extents<dynamic, N>> ids(B);
  tensor<std::int32_t, extents<dynamic>> targets(B * n), targets_garbage(B * n);
  tensor<float, extents<dynamic, W>> pooled(B), d_pooled(B), pooled_garbage(B);
  fill_normal(all, 800);
  fill_normal(subset, 801);
  fill_normal(sub_garbage, 802);
  fill_normal(d_pooled, 803);
  fill_normal(pooled_garbage, 804);
  fill_ints(index, 805, N);  // with repeats: the last row wins (overwrite), all add (accumulate)
  fill_ints(ids, 806, K);
  fill_ints(targets_garbage, 807, K);
  const auto gall = on_gpu(all);
  const auto gsubset = on_gpu(subset);
  const auto gindex = on_gpu(index);
  const auto gids = on_gpu(ids);

  gather_tokens(gathered, all, index);
  auto ggathered = on_gpu(sub_garbage);
  gather_tokens(ggathered, gall, gindex);
  SPLITMASK_CHECK_EQUAL("gather_tokens", ggathered, gathered);

  auto scattered = all.clone();
  scatter_tokens(scattered, subset, index);
  auto gscattered = on_gpu(all);
  scatter_tokens(gscattered, gsubset, gindex);
  SPLITMASK_CHECK_EQUAL("scatter_tokens (overwrite, repeated positions)", gscattered, scattered);

  auto added = all.clone();
  scatter_tokens(added, subset, index, write_mode::accumulate);
  auto gadded = on_gpu(all);
  scatter_tokens(gadded, gsubset, gindex, write_mode::accumulate);
  SPLITMASK_CHECK_CLOSE("scatter_tokens (accumulate, repeated positions)", gadded, added, 0.0,
                        1e-6);

  gather_ids(targets, ids, index);
  auto gtargets = on_gpu(targets_garbage);
  gather_ids(gtargets, gids, gindex);
  SPLITMASK_CHECK_EQUAL("gather_ids", gtargets, targets);

  mean_tokens_forward(pooled, subset);
  auto gpooled = on_gpu(pooled_garbage);
  mean_tokens_forward(gpooled, gsubset);
  SPLITMASK_CHECK_CLOSE("mean_tokens_forward", gpooled, pooled, 1e-7 * max_abs(pooled), 1e-6);

  const auto gd_pooled = on_gpu(d_pooled);
  copy(d_tokens, sub_garbage);
  mean_tokens_backward(d_tokens, d_pooled);
  auto gd_tokens = on_gpu(sub_garbage);
  mean_tokens_backward(gd_tokens, gd_pooled);
  SPLITMASK_CHECK_CLOSE("mean_tokens_backward (overwrite)", gd_tokens, d_tokens, 0.0, 1e-6);
  copy(d_tokens, sub_garbage);
  mean_tokens_backward(d_tokens, d_pooled, write_mode::accumulate);
  gd_tokens = on_gpu(sub_garbage);
  mean_tokens_backward(gd_tokens, gd_pooled, write_mode::accumulate);
  SPLITMASK_CHECK_CLOSE("mean_tokens_backward (accumulate)", gd_tokens, d_tokens, 1e-7, 1e-6);

  // A position outside [0, N) on the device is reported at the next check of its errors.
  auto bad = index.clone();
  bad.data()[3] = static_cast<std::int32_t>(N);
  bad.data()[B * n - 1] = -2;
  const auto gbad = on_gpu(bad);
  auto gsink = on_gpu(sub_garbage);
  gather_tokens(gsink, gall, gbad);
  CHECK_THROWS_AS(backend::cuda::context::current().check_errors("gather_tokens test"),
                  shape_error);
  auto gall2 = on_gpu(all);
  scatter_tokens(gall2, gsubset, gbad);
  CHECK_THROWS_AS(backend::cuda::context::current().check_errors("scatter_tokens test"),
                  shape_error);
  gather_ids(gtargets, gids, gbad);
  CHECK_THROWS_AS(backend::cuda::context::current().check_errors("gather_ids test"), shape_error);
  CHECK_NOTHROW(backend::cuda::context::current().check_errors("after the bad positions"));
}

TEST_CASE("cuda ops: gather_tokens, scatter_tokens (both modes), gather_ids, mean_tokens") {
  check_tokens<49, 24, 96, 512>(5);
}

template <std::size_t C, std::size_t S, std::size_t P>
void check_patchify(std::size_t B) {
  constexpr std::size_t N = (S / P) * (S / P), L = C * P * P;
  tensor<float, extents<dynamic, C, S, S>> images(B), image_garbage(B);
  tensor<float, extents<dynamic, N, L>> patches(B), patch_garbage(B);
  fill_normal(images, 900);
  fill_normal(image_garbage, 901);
  fill_normal(patch_garbage, 902);
  patchify<P>(patches, images);
  const auto gimages = on_gpu(images);
  auto gpatches = on_gpu(patch_garbage);
  patchify<P>(gpatches, gimages);
  SPLITMASK_CHECK_EQUAL("patchify", gpatches, patches);
  auto gback = on_gpu(image_garbage);
  unpatchify<P>(gback, gpatches);
  SPLITMASK_CHECK_EQUAL("unpatchify (patchify's inverse)", gback, images);
}

TEST_CASE("cuda ops: patchify and unpatchify are the CPU's permutation") {
  check_patchify<3, 32, 8>(3);
}

// ---- The split sampler, the tokenizer -----------------------------------------------------------

template <std::size_t N, class MaskRatio>
void check_splits(std::uint64_t seed, std::size_t batch, std::uint64_t first_image) {
  constexpr std::size_t N_A = patch_split<N, MaskRatio>::kept, N_B = N - N_A;
  CAPTURE(N);
  CAPTURE(N_A);
  CAPTURE(first_image);
  const split_sampler<N, N_A> sampler(seed);
  tensor<std::int32_t, extents<dynamic, N_A>> a(batch);
  tensor<std::int32_t, extents<dynamic, N_B>> b(batch);
  tensor<std::int32_t, extents<dynamic, N_A>, gpu> ga(batch);
  tensor<std::int32_t, extents<dynamic, N_B>, gpu> gb(batch);
  sampler.sample(a, b, first_image);
  sampler.sample(ga, gb, first_image);
  SPLITMASK_CHECK_EQUAL("split subset A", ga, a);
  SPLITMASK_CHECK_EQUAL("split subset B", gb, b);
}

TEST_CASE("cuda ops: the split sampler draws the host's splits bit for bit") {
  using half = std::ratio<1, 2>;
  using three_quarters = std::ratio<3, 4>;
  static_assert(patch_split<49, half>::kept == 24 && patch_split<49, three_quarters>::kept == 12 &&
                patch_split<196, half>::kept == 98);
  check_splits<49, half>(11, 64, 0);  // ViT-Ti/4 on 28 x 28: N 49
  check_splits<49, half>(11, 64, 40);
  check_splits<49, three_quarters>(12, 37, 1000003);
  check_splits<196, half>(13, 64, 64 * 4321);  // ViT-B/16 at 224 px: N 196
  check_splits<196, half>(std::uint64_t{1} << 40, 8, (std::uint64_t{1} << 33) + 5);
}

// The tokenizer's arg-max (cub::WarpReduce) on given scores: the CPU's rule (best = 0, then k
// whenever s[k] > s[best]) exactly, with ties, NaN and -inf in the rows and K not a multiple of
// the warp.
template <std::size_t K>
void check_row_argmax() {
  constexpr std::size_t rows = 300;
  tensor<float, extents<dynamic, K>> scores(rows);
  fill_uniform(scores, 77, -1.0f, 1.0f);
  float* s = scores.data();
  for (std::size_t r = 0; r < rows; ++r) {
    float* row = s + r * K;
    switch (r % 6) {
      case 0:  // ties at the maximum, far apart: the lowest index wins
        row[K / 3] = row[K - 1] = row[K / 5] = 2.0f;
        break;
      case 1:  // every value equal
        for (std::size_t k = 0; k < K; ++k) row[k] = 0.5f;
        break;
      case 2:  // NaN first: never replaced
        row[0] = std::nanf("");
        break;
      case 3:  // NaN elsewhere is skipped
        row[K / 2] = std::nanf("");
        row[K - 2] = 3.0f;
        break;
      case 4:  // all -inf but one
        for (std::size_t k = 0; k < K; ++k) row[k] = -INFINITY;
        row[K - 1] = -1e30f;
        break;
      default:
        break;
    }
  }
  std::vector<std::int32_t> expected(rows);
  for (std::size_t r = 0; r < rows; ++r) {
    std::size_t best = 0;
    for (std::size_t k = 1; k < K; ++k)
      if (s[r * K + k] > s[r * K + best]) best = k;
    expected[r] = static_cast<std::int32_t>(best);
  }
  const auto gscores = on_gpu(scores);
  tensor<std::int32_t, extents<dynamic>, gpu> gids(rows);
  backend::cuda::kernels::row_argmax<K>(gids.data(), gscores.data(), rows);
  const auto got = host_copy(gids);
  std::size_t differing = 0;
  for (std::size_t r = 0; r < rows; ++r) differing += got[r] != expected[r];
  CAPTURE(K);
  CHECK(differing == 0);
}

TEST_CASE("cuda ops: the tokenizer's arg-max is the CPU's rule, bit for bit (ties, NaN, -inf)") {
  check_row_argmax<1000>();
  check_row_argmax<31>();
  check_row_argmax<4096>();
}

template <class cfg, std::size_t K>
void check_device_tokenizer(std::size_t B) {
  constexpr std::size_t N = cfg::patches, L = cfg::patch_length;
  constexpr std::size_t C = cfg::channels, S = cfg::image_size;
  static_assert(C == 3, "three channels' statistics below");
  using images_t = tensor<float, extents<dynamic, C, S, S>>;
  images_t images(B);
  fill_uniform(images, 1000, 0.0f, 1.0f);
  const std::array<float, 3> mean{0.45f, 0.5f, 0.55f}, std_dev{0.28f, 0.3f, 0.26f};
  const auto tok = patch_tokenizer<cfg, K>::sample(images, mean, std_dev, 5);
  images_t batch(B);
  fill_uniform(batch, 1001, 0.0f, 1.0f);
  tensor<float, extents<dynamic, N, L>> patches(B);
  patchify<cfg::patch_size>(patches, batch);
  tensor<std::int32_t, extents<dynamic, N>> ids(B);
  tok.assign(ids, patches);

  device_tokenizer<cfg, K, gpu> dtok(tok);
  const auto gpatches = on_gpu(patches);
  tensor<std::int32_t, extents<dynamic, N>, gpu> gids(B);
  dtok.assign(gids, gpatches);
  const auto got = host_copy(gids);

  // Where the ids differ, both must score the same on the CPU's rule (in double).
  const auto& v = tok.vocabulary();
  auto score = [&](std::size_t r, std::size_t k) {
    double s = 0;
    for (std::size_t c = 0; c < L; ++c) {
      const std::size_t ch = c / (cfg::patch_size * cfg::patch_size);
      const float x = (patches.data()[r * L + c] - mean[ch]) * (1.0f / std_dev[ch]);
      s += double(x) * double(v(k, c));
    }
    return s;
  };
  std::size_t differing = 0, out_of_range = 0;
  double worst = 0;
  for (std::size_t r = 0; r < B * N; ++r) {
    const std::int32_t g = got[r], c = ids.data()[r];
    if (g < 0 || static_cast<std::size_t>(g) >= K) {
      ++out_of_range;
      continue;
    }
    if (g == c) continue;
    ++differing;
    const double sc = score(r, std::size_t(c)), sg = score(r, std::size_t(g));
    worst = std::max(worst, std::abs(sc - sg) / std::max(1.0, std::abs(sc)));
  }
  MESSAGE("device tokenizer: " << differing << " of " << B * N
                               << " ids differ from the host's; worst score gap " << worst);
  CHECK(out_of_range == 0);
  CHECK(worst <= 1e-5);
  CHECK(differing <= B * N / 100);  // near-ties only: rare
}

TEST_CASE("cuda ops: device_tokenizer gives patch_tokenizer::assign's ids (or an equal score)") {
  // 32 x 32 x 3 images, patch 4: N 64, L 48; K 1000.
  check_device_tokenizer<vit_config<32, 3, 4, 64, 1, 4>, 1000>(16);
}

// ---- AdamW, the gradient norm -----------------------------------------------------------------

template <class T>
void check_adamw() {
  struct seg {
    const char* name;
    std::size_t size;
    bool decay;
    double lr_scale;
  };
  // Segments across and within the kernel's 4096-element chunks, with and without decay.
  const std::vector<seg> segs = {{"w1", 5000, true, 1.0},
                                 {"b1", 4097, false, 0.5},
                                 {"w2", 100, true, 2.0},
                                 {"one", 1, false, 1.0},
                                 {"w3", 4096, true, 0.25}};
  std::size_t total = 0;
  for (const auto& s : segs) total += s.size;
  adamw_options options;
  options.weight_decay = 0.05;
  tensor<T, extents<dynamic>> params(total), grads(total);
  fill_normal(params, 1100, 0.0f, 0.5f);
  auto gparams = on_gpu(params);
  tensor<T, extents<dynamic>, gpu> ggrads(total);
  adamw<T> host(options);
  adamw<T, gpu> dev(options);
  std::size_t offset = 0;
  for (const auto& s : segs) {
    host.add(s.name, params.data() + offset, grads.data() + offset, s.size, s.decay, s.lr_scale);
    dev.add(s.name, gparams.data() + offset, ggrads.data() + offset, s.size, s.decay, s.lr_scale);
    offset += s.size;
  }
  for (int step = 0; step < 4; ++step) {
    CAPTURE(step);
    fill_normal(grads, 1110 + std::uint64_t(step), 0.0f, 0.1f * float(step + 1));
    copy(ggrads, grads);
    const double norm = host.gradient_norm(), gnorm = dev.gradient_norm();
    CHECK_MESSAGE(relative_error(gnorm, norm) < 1e-12,
                  "gradient norm: gpu " << gnorm << ", cpu " << norm);
    const double lr = 1e-2 * (step + 1), grad_scale = step == 2 ? 0.4 : 1.0;
    host.step(lr, grad_scale);
    dev.step(lr, grad_scale);
    CHECK(dev.steps() == host.steps());
    SPLITMASK_CHECK_CLOSE("AdamW parameters", gparams, params, 1e-7, 1e-6);
    SPLITMASK_CHECK_CLOSE("AdamW first moment", dev.first_moment(), host.first_moment(),
                          1e-7 * max_abs(host.first_moment()), 1e-6);
    SPLITMASK_CHECK_CLOSE("AdamW second moment", dev.second_moment(), host.second_moment(),
                          1e-7 * max_abs(host.second_moment()), 1e-6);
  }
  // The kernel claims the CPU's bits where the host compiler fuses nothing: report how many.
  const auto gp = host_copy(gparams);
  std::size_t same = 0;
  for (std::size_t i = 0; i < total; ++i) same += gp[i] == params.data()[i];
  MESSAGE("AdamW after 4 steps: " << same << " of " << total
                                  << " parameters bit-equal to the host's");
}

TEST_CASE("cuda ops: AdamW on the device steps as on the host; the gradient norm agrees") {
  check_adamw<float>();
}

}  // namespace
