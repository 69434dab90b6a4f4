// The evaluation code: label fractions (class-balanced, seeded), k-NN and the linear probe on
// synthetic data of known accuracy, the classifier's gradients by finite differences, and the
// fine-tuner (gradients of the whole encoder + head, layer-wise rates, learning a plain task,
// resuming from its saved state).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <unistd.h>

#include "splitmask/core/rng.hpp"
#include "splitmask/eval/finetune.hpp"
#include "splitmask/eval/finetune_state.hpp"
#include "splitmask/eval/knn.hpp"
#include "splitmask/eval/label_fraction.hpp"
#include "splitmask/eval/linear_probe.hpp"
#include "splitmask/io/checkpoint.hpp"
#include "support/gradcheck.hpp"

namespace {

using namespace splitmask;
using splitmask::testing::check_gradients;
using splitmask::testing::gradient_entry;

// Labels 0..classes-1 with class c holding 10 * (c + 1) images, interleaved.
std::vector<std::int32_t> uneven_labels(int classes) {
  std::vector<std::int32_t> labels;
  for (int round = 0; round < 10 * classes; ++round)
    for (int c = 0; c < classes; ++c)
      if (round < 10 * (c + 1)) labels.push_back(c);
  return labels;
}

std::map<std::int32_t, std::size_t> per_class(const std::vector<std::int32_t>& labels,
                                              const std::vector<std::size_t>& index) {
  std::map<std::int32_t, std::size_t> count;
  for (const std::size_t i : index) ++count[labels[i]];
  return count;
}

// n points of `classes` Gaussian blobs in F dimensions: class c's mean is `spread` along axis c
// (orthogonal means), unit noise scaled by `noise`. Labels cycle over the classes.
void blobs(std::size_t n, std::size_t F, int classes, double spread, double noise,
           std::uint64_t seed, row_matrix<float>& x, std::vector<std::int32_t>& labels) {
  const counter_rng rng(seed, 11);
  x.resize(Eigen::Index(n), Eigen::Index(F));
  labels.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    labels[i] = std::int32_t(i % std::size_t(classes));
    for (std::size_t f = 0; f < F; ++f)
      x(Eigen::Index(i), Eigen::Index(f)) =
          float(noise * rng.normal<double>(i * F + f) + (f == std::size_t(labels[i]) ? spread : 0));
  }
}

}  // namespace

TEST_CASE("a label fraction keeps round(f * n_c) of each class, at least one, seeded") {
  const auto labels = uneven_labels(4);  // classes of 10, 20, 30, 40 images
  const auto tenth = select_label_fraction(labels, 0.1, 7);
  CHECK(per_class(labels, tenth) == std::map<std::int32_t, std::size_t>{{0, 1}, {1, 2}, {2, 3}, {3, 4}});
  CHECK(std::is_sorted(tenth.begin(), tenth.end()));
  CHECK(std::adjacent_find(tenth.begin(), tenth.end()) == tenth.end());
  const auto tiny = select_label_fraction(labels, 0.001, 7);
  CHECK(per_class(labels, tiny) == std::map<std::int32_t, std::size_t>{{0, 1}, {1, 1}, {2, 1}, {3, 1}});
  CHECK(select_label_fraction(labels, 1.0, 7).size() == labels.size());
  // Seeded: the same seed draws the same images, another seed others.
  CHECK(select_label_fraction(labels, 0.1, 7) == tenth);
  CHECK(select_label_fraction(labels, 0.1, 8) != tenth);
  // Nested: a smaller fraction's images are among a larger one's.
  const auto half = select_label_fraction(labels, 0.5, 7);
  CHECK(std::includes(half.begin(), half.end(), tenth.begin(), tenth.end()));
  CHECK_THROWS_AS(select_label_fraction(labels, 0.0, 7), std::invalid_argument);
  CHECK_THROWS_AS(select_label_fraction(labels, 1.5, 7), std::invalid_argument);
  CHECK_THROWS_AS(select_label_fraction({}, 0.5, 7), std::invalid_argument);
  CHECK_THROWS_AS(select_label_fraction({0, -1}, 0.5, 7), std::invalid_argument);
}

