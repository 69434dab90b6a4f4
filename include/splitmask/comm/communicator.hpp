// communicator: what data-parallel training needs of the processes it runs on, whichever engine
// moves the bytes (Open MPI between CPU processes, NCCL between GPUs): each process's rank among
// size(), and the collectives sum-all-reduce, all-gather, broadcast and barrier. Buffers live
// where the engine reads them: host memory for MPI, device memory for NCCL (on_device()). Every
// rank calls every collective in the same order with the same counts, as with MPI itself.
//
// single_process is the default: one process, whose collectives copy or do nothing, so a trainer
// runs unchanged without MPI or NCCL. The engines are in mpi_communicator.hpp and
// nccl_communicator.cuh, each its own CMake target (splitmask::mpi, splitmask::nccl).
//
//   splitmask::single_process one;
//   one.all_reduce_sum(grads.data(), grads.size());  // nothing to add
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace splitmask {

/// A collective that failed, or a communicator that cannot serve: the engine's message.
struct comm_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The element types collectives move.
enum class element_kind { f32, f64, i32, u64, u8 };

/// How all_reduce_sum adds the ranks' values. Either way every rank ends with the same bits.
/// - engine: in the order the engine's algorithm picks (Open MPI's depends on the rank count
///   and the message size); the fastest.
/// - rank_order: ((x_0 + x_1) + x_2) + ... for every element, whatever the engine: two engines,
///   or two algorithms of one engine, then give the same bits. Costs an all-gather (W times the
///   memory and bytes of a sum); for reproducibility checks, not for speed.
enum class summation { engine, rank_order };

namespace detail {
template <class T>
constexpr element_kind element_kind_of() {
  if constexpr (std::is_same_v<T, float>) return element_kind::f32;
  if constexpr (std::is_same_v<T, double>) return element_kind::f64;
  if constexpr (std::is_same_v<T, std::int32_t>) return element_kind::i32;
  if constexpr (std::is_same_v<T, std::uint64_t>) return element_kind::u64;
  if constexpr (std::is_same_v<T, std::uint8_t> || std::is_same_v<T, char>) return element_kind::u8;
}
template <class T>
constexpr bool is_collective_element =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int32_t> ||
    std::is_same_v<T, std::uint64_t> || std::is_same_v<T, std::uint8_t> || std::is_same_v<T, char>;
}  // namespace detail

inline std::size_t element_size(element_kind kind) {
  switch (kind) {
    case element_kind::f32:
    case element_kind::i32:
      return 4;
    case element_kind::f64:
    case element_kind::u64:
      return 8;
    case element_kind::u8:
      break;
  }
  return 1;
}

namespace detail {
// The type sums are done in: integers wrap on overflow, as MPI's sums do, through unsigned
// arithmetic (no undefined behaviour).
template <class T, bool = std::is_integral_v<T>>
struct wrapping_sum {
  using type = T;
};
template <class T>
struct wrapping_sum<T, true> {
  using type = std::make_unsigned_t<T>;
};

template <class T>
void add_in_rank_order(T* sum, const void* const* ranks, int size, std::size_t count) {
  using A = typename wrapping_sum<T>::type;
  for (std::size_t i = 0; i < count; ++i) {
    A s = static_cast<A>(static_cast<const T*>(ranks[0])[i]);
    for (int r = 1; r < size; ++r)
      s = static_cast<A>(s + static_cast<A>(static_cast<const T*>(ranks[r])[i]));
    sum[i] = static_cast<T>(s);
  }
}

/// sum[i] = ((ranks[0][i] + ranks[1][i]) + ranks[2][i]) + ...: summation::rank_order. `sum`
/// may be one of the ranks' buffers: element i is read before it is written.
inline void add_in_rank_order(void* sum, const void* const* ranks, int size, std::size_t count,
                              element_kind kind) {
  const auto as = [&](auto zero) {
    using T = decltype(zero);
    add_in_rank_order(static_cast<T*>(sum), ranks, size, count);
  };
  switch (kind) {
    case element_kind::f32:
      return as(0.0f);
    case element_kind::f64:
      return as(0.0);
    case element_kind::i32:
      return as(std::int32_t{0});
    case element_kind::u64:
      return as(std::uint64_t{0});
    case element_kind::u8:
      return as(std::uint8_t{0});
  }
}
}  // namespace detail

/// The processes of a data-parallel run. Virtual, so that a trainer takes any engine without
/// being compiled once per engine; a collective costs far more than the call.
class communicator {
 public:
  virtual ~communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// Whether the collectives take device (GPU) buffers rather than host buffers.
  virtual bool on_device() const = 0;
  /// What it runs on, for messages: "1 process", "MPI, 4 processes", "NCCL, 8 GPUs".
  virtual std::string description() const = 0;
  /// How many ranks share this machine's cores (to divide them); 1 where the engine cannot tell.
  virtual int ranks_on_this_node() const { return 1; }

  /// data[i] = the sum over ranks of data[i], on every rank.
  template <class T>
  void all_reduce_sum(T* data, std::size_t count) {
    static_assert(detail::is_collective_element<T>, "splitmask::communicator: unsupported type");
    all_reduce_sum_raw(data, count, detail::element_kind_of<T>());
  }
  /// received = the `count` elements of `sent` of rank 0, then of rank 1, ...: size()·count.
  template <class T>
  void all_gather(const T* sent, T* received, std::size_t count) {
    static_assert(detail::is_collective_element<T>, "splitmask::communicator: unsupported type");
    all_gather_raw(sent, received, count, detail::element_kind_of<T>());
  }
  /// data = rank root's data, on every rank.
  template <class T>
  void broadcast(T* data, std::size_t count, int root = 0) {
    static_assert(detail::is_collective_element<T>, "splitmask::communicator: unsupported type");
    broadcast_raw(data, count, detail::element_kind_of<T>(), root);
  }
  /// Returns once every rank has called it.
  virtual void barrier() = 0;

  // Small agreements on host memory, whatever the engine: a stop decision, loss values, a step
  // count. (NCCL's are staged through device memory.)

  /// True on every rank when any rank passes true: a decision all ranks take together.
  virtual bool any(bool flag) = 0;
  /// values[i] = the sum over ranks of values[i], on every rank (host memory).
  virtual void host_sum(double* values, std::size_t count) = 0;
  /// bytes = rank root's bytes, on every rank (host memory).
  virtual void host_broadcast(void* bytes, std::size_t size, int root = 0) = 0;

 protected:
  virtual void all_reduce_sum_raw(void* data, std::size_t count, element_kind kind) = 0;
  virtual void all_gather_raw(const void* sent, void* received, std::size_t count,
                              element_kind kind) = 0;
  virtual void broadcast_raw(void* data, std::size_t count, element_kind kind, int root) = 0;
};

/// One process: sums and broadcasts leave the data as it is, all-gather copies it (host memory;
/// a device trainer of one process calls no collective).
class single_process final : public communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  bool on_device() const override { return false; }
  std::string description() const override { return "1 process"; }
  void barrier() override {}
  bool any(bool flag) override { return flag; }
  void host_sum(double*, std::size_t) override {}
  void host_broadcast(void*, std::size_t, int) override {}

 protected:
  void all_reduce_sum_raw(void*, std::size_t, element_kind) override {}
  void all_gather_raw(const void* sent, void* received, std::size_t count,
                      element_kind kind) override {
    if (sent != received && count != 0) std::memmove(received, sent, count * element_size(kind));
  }
  void broadcast_raw(void*, std::size_t, element_kind, int) override {}
};

/// The communicator of a run that names none: one process.
inline communicator& one_process() {
  static single_process one;
  return one;
}

}  // namespace splitmask
