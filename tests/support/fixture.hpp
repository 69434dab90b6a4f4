// Reading the golden fixtures written by tests/golden/*.py: JSON tensors as
// {"shape": [...], "data": [...]} in row-major order.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "splitmask/core/extents.hpp"
#include "splitmask/model/init.hpp"
#include "splitmask/tensor/tensor_view.hpp"

#ifndef SPLITMASK_GOLDEN_DIR
#error "SPLITMASK_GOLDEN_DIR must name the folder of the golden fixtures"
#endif

namespace splitmask::testing {

inline nlohmann::json load_fixture(const std::string& name) {
  const std::string path = std::string(SPLITMASK_GOLDEN_DIR) + "/" + name;
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  return nlohmann::json::parse(in);
}

/// Copies a fixture tensor into a view after checking its shape.
template <class V>
void load(const nlohmann::json& t, const std::string& name, V v) {
  std::vector<std::size_t> shape;
  for (std::size_t i = 0; i < std::decay_t<V>::rank; ++i) shape.push_back(v.extents().extent(i));
  REQUIRE_MESSAGE(t.at("shape").get<std::vector<std::size_t>>() == shape,
                  name << ": fixture shape differs from " << to_string(v.extents()));
  const auto data = t.at("data").get<std::vector<double>>();
  REQUIRE(data.size() == v.size());
  for (std::size_t i = 0; i < data.size(); ++i)
    v.data()[i] = static_cast<typename std::decay_t<V>::value_type>(data[i]);
}

/// ‖got - ref‖ / ‖ref‖ over `got.size()` values at got.data().
template <class V>
double relative_error(const V& got, const nlohmann::json& ref) {
  const auto r = ref.at("data").get<std::vector<double>>();
  REQUIRE(r.size() == got.size());
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < r.size(); ++i) {
    diff += (double(got.data()[i]) - r[i]) * (double(got.data()[i]) - r[i]);
    norm += r[i] * r[i];
  }
  return std::sqrt(diff / norm);
}

/// The worst ‖Δ‖/‖ref‖ over the tensors compared so far, and which.
struct fixture_comparison {
  double worst = 0;
  std::string worst_name;
  std::size_t compared = 0;
};

/// Compares every tensor of `model` (a parameter_store) with the fixture's `ref` (by name): its
/// gradients, or its parameters. After AdamW steps an attention's key bias is compared without
/// its key third: its gradient is round-off (softmax ignores a shift of every score of a
/// query), which Adam scales to steps of about lr, differently in each implementation.
template <class Model>
void compare_with_fixture(fixture_comparison& c, const Model& model, const nlohmann::json& ref,
                          bool gradients) {
  const auto params = model.flat_params();
  const auto values = gradients ? model.flat_grads() : params;
  model.params().for_each([&](const std::string& name, auto v, parameter_role) {
    using T = typename decltype(params)::value_type;
    const tensor_view<T, extents<dynamic>> got(values.data() + (v.data() - params.data()),
                                               extents<dynamic>(v.size()));
    double e = relative_error(got, ref.at(name));
    const std::string key_bias = "attn.qkv.bias";
    if (!gradients && name.size() > key_bias.size() &&
        name.compare(name.size() - key_bias.size(), key_bias.size(), key_bias) == 0) {
      const std::size_t third = v.size() / 3;
      const auto r = ref.at(name).at("data").template get<std::vector<double>>();
      double diff = 0, norm = 0;
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (i >= third && i < 2 * third) continue;
        diff += (double(got.data()[i]) - r[i]) * (double(got.data()[i]) - r[i]);
        norm += r[i] * r[i];
      }
      e = std::sqrt(diff / norm);
    }
    ++c.compared;
    if (!(e <= c.worst)) c.worst = e, c.worst_name = name;
  });
}

/// The second half of a golden trainer test, after its losses: the gradients of the encoder and
/// the objective's decoder (as compute_gradients left them) against the fixture's, then three
/// AdamW steps on `patches` (losses, gradient norms, parameters after), all within 1e-5.
template <class Trainer, class Patches>
void check_golden_gradients_and_steps(Trainer& trainer, const Patches& patches,
                                      const nlohmann::json& fx) {
  auto rel = [](double got, double ref) { return std::abs(got - ref) / std::abs(ref); };
  fixture_comparison gradients, after;
  compare_with_fixture(gradients, trainer.encoder(), fx.at("gradients"), true);
  compare_with_fixture(gradients, trainer.objective().decoder(), fx.at("gradients"), true);
  MESSAGE("gradients of " << gradients.compared << " tensors: worst ‖Δ‖/‖ref‖ " << gradients.worst
                          << " (" << gradients.worst_name << ")");
  CHECK(gradients.compared == fx.at("gradients").size());
  CHECK(gradients.worst < 1e-5);
  for (std::size_t s = 0; s < 3; ++s) {
    const auto l = trainer.step_with(patches);
    CHECK(rel(l.total, fx.at("step_losses")[s]) < 1e-5);
    CHECK(rel(l.grad_norm, fx.at("grad_norms")[s]) < 1e-5);
  }
  compare_with_fixture(after, trainer.encoder(), fx.at("parameters_after"), false);
  compare_with_fixture(after, trainer.objective().decoder(), fx.at("parameters_after"), false);
  MESSAGE("parameters after 3 AdamW steps: worst ‖Δ‖/‖ref‖ " << after.worst << " ("
                                                             << after.worst_name << ")");
  CHECK(after.worst < 1e-5);
}

}  // namespace splitmask::testing
