// The first images of a set, for runs on part of the data (--train-limit, --test-limit).
#pragma once

#include <cstddef>
#include <splitmask/data/image_set.hpp>
#include <splitmask/eval/label_fraction.hpp>  // subset
#include <vector>

namespace splitmask::examples {

/// The first `limit` images of `set` (all of them for 0, or for a limit beyond its size).
inline image_set first_images(image_set set, std::size_t limit) {
  if (limit == 0 || limit >= set.size()) return set;
  std::vector<std::size_t> index(limit);
  for (std::size_t i = 0; i < limit; ++i) index[i] = i;
  return subset(set, index);
}

}  // namespace splitmask::examples
