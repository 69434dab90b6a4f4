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

}  // namespace splitmask::testing
