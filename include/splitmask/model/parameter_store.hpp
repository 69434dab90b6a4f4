// parameter_store: a model's parameters and their gradients, two arenas of one layout (a struct
// of views with bind() and for_each()), initialised by role from a seed. The encoder, the
// SplitMask decoder and BEiT's head are each one of these plus their forward and backward.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "splitmask/core/device.hpp"
#include "splitmask/core/rng.hpp"
#include "splitmask/model/arena.hpp"
#include "splitmask/model/init.hpp"
#include "splitmask/tensor/storage.hpp"
#include "splitmask/tensor/tensor_view.hpp"

namespace splitmask {

template <class Parameters, class T>
class parameter_store {
 public:
  /// Allocates both arenas and initialises the parameters from `seed`; tensor i draws from RNG
  /// stream first_stream + i, so that models sharing a seed draw different numbers.
  parameter_store(std::uint64_t seed, std::uint64_t first_stream) : first_stream_(first_stream) {
    params_memory_ = bind_arena<T>(params_);
    grads_memory_ = bind_arena<T>(grads_);
    initialise_parameters(seed);
  }
  // Neither copied nor moved: the views point into this object's own arenas.
  parameter_store(const parameter_store&) = delete;
  parameter_store& operator=(const parameter_store&) = delete;

  const Parameters& params() const { return params_; }
  const Parameters& grads() const { return grads_; }
  /// All parameters (or gradients) as one flat array, in the arena's order (for optimisers).
  tensor_view<T, extents<dynamic>> flat_params() const { return flat(params_memory_); }
  tensor_view<T, extents<dynamic>> flat_grads() const { return flat(grads_memory_); }
  void zero_grads() { flat_grads() = T(0); }

  /// Draws every parameter again from `seed` (MAE/BEiT initialisation by role).
  void initialise_parameters(std::uint64_t seed) {
    std::uint64_t stream = first_stream_;
    params_.for_each([&](const std::string&, auto v, parameter_role role) {
      initialise(v.data(), v.size(), role, counter_rng(seed, stream++));
    });
  }

 protected:
  Parameters params_, grads_;

 private:
  static tensor_view<T, extents<dynamic>> flat(const buffer<T, device::cpu>& memory) {
    return {memory.data(), extents<dynamic>(memory.size())};
  }

  std::uint64_t first_stream_;
  buffer<T, device::cpu> params_memory_, grads_memory_;
};

}  // namespace splitmask
