// Owned memory on a device: a move-only buffer of n elements, zeroed when allocated.
// Host memory is 64-byte aligned (one cache line, one AVX-512 vector); device memory comes from
// the CUDA backend (<splitmask/cuda.hpp>).
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include "splitmask/core/backend.hpp"
#include "splitmask/core/device.hpp"

namespace splitmask {

namespace detail {
/// Host memory: allocate(bytes) returns zeroed memory, deallocate(p) frees it.
template <>
struct allocator<device::cpu> {
  static constexpr std::size_t alignment = 64;

  static void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    void* p = ::operator new (bytes, std::align_val_t{alignment});
    std::memset(p, 0, bytes);
    return p;
  }
  static void deallocate(void* p) noexcept {
    if (p) ::operator delete (p, std::align_val_t{alignment});
  }
};
}  // namespace detail

/// n elements of T on Device, owned. Move-only; copies between buffers are explicit (copy.hpp).
template <class T, class Device>
class buffer {
  static_assert(std::is_trivially_copyable_v<T>,
                "splitmask: tensors hold trivially copyable element types");

 public:
  buffer() noexcept = default;
  explicit buffer(std::size_t n)
      : data_(static_cast<T*>(detail::allocator<Device>::allocate(n * sizeof(T)))), size_(n) {}
  buffer(buffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  buffer& operator=(buffer&& other) noexcept {
    if (this != &other) {
      detail::allocator<Device>::deallocate(data_);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  buffer(const buffer&) = delete;
  buffer& operator=(const buffer&) = delete;
  ~buffer() { detail::allocator<Device>::deallocate(data_); }

  T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace splitmask
