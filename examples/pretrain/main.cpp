// splitmask-pretrain: SplitMask (or BEiT, or MAE) pre-training of a ViT on a folder of images,
// CIFAR or MNIST-style IDX files, with progress, metrics, a loss curve and resumable checkpoints.
//
//   splitmask-pretrain                                   # Fashion-MNIST, mini-28, 300 steps
//   splitmask-pretrain --preset s4-32 --data cifar-10-batches-bin --epochs 100 --out runs/c10
//   splitmask-pretrain --resume runs/c10/checkpoint.safetensors
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <splitmask/core/error.hpp>
#include <splitmask/data/dataset.hpp>
#include <splitmask/io/checkpoint.hpp>
#include <string>
#include <vector>

#include "../common/first_images.hpp"
#include "../common/gemm_option.hpp"
#include "../common/presets.hpp"
#include "../common/threads.hpp"
#include "objectives.hpp"
#include "runs.hpp"
#if defined(SPLITMASK_PRETRAIN_MPI)
#include <splitmask/comm/mpi_communicator.hpp>
#endif

namespace ex = splitmask::examples;

namespace {

// The command-line option of each setting (to_json's keys).
std::string option_of(const std::string& key) {
  if (key == "flip") return "--no-flip";
  std::string option = "--" + key;
  for (auto& c : option) c = c == '_' ? '-' : c;
  return option;
}

// On --resume, the run's settings come from the checkpoint; an option also given on the command
// line must agree with them. These may change: where the data is (the data itself is checked by
// its image count and statistics), --out, --threads, --save-every and --stop-after.
ex::pretrain_settings resumed_settings(const std::string& checkpoint, const CLI::App& app,
                                       const ex::pretrain_settings& given) {
  splitmask::checkpoint_info info;
  try {
    info = splitmask::read_checkpoint_info(checkpoint);
  } catch (const splitmask::file_error& e) {
    throw splitmask::file_error("--resume " + checkpoint +
                                ": not a splitmask checkpoint we can read: " + e.what());
  }
  ex::pretrain_settings stored;
  try {
    stored = ex::settings_from_json(info.run);
  } catch (const nlohmann::json::exception& e) {
    throw splitmask::file_error(checkpoint + ": the run settings in its metadata are malformed (" +
                                e.what() + ")");
  }
  const auto stored_json = ex::to_json(stored), given_json = ex::to_json(given);
  for (const auto& [key, value] : stored_json.items()) {
    const std::string option = option_of(key);
    if (app.count(option) == 0 || given_json[key] == value) continue;
    if (key == "data" || key == "format") continue;  // the data may have moved
    throw std::invalid_argument(option + " " + given_json[key].dump() +
                                " differs from the resumed run's " + value.dump() +
                                "; a resumed run keeps its settings (leave the option out)");
  }
  if (app.count("--data") > 0) stored.data = given.data;
  if (app.count("--format") > 0) stored.format = given.format;
  return stored;
}

// A new run refuses to replace another run's checkpoint unless told to; temporary files left by
// a write that was killed are removed.
void prepare_out(const std::string& out, bool resuming, bool overwrite) {
  namespace fs = std::filesystem;
  const fs::path checkpoint = fs::path(out) / "checkpoint.safetensors";
  if (!resuming && !overwrite && fs::exists(checkpoint))
    throw std::invalid_argument(out + " holds a run (" + checkpoint.string() +
                                "): continue it with --resume " + checkpoint.string() +
                                ", replace it with --overwrite, or choose another --out");
  fs::create_directories(out);
  for (const auto& entry : fs::directory_iterator(out))
    if (entry.path().filename().string().rfind("checkpoint.safetensors.tmp-", 0) == 0)
      fs::remove(entry.path());
}

// Everything the command line sets.
struct invocation {
  ex::pretrain_settings s;
  ex::run_control control;
  int threads = 0;
  ex::cpu_gemm_choice gemm;
  bool list_presets = false, overwrite = false;
};

void add_run_options(CLI::App& app, ex::pretrain_settings& s) {
  app.add_option("--preset", s.preset, "ViT size (see --list-presets)")->capture_default_str();
  app.add_option("--data", s.data,
                 "A folder: IDX files (MNIST layout, raw or .gz), CIFAR-10/100 binary batches, or "
                 "PNG/JPEG images (one sub-folder per class)")
      ->capture_default_str();
  app.add_option("--format", s.format, "Data format (auto: detected from the files)")
      ->check(CLI::IsMember(splitmask::data_format_names()))
      ->capture_default_str();
  app.add_option("--objective", s.objective, "Pre-training objective")
      ->check(CLI::IsMember(ex::objective_names<ex::nano_28>()))
      ->capture_default_str();
  auto* steps = app.add_option("--steps", s.steps, "Training steps")
                    ->check(CLI::PositiveNumber)
                    ->capture_default_str();
  app.add_option("--epochs", s.epochs,
                 "Epochs instead of steps (the last partial batch of each is dropped)")
      ->check(CLI::PositiveNumber)
      ->excludes(steps);
  app.add_option("--batch", s.batch, "Images per step (at least 2: InfoNCE needs negatives)")
      ->check(CLI::Range(std::size_t{2}, std::size_t{1} << 20))
      ->capture_default_str();
  app.add_option("--lr", s.lr, "Peak learning rate (default: 1.5e-3 * batch / 256)")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", s.warmup, "Warm-up steps (default: 5% of the run)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--min-scale", s.min_scale, "Random resized crop: smallest area kept (1: no crop)")
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
  app.add_flag("!--no-flip", s.flip, "No random horizontal flips");
  app.add_option("--seed", s.seed, "Seed of initialisation, tokenizer, data order, crops, splits")
      ->capture_default_str();
  app.add_option("--vocabulary-images", s.vocabulary_images,
                 "Images the tokenizer's vocabulary is drawn from")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--train-limit", s.train_limit,
                 "Pre-train on the first N training images only (0: all)")
      ->capture_default_str();
  app.add_option("--kmeans-iterations", s.kmeans_iterations,
                 "Spherical k-means iterations refining the vocabulary (0: random patches)")
      ->capture_default_str();
  app.add_flag("--distinct-words", s.distinct_words,
               "Draw the vocabulary's words from patches whose directions differ (by default a "
               "common patch, such as black background, can fill several words)");
  app.add_option_function<std::vector<std::string>>(
         "--objective-options",
         [&s](const std::vector<std::string>& given) {
           s.objective_options = nlohmann::json::object();
           for (const auto& item : given) {
             const auto equals = item.find('=');
             const auto value = nlohmann::json::parse(
                 equals == std::string::npos ? "" : item.substr(equals + 1), nullptr, false);
             if (equals == 0 || value.is_discarded())
               throw CLI::ValidationError(
                   "--objective-options",
                   "'" + item + "' is not NAME=VALUE (a number or true/false)");
             s.objective_options[item.substr(0, equals)] = value;
           }
         },
         "The objective's options as NAME=VALUE: SplitMask's lambda (InfoNCE's weight, 1) and "
         "tau (0.2), MAE's norm_pix_loss (true)")
      ->delimiter(',');
}

