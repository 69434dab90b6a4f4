// gemm_option: the example programs' choice of CPU matrix products: --gemm (the library; auto
// by default: backend/cpu/gemm.hpp chooses from what the machine does) and --precision (fp32 or
// bf16 operands, where the CPU has bf16), and the line that says what runs.
#pragma once

#include <cstdio>
#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>
#include <splitmask/backend/cpu/gemm.hpp>

namespace splitmask::examples {

/// The CPU products a run asked for.
struct cpu_gemm_choice {
  std::string library = "auto";   // auto, onednn, openblas or eigen
  std::string precision = "fp32";  // fp32 or bf16
};

/// Adds --gemm to `app`, writing `choice.library`.
inline void add_gemm_option(CLI::App& app, cpu_gemm_choice& choice) {
  app.add_option("--gemm", choice.library,
                 "CPU matrix products: auto (oneDNN, else OpenBLAS where it has kernels for this "
                 "CPU, else Eigen), onednn, openblas or eigen")
      ->check(CLI::IsMember({"auto", "onednn", "openblas", "eigen"}))
      ->capture_default_str();
}

/// Makes this thread's products use `choice` (std::invalid_argument, with the reason, when the
/// library or bf16 cannot run here) and prints e.g. "GEMM: oneDNN 2.6.3 (avx512_core_bf16), fp32
/// products" on stderr.
inline void use_cpu_gemm(const cpu_gemm_choice& choice) {
  namespace cpu = backend::cpu;
  if (choice.library != "auto") cpu::use_gemm(cpu::parse_gemm_library(choice.library));
  try {
    cpu::set_matmul_precision(choice.precision == "bf16" ? cpu::matmul_precision::bf16
                                                         : cpu::matmul_precision::fp32);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("--precision " + choice.precision + ": " + e.what());
  }
  std::fprintf(stderr, "GEMM: %s, %s products\n", cpu::gemm_description().c_str(),
               choice.precision == "bf16" ? "bf16 (fp32 accumulation)" : "fp32");
}

}  // namespace splitmask::examples
