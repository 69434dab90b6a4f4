// splitmask-features: the mean-pooled encoder features of a pre-trained checkpoint for a set of
// images, written as NumPy arrays (features.npy, and labels.npy when the data has labels).
//
//   splitmask-features --checkpoint runs/pretrain/checkpoint.safetensors --split test --out feats
//
// The images are normalised with the statistics of the data the checkpoint was trained on, as
// the pretrainer fed them (no augmentation). The preset is found from the checkpoint's encoder sizes.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>
#include <splitmask/data/augment.hpp>
#include <splitmask/data/dataset.hpp>
#include <splitmask/io/feature_extractor.hpp>

#include "common/gemm_option.hpp"
#include "common/npy.hpp"
#include "common/presets.hpp"
#include "common/threads.hpp"

namespace ex = splitmask::examples;

namespace {

struct request {
  std::string checkpoint, data, format, split = "test", out = "features";  // format: the run's
  std::size_t limit = 0, batch = 256;
  std::string inputs;  // also write the normalised images fed to the encoder (for checks)
};

template <class Config>
int extract(const request& r, const splitmask::checkpoint_info& info) {
  constexpr std::size_t C = Config::channels, S = Config::image_size, D = Config::width;
  splitmask::feature_extractor<Config> features(r.checkpoint);
  const auto& run = info.run;
  const std::string data = r.data.empty() ? run.value("data", std::string()) : r.data;
  const std::string format = r.format.empty() ? run.value("format", std::string("auto")) : r.format;
  if (data.empty()) throw splitmask::file_error(r.checkpoint + ": no data path stored; give --data");
  const auto set =
      splitmask::load_image_set(data, r.split, splitmask::parse_data_format(format), S, C);
  const splitmask::channel_stats stats = splitmask::checkpoint_data_stats(info, C);
  if (set.channels != C || set.height != S || set.width != S)
    throw splitmask::file_error(set.source + ": the images are not " + std::to_string(S) + "x" +
                                std::to_string(S) + "x" + std::to_string(C));
  const std::size_t n = r.limit > 0 ? std::min(r.limit, set.size()) : set.size();
  std::vector<float> all(n * D), inputs(r.inputs.empty() ? 0 : n * C * S * S);
  splitmask::tensor<float, splitmask::extents<splitmask::dynamic, C, S, S>> images(r.batch);
  for (std::size_t first = 0; first < n; first += r.batch) {
    const std::size_t b = std::min(r.batch, n - first);
    if (images.batch() != b) images = decltype(images)(b);
    for (std::size_t i = 0; i < b; ++i)
      splitmask::augment_image(set, first + i, stats, splitmask::augmentation::none(),
                               splitmask::counter_rng(0), 0, images.data() + i * C * S * S, S);
    if (!inputs.empty())
      std::copy(images.data(), images.data() + b * C * S * S, inputs.data() + first * C * S * S);
    const auto f = features(images);
    std::copy(f.data(), f.data() + b * D, all.data() + first * D);
    std::fprintf(stderr, "\r%zu/%zu images", first + b, n);
  }
  std::fprintf(stderr, "\n");
  std::filesystem::create_directories(r.out);
  ex::write_npy(r.out + "/features.npy", all.data(), {n, D});
  if (!set.labels.empty()) ex::write_npy(r.out + "/labels.npy", set.labels.data(), {n});
  if (!inputs.empty()) ex::write_npy(r.inputs, inputs.data(), {n, C, S, S});
  std::printf("%zu x %zu features of %s (step %llu, %s) -> %s/features.npy\n", n, D,
              set.source.c_str(), static_cast<unsigned long long>(info.step),
              info.objective.c_str(), r.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ex::restart_with_passive_wait(argv);
  request r;
  ex::cpu_gemm_choice gemm;
  CLI::App app{"Mean-pooled encoder features of a pre-trained checkpoint", "splitmask-features"};
  app.add_option("--checkpoint", r.checkpoint, "A checkpoint written by splitmask-pretrain")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_option("--data", r.data, "Images (default: the data the checkpoint was trained on)");
  app.add_option("--format", r.format, "Data format (default: the run's; auto: detected)")
      ->check(CLI::IsMember(splitmask::data_format_names()));
  app.add_option("--split", r.split, "train or test")
      ->check(CLI::IsMember({"train", "test"}))
      ->capture_default_str();
  app.add_option("--limit", r.limit, "At most this many images (0: all)");
  app.add_option("--batch", r.batch, "Images per forward pass")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 16))
      ->capture_default_str();
  app.add_option("--out", r.out, "Output folder")->capture_default_str();
  app.add_option("--inputs", r.inputs, "Also write the normalised input images to this .npy");
  ex::add_gemm_option(app, gemm);
  CLI11_PARSE(app, argc, argv);
  try {
    ex::use_cpu_gemm(gemm);
    const auto info = splitmask::read_checkpoint_info(r.checkpoint);
    for (const auto& p : ex::preset_list()) {
      const int status = ex::with_preset(p.name, [&](auto preset) {
        using Config = typename decltype(preset)::config;
        return info.encoder == splitmask::config_json<Config>() ? extract<Config>(r, info) : -1;
      });
      if (status >= 0) return status;
    }
    throw splitmask::file_error(r.checkpoint + ": its encoder " + info.encoder.dump() +
                                " is none of this program's presets (" + ex::preset_names() + ")");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
