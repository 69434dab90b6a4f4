// The GPU's figures: the card's matrix peaks as cuBLAS reaches them (one large square GEMM in
// bf16, in fp32 on TF32 tensor cores, and in plain fp32), and one full SplitMask training step
// on the GPU (tokens, split, forward and backward of both branches, clipping, AdamW) in fp32,
// with TF32 products, and with bf16 products (the mixed-precision mode), for the paper's ViT-B/16
// at 224 px (presets::vit_b16_224: D 768, depth 12, 12 heads, decoder 2 x 768 with 12 heads, K
// 8192, mask ratio 1/2) at B = 64, and the 28 x 28 x 1 ViT-Ti preset at B = 64 as a quick sanity
// figure.
//
// Timing: CUDA events around each GEMM or step, reported as Google Benchmark's manual time.
// A step copies its host images to the device and returns host losses (it synchronises), so the
// events bracket the whole step. Counters of a step:
//   ms/step, images/s     from the event times (wall_ms/step: host clock, for comparison)
//   TFLOP/s               matrix FLOPs (step_flops: 2·M·N·K per GEMM, backward twice the forward)
//                         per second
//   MFU_bf16_%            TFLOP/s over this card's measured bf16 GEMM rate (gemm/bf16 below)
//   MFU_tf32_%            TFLOP/s over this card's measured TF32 GEMM rate
//   GFLOP/step, loss      the step's matrix work; the total loss of the last step (finite)
//   device_GiB            device memory taken by the trainer and its first step (cudaMemGetInfo)
// The peaks are measured by the gemm/* cases when they run first (the default order), else once
// on demand.
//
//   build/gpu/benchmarks/bench_cuda_step --benchmark_min_time=1
//
// Exits with 77 (and says so) when no CUDA device is present. Built with
// -DSPLITMASK_BENCH_GEMM_ONLY it holds the GEMM cases alone and needs nothing of splitmask but
// the CUDA error checks (scripts/gpu-check.sh falls back to that build if the step cannot be
// compiled):
//   nvcc -std=c++17 -O3 -arch=sm_90 -DSPLITMASK_BENCH_GEMM_ONLY -I include
//     benchmarks/bench_cuda_step.cu -lcublas -lbenchmark -o bench_cuda_gemm      (one line)
#ifndef SPLITMASK_BENCH_GEMM_ONLY
#include <splitmask/cuda.hpp>
#include <splitmask/splitmask.hpp>  // the tokenizer is built on the host
#endif

#include <benchmark/benchmark.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"

namespace {
namespace cu = splitmask::backend::cuda;

// ---- Small RAII wrappers ----------------------------------------------------------------------

class device_buffer {
 public:
  explicit device_buffer(std::size_t bytes) { SPLITMASK_CUDA_CHECK(cudaMalloc(&p_, bytes)); }
  ~device_buffer() {
    if (p_) cudaFree(p_);
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
};

class cuda_event {
 public:
  cuda_event() { SPLITMASK_CUDA_CHECK(cudaEventCreate(&e_)); }
  ~cuda_event() {
    if (e_) cudaEventDestroy(e_);
  }
  cuda_event(const cuda_event&) = delete;
  cuda_event& operator=(const cuda_event&) = delete;
  void record(cudaStream_t s) { SPLITMASK_CUDA_CHECK(cudaEventRecord(e_, s)); }
  /// Seconds from `start` to this event (waits for this one).
  double seconds_since(const cuda_event& start) const {
    SPLITMASK_CUDA_CHECK(cudaEventSynchronize(e_));
    float ms = 0;
    SPLITMASK_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, e_));
    return static_cast<double>(ms) * 1e-3;
  }

 private:
  cudaEvent_t e_ = nullptr;
};

/// Runs `body`; on an exception, reports it through SkipWithError and returns false.
template <class F>
bool guarded(benchmark::State& state, F&& body) {
  try {
    body();
    return true;
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  } catch (...) {
    state.SkipWithError("unknown exception");
  }
  return false;
}

