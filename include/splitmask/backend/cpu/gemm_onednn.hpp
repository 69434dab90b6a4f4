// The oneDNN CPU GEMM (built with SPLITMASK_HAS_ONEDNN, which the CMake target splitmask::onednn
// sets; Debian's libdnnl-dev, whose threads are OpenMP's, so it shares our pool). oneDNN
// compiles its kernels at run time for the instruction set it finds, so a CPU model that a
// BLAS does not know still gets its own vector units. Products run on matmul primitives cached
// per shape, fp32 or bf16 (operands rounded to bf16, fp32 accumulation and result), with a
// scratchpad of ours. dnnl_sgemm is here for comparison (bench_matmul): it allocates its
// packing buffer in every call, and on the step's shapes that memory comes back from the
// system each time (page faults, docs/performance.md).
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
#include "splitmask/core/backend.hpp"

#if defined(SPLITMASK_HAS_ONEDNN)
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace splitmask::backend::cpu {

/// x rounded to the nearest bf16 (ties to even), as its 16 bits; NaNs stay NaNs.
inline std::uint16_t to_bf16(float x) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &x, sizeof bits);
  const std::uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  const std::uint32_t quiet_nan = (bits >> 16) | 0x40u;
  // A select, not a branch, so that loops over it vectorise.
  return static_cast<std::uint16_t>((bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
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

/// One fp32 product of `g` at the given pointers, by dnnl_sgemm (row-major, like ours): not
/// matmul's path (see the top), measured beside it by bench_matmul.
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

// oneDNN matmul primitives, one per product shape and operand type, cached, with a scratchpad
// of ours kept between products (oneDNN's own would be new memory in every call, whose page
// faults cost more than the product on the step's shapes; dnnl_sgemm has the same problem on
// some shapes), and the bf16 copies of the operands.
class onednn_products {
 public:
  static onednn_products& instance() {
    static onednn_products products;
    return products;
  }

  /// The g.batch products of `g`, with fp32 operands or with both rounded to bf16.
  void run(const gemm_args<float>& g, bool bf16) {
    std::lock_guard<std::mutex> lock(mutex_);
    const void* a = g.a;
    const void* b = g.b;
    if (bf16) {
      const std::size_t na = g.batch * g.m * g.k, nb = g.batch * g.k * g.n;
      if (a16_.size() < na) a16_.resize(na);
      if (b16_.size() < nb) b16_.resize(nb);
      round_to_bf16(g.a, a16_.data(), na);
      round_to_bf16(g.b, b16_.data(), nb);
      a = a16_.data();
      b = b16_.data();
    }
    const entry& e = primitive_for(g, bf16);
    if (scratchpad_.size() < e.scratchpad.get_size()) scratchpad_.resize(e.scratchpad.get_size());
    // oneDNN's memory objects do not write through these pointers (sources are read-only).
    dnnl::memory ma(e.a, engine_, const_cast<void*>(a)), mb(e.b, engine_, const_cast<void*>(b)),
        mc(e.c, engine_, g.c), scratchpad(e.scratchpad, engine_, scratchpad_.data());
    e.product.execute(stream_, {{DNNL_ARG_SRC, ma},
                                {DNNL_ARG_WEIGHTS, mb},
                                {DNNL_ARG_DST, mc},
                                {DNNL_ARG_SCRATCHPAD, scratchpad}});
    stream_.wait();
  }

 private:
  struct entry {
    dnnl::memory::desc a, b, c, scratchpad;
    dnnl::matmul product;
  };
  using key = std::tuple<bool, std::size_t, std::size_t, std::size_t, std::size_t, bool, bool,
                         float, float>;

  onednn_products() : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {}

  // (batch, rows, cols) of a row-major matrix, or of its transpose when `t`.
  static dnnl::memory::desc matrix(std::size_t batch, std::size_t rows, std::size_t cols, bool t,
                                   dnnl::memory::data_type type) {
    using dims = dnnl::memory::dims;
    const auto B = dnnl_dim_t(batch), R = dnnl_dim_t(rows), C = dnnl_dim_t(cols);
    return dnnl::memory::desc(dims{B, R, C}, type, t ? dims{R * C, 1, R} : dims{R * C, C, 1});
  }

  const entry& primitive_for(const gemm_args<float>& g, bool bf16) {
    const key k{bf16, g.batch, g.m, g.n, g.k, g.transpose_a, g.transpose_b, g.alpha, g.beta};
    auto found = cache_.find(k);
    if (found != cache_.end()) return found->second;
    using type = dnnl::memory::data_type;
    const type in = bf16 ? type::bf16 : type::f32;
    entry e;
    e.a = matrix(g.batch, g.m, g.k, g.transpose_a, in);
    e.b = matrix(g.batch, g.k, g.n, g.transpose_b, in);
    e.c = matrix(g.batch, g.m, g.n, false, type::f32);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (g.alpha != 1.0f) attr.set_output_scales(0, {g.alpha});
    if (g.beta != 0.0f) {
      dnnl::post_ops sum;
      sum.append_sum(g.beta);
      attr.set_post_ops(sum);
    }
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(e.a, e.b, e.c), attr, engine_);
    e.scratchpad = pd.scratchpad_desc();
    e.product = dnnl::matmul(pd);
    return cache_.emplace(k, std::move(e)).first->second;
  }

  std::mutex mutex_;
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::map<key, entry> cache_;
  std::vector<std::uint16_t> a16_, b16_;  // the operands in bf16
  std::vector<unsigned char> scratchpad_;  // the largest any cached product needs
};

/// The g.batch fp32 products of `g` by oneDNN's matmul primitive.
inline void onednn_gemm(const gemm_args<float>& g) { onednn_products::instance().run(g, false); }

/// The g.batch products of `g` with bf16 operands (A and B rounded to bf16, products summed in
/// fp32, C in fp32), by oneDNN's matmul primitive. Needs onednn_has_bf16().
inline void onednn_bf16_gemm(const gemm_args<float>& g) {
  onednn_products::instance().run(g, true);
}

#endif  // SPLITMASK_HAS_ONEDNN

}  // namespace splitmask::backend::cpu