TEST_CASE("hold_out splits each class, keeps one of each, and covers its input") {
  const auto labels = uneven_labels(3);
  std::vector<std::size_t> all(labels.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  const auto [kept, out] = hold_out(labels, all, 0.1, 3);
  CHECK(per_class(labels, out) == std::map<std::int32_t, std::size_t>{{0, 1}, {1, 2}, {2, 3}});
  std::vector<std::size_t> both = kept;
  both.insert(both.end(), out.begin(), out.end());
  std::sort(both.begin(), both.end());
  CHECK(both == all);
  // A class of one image is kept whole.
  const auto [kept1, out1] = hold_out({0, 1, 1, 1}, {0, 1, 2, 3}, 0.5, 3);
  CHECK(per_class({0, 1, 1, 1}, kept1)[0] == 1);
  CHECK(per_class({0, 1, 1, 1}, out1).count(0) == 0);
}

TEST_CASE("subset copies the chosen images and their labels") {
  image_set set;
  set.channels = 1, set.height = 1, set.width = 2;
  set.pixels = {1, 2, 3, 4, 5, 6};
  set.labels = {0, 1, 2};
  const image_set s = subset(set, {0, 2});
  CHECK(s.pixels == std::vector<std::uint8_t>{1, 2, 5, 6});
  CHECK(s.labels == std::vector<std::int32_t>{0, 2});
  CHECK_THROWS_AS(subset(set, {3}), std::out_of_range);
}

TEST_CASE("checkpoint_data_stats reads a run's statistics and refuses unusable ones") {
  checkpoint_info info;
  info.source = "run.safetensors";
  info.run = {{"data_stats", {{"mean", {0.5, 0.25}}, {"std", {0.2, 0.1}}}}};
  const channel_stats stats = checkpoint_data_stats(info, 2);
  CHECK(stats.mean == std::vector<double>{0.5, 0.25});
  CHECK(stats.std == std::vector<double>{0.2, 0.1});
  CHECK_THROWS_WITH_AS(checkpoint_data_stats(info, 3),
                       doctest::Contains("not 3 finite means and positive deviations"), file_error);
  info.run["data_stats"]["std"] = {0.2, 0.0};
  CHECK_THROWS_AS(checkpoint_data_stats(info, 2), file_error);
  info.run = nlohmann::json::object();
  CHECK_THROWS_WITH_AS(checkpoint_data_stats(info, 2),
                       doctest::Contains("run.safetensors: no data statistics"), file_error);
}

TEST_CASE("k-NN classifies separable clusters perfectly, and its votes follow the temperature") {
  row_matrix<float> train, test;
  std::vector<std::int32_t> train_labels, test_labels;
  blobs(600, 16, 10, 4.0, 0.3, 1, train, train_labels);
  blobs(300, 16, 10, 4.0, 0.3, 2, test, test_labels);
  CHECK(accuracy(knn_classify(train, train_labels, test), test_labels) == 1.0);

  // Two neighbours of class 0 at cosine 0.9 against one of class 1 at cosine 1: with k = 3,
  // a sharp temperature lets the closest win (e^(1/0.07) > 2 e^(0.9/0.07)), a flat one the pair.
  const double s = std::sqrt(1 - 0.81);
  row_matrix<float> bank(3, 2), query(1, 2);
  bank << 0.9f, float(s), 0.9f, float(-s), 1.0f, 0.0f;
  query << 2.0f, 0.0f;  // length does not matter: cosine
  knn_options sharp{3, 0.07}, flat{3, 1.0};
  CHECK(knn_classify(bank, {0, 0, 1}, query, sharp)[0] == 1);
  CHECK(knn_classify(bank, {0, 0, 1}, query, flat)[0] == 0);
  // k = 1 is the nearest neighbour; k larger than the bank uses the whole bank.
  CHECK(knn_classify(bank, {0, 0, 1}, query, knn_options{1, 1.0})[0] == 1);
  CHECK(knn_classify(bank, {0, 0, 1}, query, knn_options{50, 1.0})[0] == 0);
  CHECK_THROWS_AS(knn_classify(bank, {0, 0}, query), std::invalid_argument);
}

TEST_CASE("the softmax classifier's gradients match finite differences, with label smoothing") {
  const counter_rng rng(5, 0);
  row_matrix<double> x(5, 4);
  for (Eigen::Index i = 0; i < x.size(); ++i) x.data()[i] = rng.normal<double>(std::uint64_t(i));
  linear_classifier<double> model(4, 3);
  for (Eigen::Index i = 0; i < model.weight.size(); ++i)
    model.weight.data()[i] = 0.5 * rng.normal<double>(100 + std::uint64_t(i));
  for (Eigen::Index i = 0; i < model.bias.size(); ++i)
    model.bias(i) = 0.5 * rng.normal<double>(200 + std::uint64_t(i));
  const std::vector<std::int32_t> labels{0, 2, 1, 2, 0};
  for (const double smoothing : {0.0, 0.1}) {
    CAPTURE(smoothing);
    auto loss = [&] { return softmax_cross_entropy<double>(model.logits(x), labels.data(), smoothing); };
    row_matrix<double> d_logits, d_weight, d_x;
    Eigen::VectorXd d_bias;
    softmax_cross_entropy<double>(model.logits(x), labels.data(), smoothing, &d_logits);
    model.backward(x, d_logits, d_weight, d_bias, &d_x);
    const auto r = check_gradients({{"weight", model.weight.data(), d_weight.data(), 12},
                                    {"bias", model.bias.data(), d_bias.data(), 3},
                                    {"x", x.data(), d_x.data(), 20}},
                                   loss);
    CHECK_MESSAGE(r.worst < 1e-8, r.describe());
  }
  // The smoothed loss of uniform logits is log K whatever the smoothing.
  row_matrix<double> zero = row_matrix<double>::Zero(2, 3);
  const std::int32_t two[] = {0, 1};
  CHECK(softmax_cross_entropy<double>(zero, two, 0.3) == doctest::Approx(std::log(3.0)));
  CHECK_THROWS_AS(softmax_cross_entropy<double>(zero, std::vector<std::int32_t>{0, 3}.data(), 0),
                  std::invalid_argument);
}

TEST_CASE("logistic regression reaches the optimum of its penalised loss") {
  row_matrix<float> x;
  std::vector<std::int32_t> labels;
  blobs(400, 6, 3, 1.0, 1.0, 3, x, labels);
  linear_classifier<float> model(6, 3);
  const double l2 = 1e-2;
  fit_logistic_regression(model, x, labels, l2);
  row_matrix<float> d_logits, d_weight;
  Eigen::VectorXf d_bias;
  softmax_cross_entropy<float>(model.logits(x), labels.data(), 0, &d_logits);
  model.backward(x, d_logits, d_weight, d_bias);
  const row_matrix<float> gradient = d_weight + float(l2) * model.weight;
  CHECK(gradient.cwiseAbs().maxCoeff() < 2e-4);
  CHECK(d_bias.cwiseAbs().maxCoeff() < 2e-4);
}

TEST_CASE("the linear probe reaches the Bayes accuracy of two Gaussians, and 100% when separable") {
  // Two classes of unit Gaussian noise whose means differ by +-0.75 in two of ten features:
  // the best possible boundary is the hyperplane half-way, right with probability Phi(0.75 sqrt 2).
  const std::size_t F = 10;
  auto draw = [&](std::size_t n, std::uint64_t seed, row_matrix<float>& x,
                  std::vector<std::int32_t>& labels) {
    const counter_rng rng(seed, 21);
    x.resize(Eigen::Index(n), Eigen::Index(F));
    labels.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      labels[i] = std::int32_t(i % 2);
      for (std::size_t f = 0; f < F; ++f)
        x(Eigen::Index(i), Eigen::Index(f)) =
            float(rng.normal<double>(i * F + f) + (f < 2 ? (labels[i] ? 0.75 : -0.75) : 0) +
                  (f == 5 ? 3.0 : 0));  // an offset the standardisation removes
    }
  };
  row_matrix<float> train, test;
  std::vector<std::int32_t> train_labels, test_labels;
  draw(4000, 1, train, train_labels);
  draw(20000, 2, test, test_labels);
  // The means are 2 * 0.75 * sqrt 2 apart with unit noise: Bayes accuracy Phi(0.75 sqrt 2).
  const double bayes = 0.5 * std::erfc(-0.75 * std::sqrt(2.0) / std::sqrt(2.0));
  const auto p = linear_probe(train, train_labels, test, test_labels);
  CHECK(p.accuracy == doctest::Approx(bayes).epsilon(0.012));
  CHECK(p.held_out_accuracy.size() == linear_probe_options{}.l2_grid.size());

  row_matrix<float> a, b;
  std::vector<std::int32_t> la, lb;
  blobs(500, 12, 10, 4.0, 0.3, 4, a, la);
  blobs(300, 12, 10, 4.0, 0.3, 5, b, lb);
  CHECK(linear_probe(a, la, b, lb).accuracy == 1.0);
}

