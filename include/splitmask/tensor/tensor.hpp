// tensor<T, Extents, Device>: owns zero-initialised storage of a compile-time shape with an
// optional run-time batch. Move-only; assignment writes elements (shapes must agree), clone()
// and copy() make copies explicit, also between the host and a CUDA device.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include "splitmask/core/device.hpp"
#include "splitmask/core/extents.hpp"
#include "splitmask/tensor/copy.hpp"
#include "splitmask/tensor/storage.hpp"
#include "splitmask/tensor/tensor_view.hpp"

namespace splitmask {

template <class T, class Extents, class Device = device::cpu>
class tensor {
  static_assert(std::is_same_v<T, std::remove_cv_t<T>>,
                "splitmask: a tensor owns mutable elements; use tensor_view<const T, ...> for a "
                "read-only window");

 public:
  using element_type = T;
  using value_type = T;
  using extents_type = Extents;
  using device_type = Device;
  using view_type = tensor_view<T, Extents, Device>;
  using const_view_type = tensor_view<const T, Extents, Device>;
  static constexpr std::size_t rank = Extents::rank;
  /// Expressions refuse temporaries of this type: they would outlive the storage they read.
  static constexpr bool owns_storage = true;

  /// A static shape is allocated; a dynamic one starts empty (batch 0).
  tensor() : tensor(Extents{}) {}
  /// Allocates `batch` items of the leading axis (for a static shape, it must be that extent).
  explicit tensor(std::size_t batch) : tensor(Extents(batch)) {}
  explicit tensor(const Extents& shape) : storage_(shape.size()), extents_(shape) {}

  /// A moved-from tensor is empty: size 0, no data; a dynamic batch becomes 0, and a static
  /// shape's views throw until a tensor is moved in. Views of the old storage follow the move.
  tensor(tensor&& other) noexcept
      : storage_(std::move(other.storage_)),
        extents_(std::exchange(other.extents_, empty_extents())) {}
  tensor& operator=(tensor&& other) noexcept {
    storage_ = std::move(other.storage_);
    extents_ = std::exchange(other.extents_, empty_extents());
    return *this;
  }
  tensor(const tensor&) = delete;  // copies are explicit: clone() or copy()

  /// Writes `other`'s elements into this tensor's (no reallocation; the batches must agree).
  tensor& operator=(const tensor& other) {
    view() = other.view();
    return *this;
  }
  /// Evaluates an expression, a tensor, a view or a scalar into this tensor's elements.
  template <class X, std::enable_if_t<is_operand_v<X> || is_scalar_v<X>, int> = 0>
  tensor& operator=(const X& x) {
    view() = x;
    return *this;
  }

  /// A new tensor with the same shape, device and elements.
  tensor clone() const {
    tensor t(extents_);
    copy(t, *this);
    return t;
  }

  /// Gives a dynamic-batch tensor `batch` items, reallocating (zeroed) only when it changes.
  void resize(std::size_t batch) {
    static_assert(!Extents::is_static, "splitmask: resize needs a dynamic batch");
    if (batch != extents_.leading()) *this = tensor(batch);
  }

  T* data() noexcept { return storage_.data(); }
  const T* data() const noexcept { return storage_.data(); }
  const Extents& extents() const noexcept { return extents_; }
  std::size_t size() const noexcept { return storage_.size(); }
  std::size_t batch() const noexcept { return extents_.leading(); }
  bool empty() const noexcept { return size() == 0; }

  /// A view of the whole tensor. Throws shape_error for a moved-from tensor of static shape
  /// (it keeps its extents but has no storage).
  view_type view() {
    check_storage();
    return {data(), extents_};
  }
  const_view_type view() const {
    check_storage();
    return {data(), extents_};
  }
  operator view_type() { return view(); }
  operator const_view_type() const { return view(); }

  template <class... I>
  T& operator()(I... index) {
    return view()(index...);
  }
  template <class... I>
  const T& operator()(I... index) const {
    return view()(index...);
  }
  decltype(auto) operator[](std::size_t i) { return view()[i]; }
  decltype(auto) operator[](std::size_t i) const { return view()[i]; }
  auto slice(std::size_t begin, std::size_t count) { return view().slice(begin, count); }
  auto slice(std::size_t begin, std::size_t count) const { return view().slice(begin, count); }
  template <class NewExtents>
  auto reshape() {
    return view().template reshape<NewExtents>();
  }
  template <class NewExtents>
  auto reshape() const {
    return view().template reshape<NewExtents>();
  }

  leaf_expr<T, Extents, Device> expression() const { return view().expression(); }

 private:
  void check_storage() const {
    if (storage_.size() != extents_.size())
      throw shape_error("splitmask: use of a moved-from tensor of shape " + to_string(extents_));
  }

  static Extents empty_extents() noexcept {
    if constexpr (Extents::is_static) {
      return Extents{};  // a static shape cannot be empty: size() and data() say it is
    } else {
      return Extents(0);
    }
  }

  buffer<T, Device> storage_;
  Extents extents_;
};

/// A copy of `x` (a tensor or view) in a new tensor on Device.
template <class Device, class X>
auto to_device(const X& x) {
  const auto v = x.view();
  using V = decltype(v);
  tensor<typename V::value_type, typename V::extents_type, Device> t(v.extents());
  copy(t, v);
  return t;
}

}  // namespace splitmask
