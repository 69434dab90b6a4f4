// Device tags: the third template parameter of tensors says where their storage lives.
// Host code works with device::cpu; device::cuda needs <splitmask/cuda.hpp> compiled by nvcc.
#pragma once

#include <type_traits>

namespace splitmask::device {

struct cpu {
  static constexpr const char* name = "cpu";
};

struct cuda {
  static constexpr const char* name = "cuda";
};

}  // namespace splitmask::device

namespace splitmask {

template <class D>
inline constexpr bool is_device_v =
    std::is_same_v<D, device::cpu> || std::is_same_v<D, device::cuda>;

namespace detail {
// For static_asserts that must fire only when a template is instantiated.
template <class...>
inline constexpr bool dependent_false = false;
}  // namespace detail

}  // namespace splitmask