void add_control_options(CLI::App& app, invocation& in) {
  auto& control = in.control;
  app.add_option("--out", control.out,
                 "Output folder: checkpoint.safetensors, metrics.jsonl, loss.svg")
      ->capture_default_str();
  app.add_option("--threads", in.threads, "CPU threads (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--device", control.device,
                 "Where the training step runs: cpu, or cuda (the current GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  app.add_option("--precision", control.precision,
                 "The matrix products: fp32, bf16 (bf16 operands, fp32 accumulation, weights and "
                 "optimiser; on the CPU where it has AVX512_BF16 or AMX), or tf32 (--device cuda)")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}))
      ->capture_default_str();
  ex::add_gemm_option(app, in.gemm);
  app.add_option("--save-every", control.save_every,
                 "Steps between checkpoints (default: 10 per run)");
  app.add_option(
      "--stop-after", control.stop_after,
      "End after this many steps, with a checkpoint to --resume from (training in slices)");
  app.add_option("--resume", control.resume, "Continue the run of this checkpoint")
      ->check(CLI::ExistingFile);
  app.add_flag("--overwrite", in.overwrite, "Start a new run even where --out holds one");
  app.add_flag("--list-presets", in.list_presets, "List the presets and exit");
}

// The CPU's or the GPU's matrix products, as asked.
void choose_products(const CLI::App& app, invocation& in) {
  if (in.control.device == "cpu") {
    if (in.control.precision == "tf32")
      throw std::invalid_argument(
          "--precision tf32 applies to --device cuda; the CPU's "
          "products are fp32 or bf16");
    in.gemm.precision = in.control.precision;
    ex::use_cpu_gemm(in.gemm);
  } else if (app.count("--gemm") != 0) {
    throw std::invalid_argument(
        "--gemm chooses the CPU's matrix products; with --device cuda "
        "they run on cuBLAS");
  }
}

