// Checkpoints: a trainer's whole state saved and loaded exactly (a resumed run's losses equal an
// uninterrupted run's, bit for bit), the encoder alone for features, and every mismatch a user
// can make (config, objective, missing or extra tensors, malformed metadata) refused clearly.
// Also: a non-finite loss stops a step, naming the term and the step.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "splitmask/io/checkpoint.hpp"
#include "splitmask/tensor/expr/random.hpp"
#include "support/synthetic_images.hpp"

namespace {

using namespace splitmask;

// 12 x 12 x 2 images, patch 4 (N = 9), D 16, depth 2; decoder 2 x 12; K = 7.
using tiny = vit_config<12, 2, 4, 16, 2, 2>::with_decoder<12, 2, 2>::with_vocabulary<7>;
using deeper = vit_config<12, 2, 4, 16, 3, 2>::with_decoder<12, 2, 2>::with_vocabulary<7>;
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
  detail::for_each_model(trainer, [&](auto& model) {
    const auto p = model.flat_params();
    state.insert(state.end(), p.data(), p.data() + p.size());
  });
  for (auto moment : {trainer.optimizer().first_moment(), trainer.optimizer().second_moment()})
    state.insert(state.end(), moment.data(), moment.data() + moment.size());
  const auto& v = trainer.tokenizer().vocabulary();
  state.insert(state.end(), v.data(), v.data() + v.size());
  return state;
}

template <template <class, class> class Trainer>
void check_resume_is_exact() {
  const auto images = batch_of(1);
  const auto tokenizer = patch_tokenizer<tiny>::sample(images, {0.0f, 0.0f}, {1.0f, 1.0f}, 3);
  Trainer<tiny, float> uninterrupted(B, tokenizer, test_options());
  for (std::uint64_t s = 0; s < 3; ++s) uninterrupted.step(batch_of(10 + s));
  const std::string path = temp_path("resume.safetensors");
  save_checkpoint(path, uninterrupted, {{"note", "test"}});

  const auto info = read_checkpoint_info(path);
  CHECK(info.step == 3);
  CHECK(info.run["note"] == "test");
  CHECK(info.config == config_json<tiny>());
  Trainer<tiny, float> resumed(B, load_tokenizer<tiny>(safetensors_reader::open(path), path),
                               info.pretrain());
  load_checkpoint(path, resumed);
  CHECK(resumed.steps() == 3);
  CHECK(flat_state(resumed) == flat_state(uninterrupted));
  for (std::uint64_t s = 3; s < 6; ++s) {
    const auto a = uninterrupted.step(batch_of(10 + s));
    const auto b = resumed.step(batch_of(10 + s));
    CHECK(a.total == b.total);  // bit for bit
    CHECK(a.ce_a == b.ce_a);
    CHECK(a.grad_norm == b.grad_norm);
    CHECK(a.lr == b.lr);
  }
  CHECK(flat_state(resumed) == flat_state(uninterrupted));
  std::remove(path.c_str());
}

TEST_CASE("checkpoint: SplitMask resumed from a checkpoint continues bit for bit") {
  check_resume_is_exact<splitmask_trainer>();
}

TEST_CASE("checkpoint: BEiT resumed from a checkpoint continues bit for bit") {
  check_resume_is_exact<beit_trainer>();
}

TEST_CASE("checkpoint: timm names, the config and the tokenizer in the file") {
  const auto images = batch_of(1);
  splitmask_trainer<tiny> trainer(
      B, patch_tokenizer<tiny>::sample(images, {0.1f, 0.2f}, {0.5f, 0.6f}, 3), test_options());
  const std::string path = temp_path("names.safetensors");
  save_checkpoint(path, trainer);
  const auto file = safetensors_reader::open(path);
  for (const char* name : {"patch_embed.proj.weight", "blocks.1.attn.qkv.weight", "norm.bias",
                           "decoder_embed.weight", "mask_token", "decoder_pred.weight",
                           "tokenizer.vocabulary", "optimizer.exp_avg.blocks.0.mlp.fc1.weight"})
    CHECK_MESSAGE(file.contains(name), name);
  CHECK(file.entry("patch_embed.proj.weight").shape == std::vector<std::uint64_t>{16, 2, 4, 4});
  CHECK(file.entry("tokenizer.vocabulary").shape == std::vector<std::uint64_t>{7, 32});
  const auto tokenizer = load_tokenizer<tiny>(file, path);
  CHECK(tokenizer.mean() == trainer.tokenizer().mean());
  CHECK(tokenizer.std_dev() == trainer.tokenizer().std_dev());

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
  const auto tokenizer = patch_tokenizer<tiny>::sample(images, {0.0f, 0.0f}, {1.0f, 1.0f}, 3);
  splitmask_trainer<tiny> trainer(B, tokenizer, test_options());
  const std::string path = temp_path("mismatch.safetensors");
  save_checkpoint(path, trainer);

  SUBCASE("another config: the size that differs is named") {
    splitmask_trainer<deeper> other(
        B, patch_tokenizer<deeper>::sample(images, {0.0f, 0.0f}, {1.0f, 1.0f}, 3), test_options());
    CHECK_THROWS_WITH_AS(load_checkpoint(path, other),
                         doctest::Contains("depth is 2; this program is compiled for 3"),
                         file_error);
    vit_encoder<deeper, float> encoder(0);
    CHECK_THROWS_AS(load_encoder(path, encoder), file_error);
  }
  SUBCASE("another objective") {
    beit_trainer<tiny> beit(B, tokenizer, test_options());
    CHECK_THROWS_WITH_AS(load_checkpoint(path, beit), doctest::Contains("splitmask objective"),
                         file_error);
  }
  SUBCASE("other tokenizer statistics") {
    splitmask_trainer<tiny> other(
        B, patch_tokenizer<tiny>::sample(images, {0.5f, 0.0f}, {1.0f, 1.0f}, 3), test_options());
    CHECK_THROWS_WITH_AS(load_checkpoint(path, other), doctest::Contains("statistics"),
                         file_error);
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
  splitmask_trainer<tiny> fresh(B, tokenizer, test_options());
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
  refused(rewrite("", false, "config", "{not json"), "'config' is not a JSON object");
  refused(rewrite("", false, "objective", "mae"), "unknown objective 'mae'");
  refused(rewrite("", false, "tokenizer", "{\"mean\": [0], \"std\": [1, 1]}"),
          "'mean' is not a list of 2 numbers");
  std::remove(path.c_str());
}

TEST_CASE("a NaN loss stops the step before any update, naming the term and the step") {
  const auto images = batch_of(1);
  splitmask_trainer<tiny> trainer(
      B, patch_tokenizer<tiny>::sample(images, {0.0f, 0.0f}, {1.0f, 1.0f}, 3), test_options());
  trainer.step(images);
  trainer.step(images);
  trainer.decoder().params().pred_bias.data()[0] = std::numeric_limits<float>::quiet_NaN();
  const auto before = flat_state(trainer);
  // The term and the 1-based step (the third), as the pretrainer's log numbers steps.
  CHECK_THROWS_WITH_AS(trainer.step(images), doctest::Contains("nan at step 3"),
                       non_finite_loss);
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
