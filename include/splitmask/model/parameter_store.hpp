// parameter_store: a model's parameters and their gradients, two arenas of one layout (a struct
// of views with bind() and for_each()) on a device, initialised by role from a seed. The
// encoder, the SplitMask decoder and BEiT's head are each one of these plus their forward and
// backward. Parameters are drawn on the host and copied to another device in one piece, so a
// seed gives the same model on every device: the layout's host twin (Parameters::on<cpu>) has
// the same arena, padding included.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "splitmask/core/device.hpp"
#include "splitmask/core/rng.hpp"
#include "splitmask/model/arena.hpp"
#include "splitmask/model/init.hpp"
#include "splitmask/tensor/copy.hpp"
#include "splitmask/tensor/storage.hpp"
#include "splitmask/tensor/tensor_view.hpp"

namespace splitmask {

/// One tensor of a parameter store as run-time values.
template <class T>
struct parameter_tensor {
  std::string name;  // timm's, e.g. "blocks.3.attn.qkv.weight"
  T* data;           // the parameter, in the store's device memory
  T* grad;           // its gradient, at the same offset in the gradient arena
  std::vector<std::uint64_t> shape;
  std::size_t size;
  parameter_role role;
};

template <class Parameters, class T, class Device = device::cpu>
class parameter_store {
 public:
  /// Allocates both arenas and initialises the parameters from `seed`; tensor i draws from RNG
  /// stream first_stream + i, so that models sharing a seed draw different numbers.
  parameter_store(std::uint64_t seed, std::uint64_t first_stream) : first_stream_(first_stream) {
    params_memory_ = bind_arena<T, Device>(params_);
    grads_memory_ = bind_arena<T, Device>(grads_);
    params_.for_each([&](const std::string& name, auto v, parameter_role role) {
      std::vector<std::uint64_t> shape;
      for (std::size_t axis = 0; axis < decltype(v)::rank; ++axis)
        shape.push_back(v.extents().extent(axis));
      tensors_.push_back({name, v.data(), grads_memory_.data() + (v.data() - params_memory_.data()),
                          std::move(shape), v.size(), role});
    });
    initialise_parameters(seed);
  }
  // Neither copied nor moved: the views point into this object's own arenas.
  parameter_store(const parameter_store&) = delete;
  parameter_store& operator=(const parameter_store&) = delete;

  const Parameters& params() const { return params_; }
  const Parameters& grads() const { return grads_; }
  /// Every tensor in the arena's order, as run-time values.
  const std::vector<parameter_tensor<T>>& tensors() const { return tensors_; }
  /// All parameters (or gradients) as one flat array, in the arena's order (for optimisers).
  tensor_view<T, extents<dynamic>, Device> flat_params() const { return flat(params_memory_); }
  tensor_view<T, extents<dynamic>, Device> flat_grads() const { return flat(grads_memory_); }
  void zero_grads() { flat_grads() = T(0); }

  /// Draws every parameter again from `seed` (MAE/BEiT initialisation by role).
  void initialise_parameters(std::uint64_t seed) {
    if constexpr (std::is_same_v<Device, device::cpu>) {
      std::uint64_t stream = first_stream_;
      for (const auto& t : tensors_)
        initialise(t.data, t.size, t.role, counter_rng(seed, stream++));
    } else {
      const parameter_store<typename Parameters::template on<device::cpu>, T> host(seed,
                                                                                   first_stream_);
      copy(flat_params(), host.flat_params());
    }
  }

 protected:
  Parameters params_, grads_;

 private:
  static tensor_view<T, extents<dynamic>, Device> flat(const buffer<T, Device>& memory) {
    return {memory.data(), extents<dynamic>(memory.size())};
  }

  std::uint64_t first_stream_;
  buffer<T, Device> params_memory_, grads_memory_;
  std::vector<parameter_tensor<T>> tensors_;
};

}  // namespace splitmask