// ---- cuBLAS peak rates ------------------------------------------------------------------------

enum class gemm_kind { bf16, tf32, fp32 };

const char* name_of(gemm_kind k) {
  switch (k) {
    case gemm_kind::bf16:
      return "bf16";
    case gemm_kind::tf32:
      return "tf32";
    case gemm_kind::fp32:
      return "fp32";
  }
  return "?";
}

/// Uniform on [-1, 1) from a hash of the index (splitmix64's finaliser).
__device__ float hash_uniform(std::uint64_t i, std::uint64_t seed) {
  std::uint64_t x = ((i + 1) * 0x9E3779B97F4A7C15ull) ^ seed;
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return static_cast<float>(x >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

template <class T>
__global__ void fill_uniform(T* p, std::size_t n, std::uint64_t seed) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const float v = hash_uniform(i, seed);
    if constexpr (std::is_same_v<T, __nv_bfloat16>)
      p[i] = __float2bfloat16(v);
    else
      p[i] = v;
  }
}

/// C = A·B for n x n matrices of one kind, on its own cuBLAS handle and stream (the library's
/// context and its math mode are left alone).
class gemm_problem {
 public:
  gemm_problem(gemm_kind kind, int n)
      : kind_(kind), n_(n), a_(bytes(kind, n)), b_(bytes(kind, n)), c_(bytes(kind, n)) {
    SPLITMASK_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    try {
      SPLITMASK_CUBLAS_CHECK(cublasCreate(&handle_));
      SPLITMASK_CUBLAS_CHECK(cublasSetStream(handle_, stream_));
      SPLITMASK_CUBLAS_CHECK(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH));
      fill(a_, 1);
      fill(b_, 2);
      fill(c_, 3);
      SPLITMASK_CUDA_CHECK(cudaStreamSynchronize(stream_));
    } catch (...) {
      release();
      throw;
    }
  }
  ~gemm_problem() { release(); }
  gemm_problem(const gemm_problem&) = delete;
  gemm_problem& operator=(const gemm_problem&) = delete;

  cudaStream_t stream() const { return stream_; }
  double flops() const { return 2.0 * double(n_) * double(n_) * double(n_); }

  /// Queues one GEMM on the stream.
  void run() {
    const float alpha = 1.0f, beta = 0.0f;
    switch (kind_) {
      case gemm_kind::bf16:
        SPLITMASK_CUBLAS_CHECK(cublasGemmEx(handle_, CUBLAS_OP_N, CUBLAS_OP_N, n_, n_, n_, &alpha,
                                            a_.get(), CUDA_R_16BF, n_, b_.get(), CUDA_R_16BF, n_,
                                            &beta, c_.get(), CUDA_R_16BF, n_, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT));
        break;
      case gemm_kind::tf32:
        SPLITMASK_CUBLAS_CHECK(cublasGemmEx(handle_, CUBLAS_OP_N, CUBLAS_OP_N, n_, n_, n_, &alpha,
                                            a_.get(), CUDA_R_32F, n_, b_.get(), CUDA_R_32F, n_,
                                            &beta, c_.get(), CUDA_R_32F, n_,
                                            CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
        break;
      case gemm_kind::fp32:
        SPLITMASK_CUBLAS_CHECK(cublasSgemm(handle_, CUBLAS_OP_N, CUBLAS_OP_N, n_, n_, n_, &alpha,
                                           static_cast<const float*>(a_.get()), n_,
                                           static_cast<const float*>(b_.get()), n_, &beta,
                                           static_cast<float*>(c_.get()), n_));
        break;
    }
  }

 private:
  static std::size_t bytes(gemm_kind kind, int n) {
    const std::size_t element = kind == gemm_kind::bf16 ? sizeof(__nv_bfloat16) : sizeof(float);
    return static_cast<std::size_t>(n) * static_cast<std::size_t>(n) * element;
  }
  void fill(const device_buffer& buffer, std::uint64_t seed) {
    const std::size_t count = static_cast<std::size_t>(n_) * static_cast<std::size_t>(n_);
    if (kind_ == gemm_kind::bf16)
      fill_uniform<<<1024, 256, 0, stream_>>>(static_cast<__nv_bfloat16*>(buffer.get()), count,
                                              seed);
    else
      fill_uniform<<<1024, 256, 0, stream_>>>(static_cast<float*>(buffer.get()), count, seed);
    SPLITMASK_CUDA_CHECK(cudaGetLastError());
  }
  void release() {
    if (handle_) cublasDestroy(handle_);
    handle_ = nullptr;
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }

  gemm_kind kind_;
  int n_;
  device_buffer a_, b_, c_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t handle_ = nullptr;
};

constexpr int peak_size = 8192;  // 2·8192³ = 1.1 TFLOP per GEMM; 0.4 GiB (bf16) or 0.8 GiB
std::map<gemm_kind, double> measured_peaks;  // TFLOP/s, the best rate seen per kind

void note_peak(gemm_kind kind, double tflops) {
  auto& best = measured_peaks[kind];
  if (tflops > best) best = tflops;
}

/// The card's rate for `kind` in TFLOP/s: what gemm/<kind> measured, else measured now (a few
/// warm-up GEMMs, then 20 timed back to back).
[[maybe_unused]] double peak_tflops(gemm_kind kind) {
  const auto found = measured_peaks.find(kind);
  if (found != measured_peaks.end() && found->second > 0) return found->second;
  gemm_problem problem(kind, peak_size);
  for (int i = 0; i < 3; ++i) problem.run();
  cuda_event start, stop;
  constexpr int count = 20;
  start.record(problem.stream());
  for (int i = 0; i < count; ++i) problem.run();
  stop.record(problem.stream());
  const double tflops = problem.flops() * count / stop.seconds_since(start) * 1e-12;
  note_peak(kind, tflops);
  return tflops;
}

void gemm_peak(benchmark::State& state, gemm_kind kind) {
  const int n = static_cast<int>(state.range(0));
  std::unique_ptr<gemm_problem> problem;
  std::unique_ptr<cuda_event> start, stop;
  if (!guarded(state, [&] {
        problem = std::make_unique<gemm_problem>(kind, n);
        start = std::make_unique<cuda_event>();
        stop = std::make_unique<cuda_event>();
        for (int i = 0; i < 3; ++i) problem->run();  // heuristics, clocks up
        SPLITMASK_CUDA_CHECK(cudaStreamSynchronize(problem->stream()));
      }))
    return;
  double total = 0;
  for (auto _ : state) {
    double seconds = 0;
    if (!guarded(state, [&] {
          start->record(problem->stream());
          problem->run();
          stop->record(problem->stream());
          seconds = stop->seconds_since(*start);
        }))
      break;
    state.SetIterationTime(seconds);
    total += seconds;
  }
  if (state.error_occurred() || total <= 0) return;
  const double iterations = static_cast<double>(state.iterations());
  const double tflops = problem->flops() * iterations / total * 1e-12;
  note_peak(kind, tflops);
  state.counters["TFLOP/s"] = tflops;
  state.counters["ms/GEMM"] = total / iterations * 1e3;
  state.SetLabel(name_of(kind));
}

// ---- The SplitMask step on the GPU --------------------------------------------------------------
#ifndef SPLITMASK_BENCH_GEMM_ONLY

template <class Config>
using host_images =
    splitmask::tensor<float, splitmask::extents<splitmask::dynamic, Config::channels,
                                                Config::image_size, Config::image_size>>;
// The preset's vocabulary: 512 for ViT-Ti on 28 x 28 images, 8192 at 224 px.
template <class Config>
constexpr std::size_t vocabulary = Config::image_size == 224 ? 8192 : 512;
template <class Config>
using cuda_trainer = splitmask::trainer<splitmask::splitmask_objective<vocabulary<Config>>, Config,
                                        float, splitmask::device::cuda>;

/// The tokenizer of bench_train_step: K patches drawn from the images, channel mean 0.5, std
/// 0.29 (uniform pixels), seed 1; built on the host.
template <class Config>
splitmask::patch_tokenizer<Config, vocabulary<Config>> tokenizer_for(
    const host_images<Config>& images) {
  std::array<float, Config::channels> mean{}, std_dev{};
  mean.fill(0.5f);
  std_dev.fill(0.29f);
  return splitmask::patch_tokenizer<Config, vocabulary<Config>>::sample(images, mean, std_dev, 1);
}

struct step_case_base {
  virtual ~step_case_base() = default;
};

/// Host images and a CUDA trainer for one config and batch, kept from one benchmark case to the
/// next (fp32 and TF32 share it): building the ViT-B/16 tokenizer and trainer takes seconds.
template <class Config>
struct step_case : step_case_base {
  explicit step_case(std::size_t b) : batch(b), images(b) {
    images = splitmask::uniform<float>(splitmask::counter_rng(7), images.extents(), 0.f, 1.f);
    std::size_t free_before = 0, free_after = 0, total = 0;
    SPLITMASK_CUDA_CHECK(cudaMemGetInfo(&free_before, &total));
    trainer = std::make_unique<cuda_trainer<Config>>(batch, splitmask::pretrain_options{},
                                                     splitmask::splitmask_options{},
                                                     tokenizer_for<Config>(images));
    trainer->step(images);  // first-use allocations out of the timing
    SPLITMASK_CUDA_CHECK(cudaMemGetInfo(&free_after, &total));
    device_bytes = free_before > free_after ? double(free_before - free_after) : 0.0;
  }
  std::size_t batch;
  host_images<Config> images;
  std::unique_ptr<cuda_trainer<Config>> trainer;
  double device_bytes = 0;
};

std::unique_ptr<step_case_base> current_case;  // one at a time: the previous one's memory is freed

template <class Config>
step_case<Config>& step_case_for(std::size_t batch) {
  if (auto* c = dynamic_cast<step_case<Config>*>(current_case.get()); c && c->batch == batch)
    return *c;
  current_case.reset();
  auto fresh = std::make_unique<step_case<Config>>(batch);
  auto& ref = *fresh;
  current_case = std::move(fresh);
  return ref;
}

/// Puts the library's products back to exact fp32 when a case ends, however it ends.
struct precision_scope {
  explicit precision_scope(cu::matmul_precision p) { cu::set_matmul_precision(p); }
  ~precision_scope() {
    try {
      cu::set_matmul_precision(cu::matmul_precision::fp32);
    } catch (...) {
    }
  }
  precision_scope(const precision_scope&) = delete;
  precision_scope& operator=(const precision_scope&) = delete;
};

template <class Config>
void splitmask_step(benchmark::State& state, cu::matmul_precision precision) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  step_case<Config>* c = nullptr;
  std::unique_ptr<precision_scope> mode;
  std::unique_ptr<cuda_event> start, stop;
  if (!guarded(state, [&] {
        c = &step_case_for<Config>(batch);
        mode = std::make_unique<precision_scope>(precision);
        start = std::make_unique<cuda_event>();
        stop = std::make_unique<cuda_event>();
        c->trainer->step(c->images);  // warm-up in this math mode (cuBLAS picks its kernels)
      }))
    return;
  const cudaStream_t stream = cudaStreamPerThread;  // the library's stream for this thread
  double total = 0, wall = 0;
  splitmask::step_losses last{};
  for (auto _ : state) {
    double seconds = 0;
    if (!guarded(state, [&] {
          const auto t0 = std::chrono::steady_clock::now();
          start->record(stream);
          last = c->trainer->step(c->images);
          stop->record(stream);
          seconds = stop->seconds_since(*start);
          wall += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }))
      break;
    state.SetIterationTime(seconds);
    total += seconds;
  }
  if (state.error_occurred() || total <= 0) return;
  const double iterations = static_cast<double>(state.iterations());
  const double flops = cuda_trainer<Config>::step_flops(static_cast<double>(batch));
  const double tflops = flops * iterations / total * 1e-12;
  state.counters["ms/step"] = total / iterations * 1e3;
  state.counters["wall_ms/step"] = wall / iterations * 1e3;
  state.counters["images/s"] = double(batch) * iterations / total;
  state.counters["TFLOP/s"] = tflops;
  state.counters["GFLOP/step"] = flops * 1e-9;
  state.counters["loss"] = last.total;
  state.counters["device_GiB"] = c->device_bytes / double(1ull << 30);
  // The peaks are measured here, after the timed loop, when no gemm/* case ran before this one;
  // if that fails the step's own figures still stand.
  try {
    state.counters["MFU_bf16_%"] = 100.0 * tflops / peak_tflops(gemm_kind::bf16);
    state.counters["MFU_tf32_%"] = 100.0 * tflops / peak_tflops(gemm_kind::tf32);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_step: no MFU: measuring a GEMM peak failed: %s\n", e.what());
  }
  state.SetLabel(precision == cu::matmul_precision::fp32   ? "fp32"
                 : precision == cu::matmul_precision::tf32 ? "fp32 + TF32 products"
                                                           : "fp32 + bf16 products (mixed)");
}

