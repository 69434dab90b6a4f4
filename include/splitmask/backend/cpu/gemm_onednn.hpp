// The oneDNN CPU GEMM (built with SPLITMASK_HAS_ONEDNN, which the CMake target splitmask::onednn
// sets; Debian's libdnnl-dev, whose threads are OpenMP's, so it shares our pool). oneDNN
// compiles its kernels at run time for the instruction set it finds, so a CPU model that a
// BLAS does not know still gets its own vector units. fp32 products go to dnnl_sgemm; bf16
// products (operands rounded to bf16, fp32 accumulation and result) to a matmul primitive,
// cached per shape.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "splitmask/core/config.hpp"
#include "splitmask/ops/matmul.hpp"

#if defined(SPLITMASK_HAS_ONEDNN)
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace splitmask::backend::cpu {

/// x rounded to the nearest bf16 (ties to even), as its 16 bits; NaNs stay NaNs.
inline std::uint16_t to_bf16(float x) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &x, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}

/// The float whose bits are the bf16 `h`.
inline float from_bf16(std::uint16_t h) {
  const std::uint32_t bits = std::uint32_t{h} << 16;
  float x = 0;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

/// out[i] = to_bf16(in[i]) for i < n, on the OpenMP pool when n is large.
inline void round_to_bf16(const float* in, std::uint16_t* out, std::size_t n) {
  const std::ptrdiff_t count = static_cast<std::ptrdiff_t>(n);
  SPLITMASK_OMP(parallel for simd if (n >= (std::size_t{1} << 16)) schedule(static))
  for (std::ptrdiff_t i = 0; i < count; ++i) out[i] = to_bf16(in[i]);
}

#if defined(SPLITMASK_HAS_ONEDNN)

/// The instruction set oneDNN's kernels use on this CPU, in oneDNN's words ("avx2",
/// "avx512_core_bf16", ...).
inline const char* onednn_isa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "no vector extensions";
  }
}

/// Whether this CPU multiplies bf16 in hardware (AVX512_BF16 or AMX), as oneDNN sees it.
inline bool onednn_has_bf16() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return (isa & bf16) == bf16;
}

/// oneDNN's version, "2.6.3".
inline std::string onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

/// One fp32 product of `g` at the given pointers, by dnnl_sgemm (row-major, like ours).
inline void onednn_sgemm(const gemm_args<float>& g, const float* a, const float* b, float* c) {
  const auto m = static_cast<dnnl_dim_t>(g.m), n = static_cast<dnnl_dim_t>(g.n),
             k = static_cast<dnnl_dim_t>(g.k);
  const dnnl_status_t status =
      dnnl_sgemm(g.transpose_a ? 'T' : 'N', g.transpose_b ? 'T' : 'N', m, n, k, g.alpha, a,
                 g.transpose_a ? m : k, b, g.transpose_b ? k : n, g.beta, c, n);
  if (status != dnnl_success)
    throw std::runtime_error("splitmask::matmul: oneDNN's sgemm failed (dnnl_status_t " +
                             std::to_string(int(status)) + ") on a " + std::to_string(g.m) +
                             "x" + std::to_string(g.n) + "x" + std::to_string(g.k) + " product");
}

// The matmul primitives of bf16 products, one per shape, and the bf16 copies of operands.
class onednn_bf16_products {
 public:
  static onednn_bf16_products& instance() {
    static onednn_bf16_products products;
    return products;
  }

  void run(const gemm_args<float>& g) {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::size_t na = g.batch * g.m * g.k, nb = g.batch * g.k * g.n;
    if (a16_.size() < na) a16_.resize(na);
    if (b16_.size() < nb) b16_.resize(nb);
    round_to_bf16(g.a, a16_.data(), na);
    round_to_bf16(g.b, b16_.data(), nb);
    const entry& e = primitive_for(g);
    dnnl::memory a(e.a, engine_, a16_.data()), b(e.b, engine_, b16_.data()), c(e.c, engine_, g.c);
    e.product.execute(stream_, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    stream_.wait();
  }

 private:
  struct entry {
    dnnl::memory::desc a, b, c;
    dnnl::matmul product;
  };
  using key = std::tuple<std::size_t, std::size_t, std::size_t, std::size_t, bool, bool, float,
                         float>;

  onednn_bf16_products() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

  // (batch, rows, cols) of a row-major matrix, or of its transpose when `t`.
  static dnnl::memory::desc matrix(std::size_t batch, std::size_t rows, std::size_t cols, bool t,
                                   dnnl::memory::data_type type) {
    using dims = dnnl::memory::dims;
    const auto B = dnnl_dim_t(batch), R = dnnl_dim_t(rows), C = dnnl_dim_t(cols);
    return dnnl::memory::desc(dims{B, R, C}, type, t ? dims{R * C, 1, R} : dims{R * C, C, 1});
  }

  const entry& primitive_for(const gemm_args<float>& g) {
    const key k{g.batch, g.m, g.n, g.k, g.transpose_a, g.transpose_b, g.alpha, g.beta};
    auto found = cache_.find(k);
    if (found != cache_.end()) return found->second;
    using type = dnnl::memory::data_type;
    entry e;
    e.a = matrix(g.batch, g.m, g.k, g.transpose_a, type::bf16);
    e.b = matrix(g.batch, g.k, g.n, g.transpose_b, type::bf16);
    e.c = matrix(g.batch, g.m, g.n, false, type::f32);
    dnnl::primitive_attr attr;
    if (g.alpha != 1.0f) attr.set_output_scales(0, {g.alpha});
    if (g.beta != 0.0f) {
      dnnl::post_ops sum;
      sum.append_sum(g.beta);
      attr.set_post_ops(sum);
    }
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(e.a, e.b, e.c), attr, engine_);
    e.product = dnnl::matmul(pd);
    return cache_.emplace(k, std::move(e)).first->second;
  }

  std::mutex mutex_;
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::map<key, entry> cache_;
  std::vector<std::uint16_t> a16_, b16_;  // the operands in bf16
};

/// The g.batch products of `g` with bf16 operands (A and B rounded to bf16, products summed in
/// fp32, C in fp32), by a oneDNN matmul primitive. Needs onednn_has_bf16().
inline void onednn_bf16_gemm(const gemm_args<float>& g) {
  onednn_bf16_products::instance().run(g);
}

#endif  // SPLITMASK_HAS_ONEDNN

}  // namespace splitmask::backend::cpu
