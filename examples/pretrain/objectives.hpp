// The objectives splitmask-pretrain runs, for a preset: the one list to extend when adding an
// objective (its header, then one line here).
#pragma once

#include <ratio>
#include <splitmask/train/objectives/beit.hpp>
#include <splitmask/train/objectives/mae.hpp>
#include <splitmask/train/objectives/splitmask.hpp>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace splitmask::examples {

/// Each objective of a preset (its vocabulary and decoder): SplitMask and BEiT at a mask ratio of
/// 1/2 as the paper compares them, MAE at its own 3/4.
template <class Preset>
using objectives_of =
    std::tuple<splitmask_objective<Preset::vocabulary, std::ratio<1, 2>, typename Preset::decoder>,
               beit_objective<Preset::vocabulary, std::ratio<1, 2>>,
               mae_objective<std::ratio<3, 4>, typename Preset::decoder>>;

/// The objectives' names, in the list's order (any preset's list has the same names).
template <class Preset>
std::vector<std::string> objective_names() {
  return std::apply([](auto... o) { return std::vector<std::string>{decltype(o)::name...}; },
                    objectives_of<Preset>{});
}

/// Calls f(objective{}) for the objective of `Preset` called `name`; returns its result.
template <class Preset, class F>
int with_objective(const std::string& name, F&& f) {
  int result = 0;
  bool found = false;
  std::apply(
      [&](auto... o) {
        ((!found && name == decltype(o)::name ? (result = f(o), found = true) : false), ...);
      },
      objectives_of<Preset>{});
  if (!found) throw std::invalid_argument("unknown objective '" + name + "'");
  return result;
}

}  // namespace splitmask::examples
