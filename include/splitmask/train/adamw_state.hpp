// AdamW's moments in a safetensors file, one tensor per segment and moment:
//   <prefix>exp_avg.<segment>, <prefix>exp_avg_sq.<segment>   (size of the segment)
// A pre-training checkpoint (prefix "optimizer.") and a fine-tuning state (no prefix) keep them
// alike; the step count goes to the caller's metadata.
#pragma once

#include <set>
#include <string>
#include <utility>

#include "splitmask/io/safetensors.hpp"
#include "splitmask/train/adamw.hpp"

namespace splitmask {

/// Adds `optimizer`'s moments to `file`, which keeps pointers to them: write it before the
/// optimizer steps again.
template <class T>
void add_adamw_moments(safetensors_writer& file, adamw<T>& optimizer, const std::string& prefix) {
  const auto first = optimizer.first_moment();
  const auto second = optimizer.second_moment();
  for (const auto& s : optimizer.segments()) {
    file.add(prefix + "exp_avg." + s.name, first.data() + s.offset, {s.size});
    file.add(prefix + "exp_avg_sq." + s.name, second.data() + s.offset, {s.size});
  }
}

/// Reads into `optimizer` the moments add_adamw_moments wrote, adding each tensor's name to
/// `used`. Throws file_error when one is missing or of another size.
template <class T>
void read_adamw_moments(const safetensors_reader& file, adamw<T>& optimizer,
                        const std::string& prefix, std::set<std::string>& used) {
  const auto first = optimizer.first_moment();
  const auto second = optimizer.second_moment();
  for (const auto& s : optimizer.segments()) {
    for (const auto& [name, moment] : {std::pair{prefix + "exp_avg." + s.name, first.data()},
                                       std::pair{prefix + "exp_avg_sq." + s.name, second.data()}}) {
      file.read(name, moment + s.offset, {s.size});
      used.insert(name);
    }
  }
}

}  // namespace splitmask