TEST_CASE("AdamW scales a segment's learning rate and weight decay by its lr_scale") {
  std::vector<float> p1{1, -2}, p2{1, -2}, p3{1, -2}, g{0.5f, 0.25f};
  adamw<float> scaled, plain, frozen;
  scaled.add("p", p1.data(), g.data(), 2, true, 0.5);
  plain.add("p", p2.data(), g.data(), 2, true);
  frozen.add("p", p3.data(), g.data(), 2, true, 0.0);
  for (int i = 0; i < 3; ++i) scaled.step(0.1), plain.step(0.05), frozen.step(0.1);
  CHECK(p1 == p2);
  CHECK(p3 == std::vector<float>{1, -2});
  CHECK_THROWS_AS(plain.add("q", p2.data(), g.data(), 2, true, -1.0), std::logic_error);
}

namespace {
using tiny = vit_config<12, 2, 4, 16, 2, 2>;
}

TEST_CASE("fine-tuning: layer-wise rates follow BEiT's decay") {
  finetune_options o;
  o.layer_decay = 0.5;
  finetune_trainer<tiny> trainer(2, 3, o);
  CHECK(finetune_trainer<tiny>::layer_of("patch_embed.proj.weight") == 0);
  CHECK(finetune_trainer<tiny>::layer_of("blocks.1.mlp.fc2.bias") == 2);
  CHECK(finetune_trainer<tiny>::layer_of("norm.weight") == 3);
  std::map<std::string, double> scale;
  for (const auto& s : trainer.optimizer().segments()) scale[s.name] = s.lr_scale;
  CHECK(scale.at("patch_embed.proj.weight") == 0.125);
  CHECK(scale.at("blocks.0.attn.qkv.weight") == 0.25);
  CHECK(scale.at("blocks.1.attn.qkv.weight") == 0.5);
  CHECK(scale.at("norm.bias") == 1.0);
  CHECK(scale.at("head.weight") == 1.0);
}

