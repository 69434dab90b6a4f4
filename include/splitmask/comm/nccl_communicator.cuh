// nccl_communicator: one GPU per rank, collectives on device buffers by NCCL, ordered on the
// thread's CUDA stream (the one the trainer's kernels use). The ranks agree on NCCL's unique id
// through MPI (MPI_Bcast from rank 0) or, for launchers without MPI, through a file that rank 0
// writes atomically and the others wait for. Small host agreements (losses, a stop decision)
// are staged through device memory. Compiled by nvcc, with splitmask::nccl.
//
//   splitmask::mpi_session mpi(argc, argv);
//   splitmask::mpi_communicator world;
//   cudaSetDevice(local_rank);
//   splitmask::nccl_communicator gpus(world);  // the id by MPI_Bcast
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "splitmask/backend/cuda/check.cuh"
#include "splitmask/backend/cuda/context.cuh"
#include "splitmask/comm/communicator.hpp"

namespace splitmask {

namespace detail {
inline void check_nccl(ncclResult_t status, const char* call) {
  if (status == ncclSuccess) return;
  throw comm_error(std::string("splitmask: ") + call + " failed: " + ncclGetErrorString(status));
}

inline ncclDataType_t nccl_type(element_kind kind) {
  switch (kind) {
    case element_kind::f32:
      return ncclFloat32;
    case element_kind::f64:
      return ncclFloat64;
    case element_kind::i32:
      return ncclInt32;
    case element_kind::u64:
      return ncclUint64;
    case element_kind::u8:
      break;
  }
  return ncclUint8;
}

// Rank 0 writes the id to path + ".tmp" and renames it (atomic on POSIX); the others poll.
inline ncclUniqueId unique_id_by_file(const std::string& path, int rank,
                                      std::chrono::seconds timeout) {
  ncclUniqueId id{};
  if (rank == 0) {
    check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(id.internal, sizeof id.internal);
      if (!out) throw comm_error("splitmask::nccl_communicator: cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw comm_error("splitmask::nccl_communicator: cannot rename " + tmp + " to " + path);
    return id;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::ifstream in(path, std::ios::binary);
    if (in.read(id.internal, sizeof id.internal)) return id;
    if (std::chrono::steady_clock::now() > deadline)
      throw comm_error("splitmask::nccl_communicator: rank " + std::to_string(rank) +
                       " found no NCCL id in " + path + " within " +
                       std::to_string(timeout.count()) + " s (is rank 0 running?)");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}
}  // namespace detail

class nccl_communicator final : public communicator {
 public:
  /// The ranks of `host` (an mpi_communicator, or any host communicator), one GPU each: the
  /// current device of each process. Rank 0's unique id reaches the others by host_broadcast.
  explicit nccl_communicator(communicator& host)
      : rank_(host.rank()), size_(host.size()), node_ranks_(host.ranks_on_this_node()) {
    ncclUniqueId id{};
    if (rank_ == 0) detail::check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    host.host_broadcast(id.internal, sizeof id.internal, 0);
    init(id);
  }
  /// rank of size, without MPI: the id goes through `id_file` (on a file system every rank
  /// sees; rank 0 writes it atomically), waited for up to `timeout`.
  nccl_communicator(int rank, int size, const std::string& id_file,
                    std::chrono::seconds timeout = std::chrono::seconds(120))
      : rank_(rank), size_(size) {
    if (size < 1 || rank < 0 || rank >= size)
      throw comm_error("splitmask::nccl_communicator: rank " + std::to_string(rank) + " of " +
                       std::to_string(size));
    init(detail::unique_id_by_file(id_file, rank, timeout));
  }
  nccl_communicator(const nccl_communicator&) = delete;
  nccl_communicator& operator=(const nccl_communicator&) = delete;
  ~nccl_communicator() override {
    if (staging_) cudaFree(staging_);
    if (comm_) ncclCommDestroy(comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int ranks_on_this_node() const override { return node_ranks_; }
  bool on_device() const override { return true; }
  std::string description() const override {
    return "NCCL, " + std::to_string(size_) + (size_ == 1 ? " GPU" : " GPUs");
  }
  void barrier() override {
    int flag = 0;
    host_reduce(&flag, sizeof flag, element_kind::i32, 1);
  }
  bool any(bool flag) override {
    std::int32_t value = flag ? 1 : 0;
    host_reduce(&value, sizeof value, element_kind::i32, 1);
    return value != 0;
  }
  void host_sum(double* values, std::size_t count) override {
    host_reduce(values, count * sizeof(double), element_kind::f64, count);
  }
  void host_broadcast(void* bytes, std::size_t size, int root) override {
    void* device = staging(size);
    SPLITMASK_CUDA_CHECK(cudaMemcpyAsync(device, bytes, size, cudaMemcpyHostToDevice, stream()));
    broadcast_raw(device, size, element_kind::u8, root);
    SPLITMASK_CUDA_CHECK(cudaMemcpyAsync(bytes, device, size, cudaMemcpyDeviceToHost, stream()));
    SPLITMASK_CUDA_CHECK(cudaStreamSynchronize(stream()));
  }

 protected:
  void all_reduce_sum_raw(void* data, std::size_t count, element_kind kind) override {
    detail::check_nccl(
        ncclAllReduce(data, data, count, detail::nccl_type(kind), ncclSum, comm_, stream()),
        "ncclAllReduce");
  }
  void all_gather_raw(const void* sent, void* received, std::size_t count,
                      element_kind kind) override {
    detail::check_nccl(
        ncclAllGather(sent, received, count, detail::nccl_type(kind), comm_, stream()),
        "ncclAllGather");
  }
  void broadcast_raw(void* data, std::size_t count, element_kind kind, int root) override {
    detail::check_nccl(
        ncclBroadcast(data, data, count, detail::nccl_type(kind), root, comm_, stream()),
        "ncclBroadcast");
  }

 private:
  static cudaStream_t stream() { return backend::cuda::context::current().stream(); }

  void init(const ncclUniqueId& id) {
    detail::check_nccl(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
  }
  void* staging(std::size_t bytes) {
    if (bytes > staging_bytes_) {
      if (staging_) SPLITMASK_CUDA_CHECK(cudaFree(staging_));
      staging_ = nullptr;
      SPLITMASK_CUDA_CHECK(cudaMalloc(&staging_, bytes));
      staging_bytes_ = bytes;
    }
    return staging_;
  }
  // Sums `count` elements of host memory across ranks through the staging buffer.
  void host_reduce(void* values, std::size_t bytes, element_kind kind, std::size_t count) {
    void* device = staging(bytes);
    SPLITMASK_CUDA_CHECK(cudaMemcpyAsync(device, values, bytes, cudaMemcpyHostToDevice, stream()));
    all_reduce_sum_raw(device, count, kind);
    SPLITMASK_CUDA_CHECK(cudaMemcpyAsync(values, device, bytes, cudaMemcpyDeviceToHost, stream()));
    SPLITMASK_CUDA_CHECK(cudaStreamSynchronize(stream()));
  }

  int rank_ = 0, size_ = 1, node_ranks_ = 1;  // node_ranks_: 1 where the id came by file
  ncclComm_t comm_ = nullptr;
  void* staging_ = nullptr;
  std::size_t staging_bytes_ = 0;
};

}  // namespace splitmask
