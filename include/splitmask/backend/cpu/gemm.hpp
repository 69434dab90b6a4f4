// The CPU GEMM behind matmul, chosen at run time from what the machine really does: oneDNN when
// the build has it (its kernels are compiled for the CPU it finds), else OpenBLAS when it runs
// kernels made for this CPU (not its generic SSE3 fallback), else Eigen, which always works.
// SPLITMASK_GEMM=onednn|openblas|eigen in the environment, or use_gemm(), overrides the choice;
// a library asked for that cannot run well here is refused with the reason, never swapped
// silently.
// Float products can run with bf16 operands (set_matmul_precision) where the CPU has
// AVX512_BF16 or AMX, through oneDNN. Batches of small products (rank-3 matmul) run one product
// per thread, as the libraries do not nest parallel regions.
#pragma once

#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "splitmask/backend/cpu/evaluate.hpp"
#include "splitmask/backend/cpu/gemm_eigen.hpp"
#include "splitmask/backend/cpu/gemm_onednn.hpp"
#include "splitmask/backend/cpu/gemm_openblas.hpp"
#include "splitmask/core/config.hpp"
#include "splitmask/core/device.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/core/backend.hpp"

namespace splitmask::backend::cpu {

/// The libraries that can run the CPU's matrix products.
enum class gemm_library { onednn, openblas, eigen };

/// The operands of float products: fp32, or rounded to bf16 (fp32 accumulation and result).
enum class matmul_precision { fp32, bf16 };

inline const char* to_string(gemm_library library) {
  switch (library) {
    case gemm_library::onednn: return "onednn";
    case gemm_library::openblas: return "openblas";
    default: return "eigen";
  }
}

/// "onednn", "openblas" or "eigen" as a gemm_library; std::invalid_argument otherwise.
inline gemm_library parse_gemm_library(const std::string& name) {
  for (gemm_library l : {gemm_library::onednn, gemm_library::openblas, gemm_library::eigen})
    if (name == to_string(l)) return l;
  throw std::invalid_argument("unknown CPU GEMM '" + name +
                              "': the choices are onednn, openblas and eigen");
}

/// The CPU's widest vector instructions: oneDNN's name for them when the build has oneDNN
/// ("avx512_core_bf16", "avx2", ...), else "avx512f", "avx2" or "sse".
inline std::string cpu_isa() {
#if defined(SPLITMASK_HAS_ONEDNN)
  return onednn_isa();
#elif defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "sse";
#else
  return "unknown";
#endif
}

/// Why `library` cannot run this build's products well here, or "" when it can.
inline std::string gemm_unusable_reason(gemm_library library) {
  switch (library) {
    case gemm_library::onednn:
#if defined(SPLITMASK_HAS_ONEDNN)
      return "";
#else
      return "this build has no oneDNN (Debian: libdnnl-dev, found when CMake configures)";
#endif
    case gemm_library::openblas: {
#if defined(SPLITMASK_HAS_OPENBLAS)
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
      const bool avx2 = __builtin_cpu_supports("avx2");
#else
      const bool avx2 = false;
#endif
      const std::string core = openblas_core();
      if (openblas_core_is_generic(core, avx2))
        return "OpenBLAS runs its generic " + core + " kernels on this CPU (" + cpu_isa() +
               "), which does not know this CPU model";
      return "";
#else
      return "this build has no OpenBLAS (Debian: libopenblas-openmp-dev, found when CMake "
             "configures)";
#endif
    }
    default:
      return "";
  }
}

namespace gemm_state {
inline std::atomic<int>& chosen() {  // a gemm_library, or -1 before the first product
  static std::atomic<int> library{-1};
  return library;
}
inline std::mutex& choosing() {
  static std::mutex m;
  return m;
}
inline matmul_precision& precision() {  // per thread, as on CUDA
  thread_local matmul_precision p = matmul_precision::fp32;
  return p;
}
}  // namespace gemm_state

/// Makes `library` run the CPU's products from now on. Throws std::invalid_argument, with the
/// reason, when it cannot run well here.
inline void use_gemm(gemm_library library) {
  const std::string reason = gemm_unusable_reason(library);
  if (!reason.empty())
    throw std::invalid_argument(std::string("CPU GEMM ") + to_string(library) + ": " + reason);
  gemm_state::chosen().store(int(library));
}

/// The library this machine's products should run on: SPLITMASK_GEMM when the environment sets
/// it (std::invalid_argument when that library cannot run well here), else oneDNN, else
/// OpenBLAS unless it runs generic kernels (then said on stderr), else Eigen.
inline gemm_library default_gemm() {
  if (const char* name = std::getenv("SPLITMASK_GEMM"); name != nullptr && *name != '\0') {
    gemm_library library = gemm_library::eigen;
    try {
      library = parse_gemm_library(name);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("SPLITMASK_GEMM: ") + e.what());
    }
    const std::string reason = gemm_unusable_reason(library);
    if (!reason.empty())
      throw std::invalid_argument(std::string("SPLITMASK_GEMM=") + name + ": " + reason);
    return library;
  }
  if (gemm_unusable_reason(gemm_library::onednn).empty()) return gemm_library::onednn;
#if defined(SPLITMASK_HAS_OPENBLAS)
  const std::string reason = gemm_unusable_reason(gemm_library::openblas);
  if (reason.empty()) return gemm_library::openblas;
  std::fprintf(stderr, "splitmask: not using OpenBLAS for matrix products: %s; using Eigen\n",
               reason.c_str());
#endif
  return gemm_library::eigen;
}

