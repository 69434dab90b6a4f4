// Every parameter tensor of some models (parameter_stores) as gradient-check entries, each with
// a copy of its analytic gradient (the loss the check evaluates recomputes the gradients).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "splitmask/model/init.hpp"
#include "support/gradcheck.hpp"

namespace splitmask::testing {

template <class... Models>
std::vector<gradient_entry> model_gradient_entries(std::vector<std::vector<double>>& analytic,
                                                   Models&... models) {
  std::vector<gradient_entry> entries;
  auto collect = [&](auto& model) {
    const auto params = model.flat_params();
    const auto grads = model.flat_grads();
    model.params().for_each([&](const std::string& name, auto v, parameter_role) {
      const double* g = grads.data() + (v.data() - params.data());
      analytic.emplace_back(g, g + v.size());
      entries.push_back({name, v.data(), nullptr, v.size()});
    });
  };
  (collect(models), ...);
  for (std::size_t i = 0; i < entries.size(); ++i) entries[i].analytic = analytic[i].data();
  return entries;
}

}  // namespace splitmask::testing
