// Moving test data to the device under test and back, for tests shared by the CPU and CUDA.
#pragma once

#include <vector>

#include "splitmask/core/device.hpp"
#include "splitmask/tensor/tensor.hpp"

namespace splitmask::testing {

/// A copy of a host tensor on Device.
template <class Device, class T, class E>
tensor<T, E, Device> on_device(const tensor<T, E>& host) {
  return to_device<Device>(host);
}

/// The elements of a tensor on any device, as a host vector.
template <class X>
auto host_values(const X& x) {
  const auto v = x.view();
  using V = decltype(v);
  const auto host = to_device<device::cpu>(v);
  return std::vector<typename V::value_type>(host.data(), host.data() + host.size());
}

}  // namespace splitmask::testing
