// One allocation, many tensors. Parameters, gradients and saved activations are structs of
// views whose `bind(arena_cursor&)` carves them out of one buffer: a first pass with no memory
// counts the elements, then the buffer is allocated (zeroed) on the layout's device and the
// views bound into it.
#pragma once

#include <cstddef>

#include "splitmask/core/device.hpp"
#include "splitmask/tensor/storage.hpp"
#include "splitmask/tensor/tensor_view.hpp"

namespace splitmask {

/// Hands out consecutive, 64-byte aligned views of an arena (or only counts, with no base).
template <class T>
class arena_cursor {
 public:
  static constexpr std::size_t alignment = 64 / sizeof(T) > 0 ? 64 / sizeof(T) : 1;  // elements

  explicit arena_cursor(T* base = nullptr) : base_(base) {}

  /// Points `view` (of a static shape) at the next elements. While counting it gets no memory.
  template <class E, class Device>
  void place(tensor_view<T, E, Device>& view) {
    static_assert(E::is_static, "splitmask::arena_cursor: a dynamic shape needs its batch");
    place(view, E::static_extent(0));
  }
  /// Points `view` at the next elements of its shape with `leading` items of the leading axis.
  template <class E, class Device>
  void place(tensor_view<T, E, Device>& view, std::size_t leading) {
    const E shape(leading);
    used_ = (used_ + alignment - 1) / alignment * alignment;
    view.reset(base_ ? base_ + used_ : nullptr, shape);
    used_ += shape.size();
  }
  /// Elements handed out so far, padding included.
  std::size_t used() const { return used_; }

 private:
  T* base_;
  std::size_t used_ = 0;
};

/// Binds `layout` (anything with bind(arena_cursor<T>&)) into a new zeroed buffer on Device
/// sized by a counting pass, and returns the buffer, which owns the memory the views point to.
template <class T, class Device = device::cpu, class Layout>
buffer<T, Device> bind_arena(Layout& layout) {
  arena_cursor<T> counter;
  layout.bind(counter);
  buffer<T, Device> memory(counter.used());
  arena_cursor<T> cursor(memory.data());
  layout.bind(cursor);
  return memory;
}

/// Sizes `layout` for `batch` images into `memory`, unless it already is: sets the layout's
/// `batch` field and binds it into a new arena. If the allocation fails, the layout is left
/// with batch 0 and no memory (its views were unbound), so the next call sizes it afresh.
template <class T, class Device, class Layout>
void resize_arena(Layout& layout, buffer<T, Device>& memory, std::size_t batch) {
  if (batch == layout.batch && memory.data() != nullptr) return;
  layout.batch = batch;
  try {
    memory = bind_arena<T, Device>(layout);
  } catch (...) {
    layout.batch = 0;
    memory = {};
    throw;
  }
}

}  // namespace splitmask
