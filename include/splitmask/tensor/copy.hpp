// Explicit copies between tensors, on one device or across devices (host <-> CUDA).
// Nothing moves between devices implicitly: a copy is always a call a reader can see.
#pragma once

#include <cstddef>
#include <cstring>
#include <type_traits>

#include "splitmask/core/backend.hpp"
#include "splitmask/core/device.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/tensor/tensor_view.hpp"

namespace splitmask {

namespace detail {
/// Throws unless the two ranges are disjoint or the same (a copy onto itself does nothing).
inline void check_copy_ranges(const void* dst, const void* src, std::size_t bytes) {
  const char* s = static_cast<const char*>(src);
  const char* d = static_cast<const char*>(dst);
  if (d != s && d < s + bytes && s < d + bytes)
    throw shape_error("splitmask::copy: source and destination overlap");
}

/// Host to host.
template <>
struct copier<device::cpu, device::cpu> {
  static void run(void* dst, const void* src, std::size_t bytes) {
    check_copy_ranges(dst, src, bytes);
    if (bytes && dst != src) std::memcpy(dst, src, bytes);
  }
};
}  // namespace detail

/// Copies every element of `src` into `dst` (tensors or views, any devices, same shape).
/// Throws shape_error when the batches differ.
template <class Dst, class Src>
void copy(Dst&& dst, const Src& src) {
  const auto d = dst.view();
  const auto s = src.view();
  using D = std::decay_t<decltype(d)>;
  using S = std::decay_t<decltype(s)>;
  static_assert(std::is_same_v<typename D::value_type, typename S::value_type>,
                "splitmask::copy: element types differ; convert with cast<T>(x) first");
  static_assert(std::is_same_v<typename D::extents_type, typename S::extents_type>,
                "splitmask::copy: shapes differ; reshape one of the views first");
  static_assert(!std::is_const_v<typename D::element_type>,
                "splitmask::copy: the destination is read-only");
  if (d.extents() != s.extents())
    throw shape_error("splitmask::copy: destination " + to_string(d.extents()) + " and source " +
                      to_string(s.extents()) + " differ");
  detail::copier<typename D::device_type, typename S::device_type>::run(
      d.data(), s.data(), d.size() * sizeof(typename D::value_type));
}

}  // namespace splitmask
