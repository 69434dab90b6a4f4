// tensor_view<T, Extents, Device>: a borrowed window on contiguous row-major memory.
// Like Eigen's Map, assigning to a view writes its elements; constructing a view from another
// makes a second window on the same memory.
#pragma once

#include <cassert>
#include <cstddef>
#include <string>
#include <type_traits>

#include "splitmask/core/device.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/core/extents.hpp"
#include "splitmask/tensor/assign.hpp"
#include "splitmask/tensor/expr/elementwise.hpp"
#include "splitmask/tensor/expr/node.hpp"

namespace splitmask {

namespace detail {
// Cold: one copy for every shape.
[[noreturn]] inline void fail_reshape(const std::string& from, std::size_t size,
                                      const std::string& target) {
  throw shape_error("splitmask: cannot reshape " + from + " (" + std::to_string(size) +
                    " elements) to " + target);
}
}  // namespace detail

template <class T, class Extents, class Device = device::cpu>
class tensor_view {
  static_assert(is_extents_v<Extents>, "splitmask: the second parameter must be an extents<...>");
  static_assert(is_device_v<Device>, "splitmask: the device must be device::cpu or device::cuda");

 public:
  using element_type = T;  // const T for a read-only view
  using value_type = std::remove_const_t<T>;
  using extents_type = Extents;
  using device_type = Device;
  static constexpr std::size_t rank = Extents::rank;

  constexpr tensor_view() = default;
  constexpr tensor_view(T* data, const Extents& shape) : data_(data), extents_(shape) {}
  /// A view of a fully static shape needs only its pointer.
  template <class E = Extents, std::enable_if_t<E::is_static, int> = 0>
  constexpr explicit tensor_view(T* data) : data_(data) {}
  /// A mutable view converts to a read-only one.
  template <class U, std::enable_if_t<
                         std::is_convertible_v<U (*)[], T (*)[]> && !std::is_same_v<U, T>, int> = 0>
  constexpr tensor_view(const tensor_view<U, Extents, Device>& other)
      : data_(other.data()), extents_(other.extents()) {}
  constexpr tensor_view(const tensor_view&) = default;

  /// Exchanges the two windows (not their elements). Found by ADL: `swap(a, b)`. Note that
  /// `std::swap(a, b)` would go through assignment, which writes elements.
  friend constexpr void swap(tensor_view& a, tensor_view& b) noexcept {
    T* d = a.data_;
    a.data_ = b.data_;
    b.data_ = d;
    const Extents e = a.extents_;
    a.extents_ = b.extents_;
    b.extents_ = e;
  }

  /// Points this window at other memory (assignment, by contrast, writes elements).
  constexpr void reset(T* data, const Extents& shape) noexcept {
    data_ = data;
    extents_ = shape;
  }

  /// Writes `other`'s elements into this view's.
  tensor_view& operator=(const tensor_view& other) {
    assign_from(other);
    return *this;
  }
  /// Evaluates an expression, a tensor, a view or a scalar into this view's elements.
  template <class X, std::enable_if_t<is_operand_v<X> || is_scalar_v<X>, int> = 0>
  tensor_view& operator=(const X& x) {
    assign_from(x);
    return *this;
  }

  constexpr T* data() const noexcept { return data_; }
  constexpr const Extents& extents() const noexcept { return extents_; }
  constexpr std::size_t size() const noexcept { return extents_.size(); }
  /// The leading extent (the batch for a dynamic shape).
  constexpr std::size_t batch() const noexcept { return extents_.leading(); }
  constexpr bool empty() const noexcept { return size() == 0; }
  constexpr tensor_view view() const noexcept { return *this; }

  /// Element (i0, i1, ...) of a host tensor.
  template <class... I>
  T& operator()(I... index) const {
    static_assert(std::is_same_v<Device, device::cpu>,
                  "splitmask: element access needs a host tensor; copy device tensors to "
                  "device::cpu first");
    static_assert(sizeof...(I) == rank, "splitmask: one index per axis");
    std::size_t offset = 0, axis = 0;
    ((assert(static_cast<std::size_t>(index) < extents_.extent(axis)),
      offset = offset * extents_.extent(axis++) + static_cast<std::size_t>(index)),
     ...);
    return data_[offset];
  }

  /// Item i of the leading axis: a view of rank - 1, or an element of a rank-1 host tensor.
  decltype(auto) operator[](std::size_t i) const {
    assert(i < batch());
    if constexpr (rank == 1) {
      return (*this)(i);
    } else {
      using Item = drop_leading_t<Extents>;
      return tensor_view<T, Item, Device>(data_ + i * Extents::inner_size, Item{});
    }
  }

  /// Items [begin, begin + count) of the leading axis, as a dynamic-batch view.
  auto slice(std::size_t begin, std::size_t count) const {
    using Sliced = with_leading_t<Extents, dynamic>;
    if (begin > batch() || count > batch() - begin)
      throw shape_error("splitmask: slice [" + std::to_string(begin) + ", " +
                        std::to_string(begin + count) + ") is out of range for shape " +
                        to_string(extents_));
    return tensor_view<T, Sliced, Device>(data_ + begin * Extents::inner_size, Sliced(count));
  }

  /// The same elements as another shape of equal size. A dynamic NewExtents takes its batch
  /// from the size; sizes that cannot match are compile errors, others are checked at run time.
  template <class NewExtents>
  auto reshape() const {
    static_assert(!(Extents::is_static && NewExtents::is_static) ||
                      Extents::static_size == NewExtents::static_size,
                  "splitmask: reshape to a shape of another size");
    const std::size_t n = size();
    if constexpr (NewExtents::is_static) {
      if (n != NewExtents::static_size) fail_reshape(to_string(NewExtents{}));
      return tensor_view<T, NewExtents, Device>(data_, NewExtents{});
    } else {
      if (n % NewExtents::inner_size != 0)
        fail_reshape("rows of " + std::to_string(NewExtents::inner_size) + " elements");
      return tensor_view<T, NewExtents, Device>(data_, NewExtents(n / NewExtents::inner_size));
    }
  }

  /// The leaf of expressions that read this view.
  constexpr leaf_expr<value_type, Extents, Device> expression() const { return {data_, extents_}; }

 private:
  template <class X>
  void assign_from(const X& x) {
    static_assert(!std::is_const_v<T>, "splitmask: cannot assign to a read-only view");
    if (data_ == nullptr && size() != 0)
      throw shape_error("splitmask: assignment to a view of shape " + to_string(extents_) +
                        " that has no memory (default-constructed)");
    assign<Device>(data_, extents_, x);
  }
  [[noreturn]] void fail_reshape(const std::string& target) const {
    detail::fail_reshape(to_string(extents_), size(), target);
  }

  T* data_ = nullptr;
  Extents extents_{};
};

}  // namespace splitmask