/// The library that runs the CPU's products: the one use_gemm() set, else default_gemm(),
/// chosen at the first call.
inline gemm_library gemm_in_use() {
  const int chosen = gemm_state::chosen().load(std::memory_order_acquire);
  if (chosen >= 0) return gemm_library(chosen);
  std::lock_guard<std::mutex> lock(gemm_state::choosing());
  if (gemm_state::chosen().load() < 0) gemm_state::chosen().store(int(default_gemm()));
  return gemm_library(gemm_state::chosen().load());
}

/// Whether float products can run with bf16 operands here: a oneDNN build on a CPU with
/// AVX512_BF16 or AMX.
inline bool bf16_products_available() {
#if defined(SPLITMASK_HAS_ONEDNN)
  return onednn_has_bf16();
#else
  return false;
#endif
}

/// Sets the precision of this thread's float products. bf16 throws std::invalid_argument,
/// naming the CPU's instruction set, where bf16_products_available() is false.
inline void set_matmul_precision(matmul_precision precision) {
  if (precision == matmul_precision::bf16 && !bf16_products_available()) {
#if defined(SPLITMASK_HAS_ONEDNN)
    throw std::invalid_argument("bf16 products need a CPU with AVX512_BF16 or AMX; this one has " +
                                cpu_isa());
#else
    throw std::invalid_argument(
        "bf16 products need oneDNN (Debian: libdnnl-dev, found when CMake configures) and a CPU "
        "with AVX512_BF16 or AMX; this build has no oneDNN");
#endif
  }
  gemm_state::precision() = precision;
}

inline matmul_precision get_matmul_precision() { return gemm_state::precision(); }

/// This thread's float products in `precision` for the scope's lifetime, then as before
/// (std::invalid_argument as set_matmul_precision).
class matmul_precision_scope {
 public:
  explicit matmul_precision_scope(matmul_precision precision) : saved_(get_matmul_precision()) {
    set_matmul_precision(precision);
  }
  ~matmul_precision_scope() { gemm_state::precision() = saved_; }
  matmul_precision_scope(const matmul_precision_scope&) = delete;
  matmul_precision_scope& operator=(const matmul_precision_scope&) = delete;

 private:
  matmul_precision saved_;
};

/// `library` runs the CPU's products for the scope's lifetime, then the one before (throws as
/// use_gemm).
class gemm_scope {
 public:
  explicit gemm_scope(gemm_library library) : saved_(gemm_in_use()) { use_gemm(library); }
  ~gemm_scope() { gemm_state::chosen().store(int(saved_)); }
  gemm_scope(const gemm_scope&) = delete;
  gemm_scope& operator=(const gemm_scope&) = delete;

 private:
  gemm_library saved_;
};