void register_steps() {
  namespace presets = splitmask::presets;
  const std::pair<const char*, cu::matmul_precision> modes[] = {
      {"fp32", cu::matmul_precision::fp32},
      {"tf32", cu::matmul_precision::tf32},
      {"bf16", cu::matmul_precision::bf16}};
  for (const auto& [mode, precision] : modes) {
    const cu::matmul_precision p = precision;
    benchmark::RegisterBenchmark(
        (std::string("splitmask_step/ti4-28/") + mode).c_str(),
        [p](benchmark::State& s) { splitmask_step<presets::vit_ti4_28>(s, p); })
        ->Arg(64)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (const auto& [mode, precision] : modes) {
    const cu::matmul_precision p = precision;
    benchmark::RegisterBenchmark(
        (std::string("splitmask_step/b16-224/") + mode).c_str(),
        [p](benchmark::State& s) { splitmask_step<presets::vit_b16_224>(s, p); })
        ->Arg(64)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
}

void release_steps() { current_case.reset(); }

#else  // SPLITMASK_BENCH_GEMM_ONLY

void register_steps() {}
void release_steps() {}

#endif  // SPLITMASK_BENCH_GEMM_ONLY

void register_gemms() {
  for (const gemm_kind kind : {gemm_kind::bf16, gemm_kind::tf32, gemm_kind::fp32})
    benchmark::RegisterBenchmark((std::string("gemm/") + name_of(kind)).c_str(),
                                 [kind](benchmark::State& s) { gemm_peak(s, kind); })
        ->Arg(peak_size)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
}

std::string device_description() {
  int device = 0;
  SPLITMASK_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  SPLITMASK_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  int runtime = 0, driver = 0;
  SPLITMASK_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  SPLITMASK_CUDA_CHECK(cudaDriverGetVersion(&driver));
  char text[512];
  std::snprintf(text, sizeof text,
                "%s (sm_%d%d, %d SMs, %.1f GiB); CUDA runtime %d.%d, driver API %d.%d", prop.name,
                prop.major, prop.minor, prop.multiProcessorCount,
                static_cast<double>(prop.totalGlobalMem) / double(1ull << 30), runtime / 1000,
                runtime % 1000 / 10, driver / 1000, driver % 1000 / 10);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (cu::device_count() == 0) {
    std::printf("SKIPPED: no CUDA device is present; bench_cuda_step was compiled but not run.\n");
    return 77;
  }
  try {
    const std::string device = device_description();
    std::printf("bench_cuda_step on %s\n", device.c_str());
    benchmark::AddCustomContext("gpu", device);
    register_gemms();
    register_steps();
    benchmark::RunSpecifiedBenchmarks();
    release_steps();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_step: %s\n", e.what());
    return 1;
  }
  benchmark::Shutdown();
  return 0;
}
