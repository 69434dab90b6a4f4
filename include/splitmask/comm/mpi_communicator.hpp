// mpi_communicator: the processes of an MPI job (mpirun -np N), collectives on host buffers by
// Open MPI. Debian's Open MPI is built without CUDA support, so device buffers go to NCCL
// (nccl_communicator.cuh) instead. mpi_session initialises and finalises MPI once per program;
// an MPI error throws comm_error with MPI's message rather than aborting the job silently.
//
//   splitmask::mpi_session mpi(argc, argv);
//   splitmask::mpi_communicator world;  // MPI_COMM_WORLD
//   world.all_reduce_sum(grads.data(), grads.size());
#pragma once

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "splitmask/comm/communicator.hpp"

namespace splitmask {

namespace detail {
inline void check_mpi(int status, const char* call) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  throw comm_error(std::string("splitmask: ") + call + " failed: " + std::string(text, length));
}

inline MPI_Datatype mpi_type(element_kind kind) {
  switch (kind) {
    case element_kind::f32:
      return MPI_FLOAT;
    case element_kind::f64:
      return MPI_DOUBLE;
    case element_kind::i32:
      return MPI_INT32_T;
    case element_kind::u64:
      return MPI_UINT64_T;
    case element_kind::u8:
      break;
  }
  return MPI_UINT8_T;
}

// MPI counts are int: larger buffers go in pieces of at most 2^30 elements.
template <class F>
void in_mpi_pieces(std::size_t count, F&& f) {
  constexpr std::size_t piece = std::size_t{1} << 30;
  for (std::size_t first = 0; first < count; first += piece)
    f(first, static_cast<int>(count - first < piece ? count - first : piece));
}
}  // namespace detail

/// MPI_Init_thread on construction (funneled: collectives come from the thread that made it),
/// MPI_Finalize on destruction, unless MPI was already initialised by someone else. Errors on
/// MPI_COMM_WORLD return to the caller (and throw comm_error) instead of aborting.
class mpi_session {
 public:
  mpi_session(int& argc, char**& argv) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (initialised) return;
    int provided = 0;
    detail::check_mpi(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided),
                      "MPI_Init_thread");
    owner_ = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  mpi_session(const mpi_session&) = delete;
  mpi_session& operator=(const mpi_session&) = delete;
  ~mpi_session() {
    if (owner_) MPI_Finalize();
  }

 private:
  bool owner_ = false;
};

class mpi_communicator final : public communicator {
 public:
  /// The processes of `comm` (MPI must be initialised: an mpi_session); every rank constructs
  /// it together. `order`: how sums add the ranks' values (summation::rank_order for runs that
  /// must give the same bits as any other rank-ordered engine).
  explicit mpi_communicator(MPI_Comm comm = MPI_COMM_WORLD, summation order = summation::engine)
      : comm_(comm), order_(order) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised)
      throw comm_error(
          "splitmask::mpi_communicator: MPI is not initialised (make an mpi_session "
          "first)");
    detail::check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    detail::check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    MPI_Comm node;
    detail::check_mpi(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
                      "MPI_Comm_split_type");
    detail::check_mpi(MPI_Comm_size(node, &node_ranks_), "MPI_Comm_size");
    MPI_Comm_free(&node);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool on_device() const override { return false; }
  std::string description() const override {
    return "MPI, " + std::to_string(size_) + (size_ == 1 ? " process" : " processes");
  }
  void barrier() override { detail::check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }
  bool any(bool flag) override {
    int value = flag ? 1 : 0;
    detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_LOR, comm_),
                      "MPI_Allreduce");
    return value != 0;
  }
  void host_sum(double* values, std::size_t count) override { all_reduce_sum(values, count); }
  void host_broadcast(void* bytes, std::size_t size, int root) override {
    broadcast(static_cast<std::uint8_t*>(bytes), size, root);
  }
  /// How many of the ranks run on this machine (MPI's shared-memory group).
  int ranks_on_this_node() const override { return node_ranks_; }
  MPI_Comm handle() const { return comm_; }

 protected:
  void all_reduce_sum_raw(void* data, std::size_t count, element_kind kind) override {
    auto* bytes = static_cast<char*>(data);
    if (order_ == summation::rank_order && size_ > 1) return sum_in_rank_order(bytes, count, kind);
    detail::in_mpi_pieces(count, [&](std::size_t first, int n) {
      detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, bytes + first * element_size(kind), n,
                                      detail::mpi_type(kind), MPI_SUM, comm_),
                        "MPI_Allreduce");
    });
  }
  void all_gather_raw(const void* sent, void* received, std::size_t count,
                      element_kind kind) override {
    if (count > std::size_t(std::numeric_limits<int>::max()))
      throw comm_error("splitmask::mpi_communicator::all_gather: more than 2^31 - 1 elements");
    detail::check_mpi(MPI_Allgather(sent, static_cast<int>(count), detail::mpi_type(kind), received,
                                    static_cast<int>(count), detail::mpi_type(kind), comm_),
                      "MPI_Allgather");
  }
  void broadcast_raw(void* data, std::size_t count, element_kind kind, int root) override {
    auto* bytes = static_cast<char*>(data);
    detail::in_mpi_pieces(count, [&](std::size_t first, int n) {
      detail::check_mpi(
          MPI_Bcast(bytes + first * element_size(kind), n, detail::mpi_type(kind), root, comm_),
          "MPI_Bcast");
    });
  }

 private:
  // Gathers every rank's values (in pieces, to bound the memory) and adds them in rank order.
  void sum_in_rank_order(char* bytes, std::size_t count, element_kind kind) {
    const std::size_t size = element_size(kind), piece = (std::size_t{1} << 24) / size;
    std::vector<char> gathered(std::min(count, piece) * size * std::size_t(size_));
    std::vector<const void*> ranks(std::size_t(size_), nullptr);
    for (std::size_t first = 0; first < count; first += piece) {
      const std::size_t n = std::min(piece, count - first);
      char* mine = bytes + first * size;
      detail::check_mpi(
          MPI_Allgather(mine, static_cast<int>(n), detail::mpi_type(kind), gathered.data(),
                        static_cast<int>(n), detail::mpi_type(kind), comm_),
          "MPI_Allgather");
      for (int r = 0; r < size_; ++r) ranks[std::size_t(r)] = gathered.data() + r * n * size;
      detail::add_in_rank_order(mine, ranks.data(), size_, n, kind);
    }
  }

  MPI_Comm comm_;
  summation order_;
  int rank_ = 0, size_ = 1, node_ranks_ = 1;
};

}  // namespace splitmask
