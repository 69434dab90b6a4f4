// Checkpoints: a trainer's whole state saved and loaded exactly for every objective (a resumed
// run's losses equal an uninterrupted run's, bit for bit), the encoder alone for features, the
// files of version 1 (tests/golden/checkpoint_v1_*.safetensors, written by the code before the
// objectives' redesign: tests/golden/make_checkpoint_v1.cpp.txt), and every mismatch a user can
// make (config, objective, missing or extra tensors, malformed metadata) refused clearly.
// Also: a non-finite loss stops a step, naming the term and the step.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <ratio>
#include <string>
#include <type_traits>
#include <vector>

#include "splitmask/io/checkpoint.hpp"
#include "splitmask/tensor/expr/random.hpp"
#include "splitmask/train/checkpoint.hpp"
#include "splitmask/train/objectives/beit.hpp"
#include "splitmask/train/objectives/mae.hpp"
#include "splitmask/train/objectives/splitmask.hpp"
#include "splitmask/train/trainer.hpp"
#include "support/synthetic_images.hpp"

namespace {

using namespace splitmask;

// 12 x 12 x 2 images, patch 4 (N = 9), D 16, depth 2; decoder 2 x 12; K = 7.
using tiny = vit_config<12, 2, 4, 16, 2, 2>;
using deeper = vit_config<12, 2, 4, 16, 3, 2>;
using tiny_decoder = decoder_config<12, 2, 2>;
using tiny_splitmask = splitmask_objective<7, std::ratio<1, 2>, tiny_decoder>;
using tiny_beit = beit_objective<7>;
using tiny_mae = mae_objective<std::ratio<3, 4>, tiny_decoder>;
using tokenizer_type = patch_tokenizer<tiny, 7>;
constexpr std::size_t B = 4;
using images_type = tensor<float, extents<dynamic, 2, 12, 12>>;

std::string temp_path(const std::string& name) {
  return "/tmp/splitmask_test_checkpoint_" + std::to_string(::getpid()) + "_" + name;
}

images_type batch_of(std::uint64_t seed) {
  images_type images(B);
  images = normal<float>(counter_rng(seed), images.extents(), 0.0f, 1.0f);
  return images;
}

pretrain_options test_options() {
  pretrain_options o;
  o.lr = 1e-2;
  o.warmup_steps = 2;
  o.total_steps = 10;
  o.seed = 5;
  return o;
}

template <class Trainer>
std::vector<float> flat_state(Trainer& trainer) {
  std::vector<float> state;
  detail::for_each_group(trainer, [&](const char*, auto& model) {
    const auto p = model.flat_params();
    state.insert(state.end(), p.data(), p.data() + p.size());
  });
  for (auto moment : {trainer.optimizer().first_moment(), trainer.optimizer().second_moment()})
    state.insert(state.end(), moment.data(), moment.data() + moment.size());
  if constexpr (detail::has_tokenizer<typename Trainer::model_type>::value) {
    const auto& v = trainer.objective().tokenizer().vocabulary();
    state.insert(state.end(), v.data(), v.data() + v.size());
  }
  return state;
}

tokenizer_type sampled_tokenizer() {
  return tokenizer_type::sample(batch_of(1), {0.0f, 0.0f}, {1.0f, 1.0f}, 3);
}

// A trainer of Objective as a checkpoint describes it: its options, and its tokenizer if it has
// one.
template <class Objective>
std::unique_ptr<trainer<Objective, tiny>> trainer_from(const std::string& path) {
  const auto file = safetensors_reader::open(path);
  const auto info = read_checkpoint_info(file, path);
  const auto options = checkpoint_options(info);
  const auto objective = checkpoint_objective_options<Objective>(info);
  if constexpr (std::is_same_v<Objective, tiny_mae>)
    return std::make_unique<trainer<Objective, tiny>>(B, options, objective);
  else
    return std::make_unique<trainer<Objective, tiny>>(B, options, objective,
                                                      load_tokenizer<tiny, 7>(file, path));
}

template <class Objective>
std::unique_ptr<trainer<Objective, tiny>> new_trainer(typename Objective::options o = {}) {
  if constexpr (std::is_same_v<Objective, tiny_mae>)
    return std::make_unique<trainer<Objective, tiny>>(B, test_options(), o);
  else
    return std::make_unique<trainer<Objective, tiny>>(B, test_options(), o, sampled_tokenizer());
}

template <class Objective>
void check_resume_is_exact(typename Objective::options objective_options) {
  auto uninterrupted = new_trainer<Objective>(objective_options);
  for (std::uint64_t s = 0; s < 3; ++s) uninterrupted->step(batch_of(10 + s));
  const std::string path = temp_path("resume.safetensors");
  save_checkpoint(path, *uninterrupted, {{"note", "test"}});
  const auto info = read_checkpoint_info(path);
  CHECK(info.step == 3);
  CHECK(info.version == 2);
  CHECK(info.run["note"] == "test");
  CHECK(info.encoder == config_json<tiny>());
  CHECK(info.objective_config == (objective_config_json<Objective, tiny>()));
  CHECK(info.objective_options == objective_options_json<Objective>(objective_options));
  CHECK(info.groups["encoder"].size() == 28);
  auto resumed = trainer_from<Objective>(path);
  load_checkpoint(path, *resumed);
  CHECK(resumed->steps() == 3);
  CHECK(flat_state(*resumed) == flat_state(*uninterrupted));
  for (std::uint64_t s = 3; s < 6; ++s) {
    const auto a = uninterrupted->step(batch_of(10 + s));
    const auto b = resumed->step(batch_of(10 + s));
    CHECK(a.total == b.total);  // bit for bit
    CHECK(a.terms[0].value == b.terms[0].value);
    CHECK(a.grad_norm == b.grad_norm);
    CHECK(a.lr == b.lr);
  }
  CHECK(flat_state(*resumed) == flat_state(*uninterrupted));
  std::remove(path.c_str());
}

TEST_CASE("checkpoint: SplitMask resumed from a checkpoint continues bit for bit") {
  check_resume_is_exact<tiny_splitmask>({0.3, 0.7});
}

TEST_CASE("checkpoint: BEiT resumed from a checkpoint continues bit for bit") {
  check_resume_is_exact<tiny_beit>({});
}

TEST_CASE("checkpoint: MAE resumed from a checkpoint continues bit for bit") {
  check_resume_is_exact<tiny_mae>({false});
}

// Version 1: the files and the losses of the steps after them, from the code before the
// redesign (Eigen's products; another library or CPU rounds differently, hence 1e-5).
template <class Objective>
void check_version_1(const char* name, double total_3, double norm_3) {
  const std::string path =
      std::string(SPLITMASK_GOLDEN_DIR) + "/checkpoint_v1_" + name + ".safetensors";
  const auto info = read_checkpoint_info(path);
  CHECK(info.version == 1);
  CHECK(info.objective == name);
  CHECK(info.step == 2);
  CHECK(info.encoder == config_json<tiny>());
  auto resumed = trainer_from<Objective>(path);
  load_checkpoint(path, *resumed);
  CHECK(resumed->steps() == 2);
  CHECK(resumed->options().lr == 1e-2);
  const auto l = resumed->step(batch_of(12));
  MESSAGE(std::string(name) << " step 3 after a version 1 checkpoint: total " << l.total
                            << " (then " << total_3 << "), gradient norm " << l.grad_norm
                            << " (then " << norm_3 << ")");
  CHECK(std::abs(l.total - total_3) < 1e-5 * total_3);
  CHECK(std::abs(l.grad_norm - norm_3) < 1e-5 * norm_3);
  vit_encoder<tiny, float> encoder(0);
  load_encoder(path, encoder);
}

TEST_CASE("checkpoint: version 1 files load and continue as they did") {
  check_version_1<tiny_splitmask>("splitmask", 4.8139049588544243, 1.2623509572450191);
  check_version_1<tiny_beit>("beit", 1.9897564589977264, 1.3481651196476334);
  const auto info = read_checkpoint_info(std::string(SPLITMASK_GOLDEN_DIR) +
                                         "/checkpoint_v1_splitmask.safetensors");
  const auto options = checkpoint_objective_options<tiny_splitmask>(info);
  CHECK(options.tau == 0.3);
  CHECK(options.lambda == 0.7);
}

TEST_CASE("checkpoint: timm names, the config and the tokenizer in the file") {
  const auto images = batch_of(1);
  trainer<tiny_splitmask, tiny> trainer(
      B, test_options(), {}, tokenizer_type::sample(images, {0.1f, 0.2f}, {0.5f, 0.6f}, 3));
  const std::string path = temp_path("names.safetensors");
  save_checkpoint(path, trainer);
  const auto file = safetensors_reader::open(path);
  for (const char* name : {"patch_embed.proj.weight", "blocks.1.attn.qkv.weight", "norm.bias",
                           "decoder_embed.weight", "mask_token", "decoder_pred.weight",
                           "tokenizer.vocabulary", "optimizer.exp_avg.blocks.0.mlp.fc1.weight"})
    CHECK_MESSAGE(file.contains(name), name);
  CHECK(file.entry("patch_embed.proj.weight").shape == std::vector<std::uint64_t>{16, 2, 4, 4});
  CHECK(file.entry("tokenizer.vocabulary").shape == std::vector<std::uint64_t>{7, 32});
  const auto tokenizer = load_tokenizer<tiny, 7>(file, path);
  CHECK(tokenizer.mean() == trainer.objective().tokenizer().mean());
  CHECK(tokenizer.std_dev() == trainer.objective().tokenizer().std_dev());
  const auto groups = read_checkpoint_info(file, path).groups;
  CHECK(groups["encoder"][0] == "patch_embed.proj.weight");
  CHECK(groups["objective"][0] == "decoder_embed.weight");

  // The encoder alone, as a user wanting features loads it: the same features.
  vit_encoder<tiny, float> encoder(99);  // other weights until loaded
  load_encoder(path, encoder);
  vit_features<tiny> features, reference;
  const auto a = features(encoder, images);
  const auto b = reference(trainer.encoder(), images);
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a.data()[i] == b.data()[i]);
  std::remove(path.c_str());
}