// The training images, checked against the preset's size.
splitmask::image_set load_data(const ex::pretrain_settings& s, const ex::preset_info& preset) {
  auto set = ex::first_images(
      splitmask::load_image_set(s.data, "train", splitmask::parse_data_format(s.format),
                                preset.image_size, preset.channels),
      s.train_limit);
  if (set.channels != preset.channels || set.height != preset.image_size ||
      set.width != preset.image_size)
    throw splitmask::file_error(
        set.source + ": the images are " + std::to_string(set.height) + "x" +
        std::to_string(set.width) + "x" + std::to_string(set.channels) + ", preset " + s.preset +
        " takes " + std::to_string(preset.image_size) + "x" + std::to_string(preset.image_size) +
        "x" + std::to_string(preset.channels) +
        "; presets that fit: " + ex::presets_fitting(set.height, set.channels));
  return set;
}

// Threads when --threads is not given (0: OpenMP's default, OMP_NUM_THREADS or the CPUs this
// process may run on). Several processes share the machine's CPUs, each within those its CPU
// affinity allows. mpirun binds each process to one core unless told otherwise, which leaves
// the rest idle: under mpirun, rank 0 says so.
int default_threads(const splitmask::communicator& comm) {
  const int machine = ex::cpus_of_machine(), allowed = ex::cpus_allowed();
  const int share = std::max(1, machine / comm.ranks_on_this_node());
  const bool launched_by_mpirun = comm.size() > 1 || std::getenv("OMPI_COMM_WORLD_SIZE");
  if (launched_by_mpirun && allowed < share && comm.rank() == 0)
    std::fprintf(stderr,
                 "note: this process may run on %d of the machine's %d CPUs (mpirun binds each "
                 "process to one core unless given --bind-to none or --map-by slot:PE=%d); it "
                 "uses %d thread%s\n",
                 allowed, machine, share, allowed, allowed == 1 ? "" : "s");
  if (comm.size() == 1 || !ex::has_openmp || std::getenv("OMP_NUM_THREADS")) return 0;
  return std::min(allowed, share);
}

// Set up (products, resumed settings, output folder, data), then the run on its device.
int run(const CLI::App& app, invocation& in) {
  auto& s = in.s;
  auto& control = in.control;
  ex::set_threads(in.threads > 0 ? in.threads : default_threads(*control.comm));
  choose_products(app, in);
  if (!control.resume.empty()) {
    s = resumed_settings(control.resume, app, s);
    if (app.count("--out") == 0)
      control.out = std::filesystem::path(control.resume).parent_path().string();
    if (control.out.empty()) control.out = ".";
  }
  const auto& preset = ex::find_preset(s.preset);
  if (control.comm->rank() == 0) prepare_out(control.out, !control.resume.empty(), in.overwrite);
  control.comm->barrier();
  s.data = std::filesystem::absolute(s.data).lexically_normal().string();  // for --resume
  const auto set = load_data(s, preset);
  ex::stop_on_signals();
  if (control.device == "cuda") {
#if defined(SPLITMASK_PRETRAIN_CUDA)
    return ex::run_on_cuda(s, set, control);
#else
    throw std::invalid_argument(
        "--device cuda: this splitmask-pretrain was built without CUDA (nvcc was not found "
        "when it was configured, or SPLITMASK_ENABLE_CUDA was OFF)");
#endif
  }
  switch (preset.image_size) {
    case 28:
      return ex::run_on_cpu<28>(s, set, control);
    case 32:
      return ex::run_on_cpu<32>(s, set, control);
    default:
      return ex::run_on_cpu<224>(s, set, control);
  }
}

}  // namespace

int main(int argc, char** argv) {
  ex::restart_with_passive_wait(argv);
  invocation in;
  in.control.out = "runs/pretrain";
  CLI::App app{"SplitMask pre-training of a Vision Transformer on your images",
               "splitmask-pretrain"};
  add_run_options(app, in.s);
  add_control_options(app, in);
  CLI11_PARSE(app, argc, argv);
  if (in.list_presets) {
    for (const auto& p : ex::preset_list())
      std::printf("%-10s %zux%zux%zu  %s\n", p.name, p.image_size, p.image_size, p.channels, p.use);
    return 0;
  }
#if defined(SPLITMASK_PRETRAIN_MPI)
  splitmask::mpi_session mpi(argc, argv);  // one process without mpirun
  splitmask::mpi_communicator world;
  in.control.comm = &world;
#endif
  try {
    return run(app, in);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
#if defined(SPLITMASK_PRETRAIN_MPI)
    if (world.size() > 1) MPI_Abort(MPI_COMM_WORLD, 1);  // the other ranks would wait forever
#endif
    return 1;
  }
}