/// Runs `f` with this thread's float products in fp32, whatever the precision set: for
/// products whose rounding would change a discrete result (the tokenizer's arg-max).
template <class F>
decltype(auto) with_fp32_products(F&& f) {
  const matmul_precision_scope fp32(matmul_precision::fp32);
  return f();
}

/// The library in use and the instructions its kernels use, for logs and benchmark labels:
/// "oneDNN 2.6.3 (avx512_core_bf16)", "OpenBLAS 0.3.21 (Haswell kernels)", "Eigen 3.4.0 (avx2)".
inline std::string gemm_description() {
  switch (gemm_in_use()) {
#if defined(SPLITMASK_HAS_ONEDNN)
    case gemm_library::onednn:
      return "oneDNN " + onednn_version() + " (" + onednn_isa() + ")";
#endif
#if defined(SPLITMASK_HAS_OPENBLAS)
    case gemm_library::openblas: {
      std::string config = openblas_get_config();  // "OpenBLAS 0.3.21 DYNAMIC_ARCH ..."
      config = config.substr(0, config.find(' ', config.find(' ') + 1));
      return config + " (" + openblas_core() + " kernels)";
    }
#endif
    default:
      return "Eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." +
             std::to_string(EIGEN_MAJOR_VERSION) + "." + std::to_string(EIGEN_MINOR_VERSION) +
             " (" + cpu_isa() + ")";
  }
}

/// Products with fewer multiply-adds than this are not worth splitting across threads;
/// batches of them run in parallel over the batch.
inline constexpr std::size_t small_product = std::size_t{1} << 21;

/// Runs the g.batch products of `g` with `product` (one of the libraries' functions): in
/// parallel over the batch when each product is small, else one after the other, each on all
/// threads.
template <class T, class Product>
void gemm_batched(const gemm_args<T>& g, Product product) {
  const std::size_t sa = g.m * g.k, sb = g.k * g.n, sc = g.m * g.n;
  const std::size_t madds = g.m * g.n * g.k;
  const bool parallel_batch = g.batch > 1 && madds < small_product && run_parallel(g.batch * madds);
  const std::ptrdiff_t batch = static_cast<std::ptrdiff_t>(g.batch);
  SPLITMASK_OMP(parallel for if (parallel_batch) schedule(static))
  for (std::ptrdiff_t i = 0; i < batch; ++i) {
    const std::size_t u = static_cast<std::size_t>(i);
    product(g, g.a + u * sa, g.b + u * sb, g.c + u * sc);
  }
}

/// The products of `g` by `library` (fp32 operands).
template <class T>
void gemm_with(gemm_library library, const gemm_args<T>& g) {
  switch (library) {
#if defined(SPLITMASK_HAS_ONEDNN)
    case gemm_library::onednn:
      if constexpr (std::is_same_v<T, float>) {
        onednn_gemm(g);  // the batch too
        return;
      }
      break;  // oneDNN has no double GEMM: Eigen's below
#endif
#if defined(SPLITMASK_HAS_OPENBLAS)
    case gemm_library::openblas: {
      // Braced (and an array, not a braced list): nvcc's host pass miscompiles the terser form.
      const std::size_t sizes[] = {g.m, g.n, g.k};
      for (const std::size_t v : sizes) {
        if (v > static_cast<std::size_t>(INT_MAX))
          throw shape_error("splitmask::matmul: extent " + std::to_string(v) +
                            " exceeds OpenBLAS's int range");
      }
      gemm_batched(g, openblas_gemm<T>);
      return;
    }
#endif
    default:
      break;
  }
  gemm_batched(g, eigen_gemm<T>);
}

}  // namespace splitmask::backend::cpu

namespace splitmask::detail {

template <>
struct gemm_backend<device::cpu> {
  template <class T>
  static void run(const gemm_args<T>& g) {
    namespace cpu = backend::cpu;
#if defined(SPLITMASK_HAS_ONEDNN)
    if constexpr (std::is_same_v<T, float>) {
      if (cpu::get_matmul_precision() == cpu::matmul_precision::bf16) {
        cpu::onednn_bf16_gemm(g);
        return;
      }
    }
#endif
    cpu::gemm_with(cpu::gemm_in_use(), g);
  }
};

}  // namespace splitmask::detail