TEST_CASE("fine-tuning: the gradients of encoder and head match finite differences") {
  constexpr std::size_t B = 3, C = tiny::channels, S = tiny::image_size;
  finetune_options o;
  o.label_smoothing = 0.1;
  finetune_trainer<tiny, double> trainer(B, 4, o, 9);
  auto& head = trainer.head();
  const counter_rng rng(6, 0);
  for (Eigen::Index i = 0; i < head.weight.size(); ++i)
    head.weight.data()[i] = 0.3 * rng.normal<double>(std::uint64_t(i));
  tensor<double, extents<dynamic, C, S, S>> images(B);
  for (std::size_t i = 0; i < images.size(); ++i)
    images.data()[i] = rng.normal<double>(1000 + i);
  const std::vector<std::int32_t> labels{3, 0, 2};
  trainer.compute_gradients(images, labels.data());
  // Copies: every loss evaluation below writes the gradient buffers again.
  const auto encoder_grads = trainer.encoder().flat_grads();
  const std::vector<double> d_encoder(encoder_grads.data(),
                                      encoder_grads.data() + encoder_grads.size());
  const row_matrix<double> d_head = trainer.head_weight_gradient();
  auto params = trainer.encoder().flat_params();
  const auto r = check_gradients(
      {{"encoder", params.data(), d_encoder.data(), d_encoder.size()},
       {"head.weight", head.weight.data(), d_head.data(), std::size_t(d_head.size())}},
      [&] { return trainer.compute_gradients(images, labels.data()).loss; }, 1e-3, 200);
  CHECK_MESSAGE(r.worst < 1e-6, r.describe());
}

