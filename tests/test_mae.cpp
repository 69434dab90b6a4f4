// The MAE objective: the whole loss's gradient by finite differences (with and without per-patch
// normalised targets), and a golden step against PyTorch (tests/golden/make_mae_fixture.py).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "splitmask/model/decoder_config.hpp"
#include "splitmask/ops/patchify.hpp"
#include "splitmask/tensor/expr/random.hpp"
#include "splitmask/train/objectives/mae.hpp"
#include "splitmask/train/split_sampler.hpp"
#include "splitmask/train/trainer.hpp"
#include "support/fixture.hpp"
#include "support/gradcheck.hpp"
#include "support/model_gradients.hpp"

namespace {

using namespace splitmask;
using splitmask::testing::check_gradients;
using splitmask::testing::gradient_entry;
using splitmask::testing::load;
using splitmask::testing::load_fixture;

// The golden fixture's model: 12 x 12 x 2 images, patch 4 (N = 9, L = 32), D 16, depth 2, 2
// heads; decoder 2 blocks of width 12 with 2 heads; mask ratio 3/4: 2 visible, 7 masked.
using tiny = vit_config<12, 2, 4, 16, 2, 2>;
using tiny_mae = mae_objective<std::ratio<3, 4>, decoder_config<12, 2, 2>>;
static_assert(tiny_mae::model<tiny, float, device::cpu>::N_v == 2 &&
              tiny_mae::model<tiny, float, device::cpu>::N_m == 7);

TEST_CASE("MAE: the whole loss's gradient by finite differences, every tensor") {
  for (const bool norm_pix : {true, false}) {
    CAPTURE(norm_pix);
    pretrain_options options;
    options.seed = 41;
    trainer<tiny_mae, tiny, double> trainer(3, options, mae_options{norm_pix});
    for (auto flat : {trainer.encoder().flat_params(), trainer.objective().decoder().flat_params()})
      for (std::size_t i = 0; i < flat.size(); ++i)
        flat(i) += 0.2 * counter_rng(42, flat.size()).normal<double>(i);
    tensor<double, extents<dynamic, 9, 32>> patches(3);
    patches = normal<double>(counter_rng(43), patches.extents(), 0.0, 1.0);
    tensor<std::int32_t, extents<dynamic, 2>> visible(3);
    tensor<std::int32_t, extents<dynamic, 7>> masked(3);
    split_sampler<9, 2>(44).sample(visible, masked, 0);
    {
      auto overlapping = masked.clone();
      overlapping(2, 3) = visible(2, 0);
      CHECK_THROWS_AS(trainer.objective().set_masks(visible, overlapping), shape_error);
    }
    trainer.objective().set_masks(visible, masked);
    trainer.compute_gradients(patches);
    std::vector<std::vector<double>> analytic;
    const auto entries = splitmask::testing::model_gradient_entries(analytic, trainer.encoder(),
                                                                    trainer.objective().decoder());
    const auto res = check_gradients(
        entries, [&] { return trainer.compute_gradients(patches).total; }, 1e-3, 12);
    MESSAGE(res.describe() << " (" << entries.size() << " tensors)");
    CHECK(entries.size() == 28 + 31);  // encoder (sin-cos positions) and decoder
    CHECK(res.worst < 1e-6);
  }
}

TEST_CASE("golden: MAE's loss, every gradient and 3 AdamW steps equal PyTorch's") {
  const auto fx = load_fixture("mae_fixture.json");
  const auto& cfg = fx.at("config");
  REQUIRE(cfg.at("patches") == tiny::patches);
  REQUIRE(cfg.at("visible") == 2);
  REQUIRE(cfg.at("norm_pix_loss") == true);
  const std::size_t batch = cfg.at("batch");
  const auto& opt = fx.at("adamw");
  pretrain_options options;
  options.lr = opt.at("lr");
  options.clip = opt.at("clip");
  options.adamw.beta1 = opt.at("betas")[0];
  options.adamw.beta2 = opt.at("betas")[1];
  options.adamw.eps = opt.at("eps");
  options.adamw.weight_decay = opt.at("weight_decay");
  using mae_trainer = trainer<tiny_mae, tiny>;
  mae_trainer trainer(batch, options, mae_options{true});
  mae_trainer raw(batch, options, mae_options{false});

  std::size_t loaded = 0;
  for (mae_trainer* t : {&trainer, &raw}) {
    auto load_all = [&](auto& model) {
      model.params().for_each([&](const std::string& name, auto v, parameter_role) {
        load(fx.at("parameters").at(name), name, v);
        ++loaded;
      });
    };
    load_all(t->encoder());
    load_all(t->objective().decoder());
  }
  CHECK(loaded == 2 * fx.at("parameters").size());

  tensor<float, extents<dynamic, 2, 12, 12>> images(batch);
  tensor<float, extents<dynamic, 9, 32>> patches(batch);
  tensor<std::int32_t, extents<dynamic, 2>> visible(batch);
  tensor<std::int32_t, extents<dynamic, 7>> masked(batch);
  load(fx.at("inputs").at("images"), "images", images.view());
  load(fx.at("inputs").at("index_visible"), "index_visible", visible.view());
  load(fx.at("inputs").at("index_masked"), "index_masked", masked.view());
  patchify<4>(patches, images);
  trainer.objective().set_masks(visible, masked);
  raw.objective().set_masks(visible, masked);

  const auto losses = trainer.compute_gradients(patches);
  const double mse_raw = raw.compute_gradients(patches).total;
  auto rel = [](double got, double ref) { return std::abs(got - ref) / std::abs(ref); };
  MESSAGE("MSE " << losses["mse"] << " (PyTorch " << fx.at("outputs").at("mse").get<double>()
                 << "), without normalised targets " << mse_raw << " (PyTorch "
                 << fx.at("outputs").at("mse_raw").get<double>() << "), gradient norm "
                 << losses.grad_norm << " (PyTorch " << fx.at("grad_norm").get<double>() << ")");
  CHECK(rel(losses["mse"], fx.at("outputs").at("mse")) < 1e-5);
  CHECK(rel(mse_raw, fx.at("outputs").at("mse_raw")) < 1e-5);
  CHECK(rel(losses.grad_norm, fx.at("grad_norm")) < 1e-5);

  splitmask::testing::check_golden_gradients_and_steps(trainer, patches, fx);
}

}  // namespace