TEST_CASE("checkpoint: a config, objective or tensor set that does not match is refused") {
  const auto images = batch_of(1);
  const auto tokenizer = sampled_tokenizer();
  trainer<tiny_splitmask, tiny> trainer(B, test_options(), {}, tokenizer);
  const std::string path = temp_path("mismatch.safetensors");
  save_checkpoint(path, trainer);

  SUBCASE("another config: the size that differs is named") {
    splitmask::trainer<tiny_splitmask, deeper> other(
        B, test_options(), {},
        patch_tokenizer<deeper, 7>::sample(images, {0.0f, 0.0f}, {1.0f, 1.0f}, 3));
    CHECK_THROWS_WITH_AS(load_checkpoint(path, other),
                         doctest::Contains("encoder depth is 2; this program is compiled for 3"),
                         file_error);
    vit_encoder<deeper, float> encoder(0);
    CHECK_THROWS_AS(load_encoder(path, encoder), file_error);
  }
  SUBCASE("another objective, or other objective sizes") {
    splitmask::trainer<tiny_beit, tiny> beit(B, test_options(), {}, tokenizer);
    CHECK_THROWS_WITH_AS(load_checkpoint(path, beit), doctest::Contains("splitmask objective"),
                         file_error);
    splitmask::trainer<splitmask_objective<7, std::ratio<1, 2>, decoder_config<16, 2, 2>>, tiny>
        wider(B, test_options(), {}, tokenizer);
    CHECK_THROWS_WITH_AS(load_checkpoint(path, wider),
                         doctest::Contains("objective decoder_width is 12"), file_error);
  }
  SUBCASE("other tokenizer statistics") {
    splitmask::trainer<tiny_splitmask, tiny> other(
        B, test_options(), {}, tokenizer_type::sample(images, {0.5f, 0.0f}, {1.0f, 1.0f}, 3));
    CHECK_THROWS_WITH_AS(load_checkpoint(path, other), doctest::Contains("statistics"), file_error);
  }

  // Rewrites the checkpoint without tensor `drop`, with an extra tensor, or with one metadata
  // field replaced.
  const auto original = safetensors_reader::open(path);
  auto rewrite = [&](const std::string& drop, bool extra, const std::string& key,
                     const std::string& value) {
    std::vector<std::vector<float>> data;
    safetensors_writer w;
    data.reserve(original.names().size() + 1);
    for (const auto& name : original.names()) {
      if (name == drop) continue;
      data.push_back(original.read<float>(name));
      w.add(name, data.back().data(), original.entry(name).shape);
    }
    if (extra) {
      data.push_back({1.0f});
      w.add("head.weight", data.back().data(), {1});
    }
    for (const auto& [k, v] : original.metadata()) w.set_metadata(k, k == key ? value : v);
    const std::string bad = temp_path("bad.safetensors");
    w.write(bad);
    return bad;
  };
  splitmask::trainer<tiny_splitmask, tiny> fresh(B, test_options(), {}, tokenizer);
  auto refused = [&](const std::string& file, const char* words) {
    CHECK_THROWS_WITH_AS(load_checkpoint(file, fresh), doctest::Contains(words), file_error);
    std::remove(file.c_str());
  };
  refused(rewrite("blocks.1.mlp.fc2.bias", false, "", ""), "blocks.1.mlp.fc2.bias");
  refused(rewrite("optimizer.exp_avg_sq.norm.weight", false, "", ""), "exp_avg_sq.norm.weight");
  refused(rewrite("", true, "", ""), "unexpected tensor 'head.weight'");
  refused(rewrite("", false, "format", "something.else"), "format is 'something.else'");
  refused(rewrite("", false, "format_version", "7"), "format version 7");
  refused(rewrite("", false, "step", "-3"), "the step '-3' is not a number");
  refused(rewrite("", false, "encoder", "{not json"), "'encoder' is not a JSON object");
  refused(rewrite("", false, "objective_options", "[]"), "'objective_options' is not a JSON");
  refused(rewrite("", false, "objective", "Mae!"), "the objective 'Mae!' is not a name");
  refused(rewrite("", false, "objective", "mae"), "trained with the mae objective");
  refused(rewrite("", false, "objective_options", "{\"tau\": 1}"), "options are malformed");
  refused(rewrite("", false, "tokenizer", "{\"mean\": [0], \"std\": [1, 1]}"),
          "'mean' is not a list of 2 numbers");
  std::remove(path.c_str());
}

TEST_CASE("a NaN loss stops the step before any update, naming the term and the step") {
  const auto images = batch_of(1);
  trainer<tiny_splitmask, tiny> trainer(B, test_options(), {}, sampled_tokenizer());
  trainer.step(images);
  trainer.step(images);
  trainer.objective().decoder().params().pred_bias.data()[0] =
      std::numeric_limits<float>::quiet_NaN();
  const auto before = flat_state(trainer);
  // The term and the 1-based step (the third), as the pretrainer's log numbers steps.
  CHECK_THROWS_WITH_AS(trainer.step(images), doctest::Contains("nan at step 3"), non_finite_loss);
  try {
    trainer.step(images);
  } catch (const non_finite_loss& e) {
    CHECK(std::string(e.what()).find("the CE_A is") != std::string::npos);
  }
  const auto after = flat_state(trainer);
  CHECK(trainer.steps() == 2);
  for (std::size_t i = 0; i < before.size(); ++i)
    if (!std::isnan(before[i])) CHECK(before[i] == after[i]);
}

}  // namespace