TEST_CASE("fine-tuning learns to tell bright images from dark ones") {
  constexpr std::size_t B = 16, C = tiny::channels, S = tiny::image_size;
  finetune_options o;
  o.lr = 2e-3;
  o.total_steps = 40;
  finetune_trainer<tiny> trainer(B, 2, o, 1);
  tensor<float, extents<dynamic, C, S, S>> images(B);
  std::vector<std::int32_t> labels(B);
  auto fill = [&](std::uint64_t batch) {
    const counter_rng rng(batch, 3);
    for (std::size_t i = 0; i < B; ++i) {
      labels[i] = std::int32_t((i + batch) % 2);
      for (std::size_t k = 0; k < C * S * S; ++k)
        images.data()[i * C * S * S + k] =
            (labels[i] ? 0.5f : -0.5f) + rng.normal<float>(i * C * S * S + k);
    }
  };
  double first = 0, last = 0;
  for (std::uint64_t step = 0; step < 40; ++step) {
    fill(step);
    const double loss = trainer.step(images, labels.data()).loss;
    (step == 0 ? first : last) = loss;
  }
  fill(1000);  // unseen images
  CHECK(accuracy(trainer.predict(images), labels) >= 0.9);
  CHECK(last < first);
}

TEST_CASE("fine-tuning state: a restored trainer continues the run bit for bit") {
  constexpr std::size_t B = 4, C = tiny::channels, S = tiny::image_size;
  finetune_options o;
  o.total_steps = 8;
  o.warmup_steps = 2;
  tensor<float, extents<dynamic, C, S, S>> images(B);
  std::vector<std::int32_t> labels(B);
  auto step = [&](finetune_trainer<tiny>& trainer, std::uint64_t batch) {
    const counter_rng rng(batch, 4);
    for (std::size_t i = 0; i < images.size(); ++i) images.data()[i] = rng.normal<float>(i);
    for (std::size_t i = 0; i < B; ++i) labels[i] = std::int32_t((i + batch) % 3);
    return trainer.step(images, labels.data()).loss;
  };
  finetune_trainer<tiny> whole(B, 3, o, 1), resumed(B, 3, o, 2);  // resumed: another init
  for (std::uint64_t b = 0; b < 3; ++b) step(whole, b);
  const std::string path = "/tmp/splitmask_test_finetune_state_" + std::to_string(::getpid());
  save_finetune_state(path, whole, {{"curve", {1.5, 2.25}}});
  CHECK(read_finetune_state_run(path) == nlohmann::json{{"curve", {1.5, 2.25}}});
  CHECK(load_finetune_state(path, resumed) == nlohmann::json{{"curve", {1.5, 2.25}}});
  CHECK(resumed.steps() == 3);
  for (std::uint64_t b = 3; b < 8; ++b) CHECK(step(resumed, b) == step(whole, b));
  const auto a = whole.encoder().flat_params(), r = resumed.encoder().flat_params();
  CHECK(std::equal(a.data(), a.data() + a.size(), r.data()));
  CHECK(whole.head().weight == resumed.head().weight);
  CHECK(whole.head().bias == resumed.head().bias);

  finetune_trainer<tiny> other_classes(B, 5, o, 1);
  CHECK_THROWS_WITH_AS(load_finetune_state(path, other_classes),
                       doctest::Contains("head.weight' has shape [48], expected [80]"),
                       file_error);
  safetensors_writer not_a_state;
  const float x = 0;
  not_a_state.add("x", &x, {});
  not_a_state.write(path);
  CHECK_THROWS_WITH_AS(load_finetune_state(path, resumed),
                       doctest::Contains("not a fine-tuning state (its format is missing"),
                       file_error);
  std::remove(path.c_str());
}
