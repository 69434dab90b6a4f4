// thread_group: W ranks as threads of one process, on host memory, with no engine at all. For
// tests of data-parallel code without mpirun, and to check a distributed setup on one machine.
// Sums add the ranks' values in rank order (summation::rank_order), so a run gives the bits of
// an MPI run whose communicator sums in rank order, when each rank computes alike (the same
// OpenMP thread count, say 1).
//
// Within run(), a rank that throws stops the others: their next collective throws comm_error,
// so no thread waits forever; run() then rethrows the first rank's exception, and the group can
// run again. (Threads a caller starts itself, through rank(r), get no such guard.)
//
//   splitmask::thread_group group(2);
//   group.run([&](splitmask::communicator& comm) {  // on 2 threads, comm.rank() 0 and 1
//     trainer.distribute(comm);  // a trainer per rank
//   });
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "splitmask/comm/communicator.hpp"

namespace splitmask {

class thread_group {
 public:
  explicit thread_group(int size) : shared_(std::make_shared<shared>(size)) {
    if (size < 1) throw comm_error("splitmask::thread_group: needs at least 1 rank");
    for (int r = 0; r < size; ++r) ranks_.push_back(std::make_unique<rank_of>(shared_, r));
  }

  int size() const { return shared_->size; }
  /// Rank r's communicator (for a caller that starts its own threads, one per rank).
  communicator& rank(int r) { return *ranks_.at(std::size_t(r)); }

  /// f(communicator&) on size() threads, one per rank; returns when all have returned, and
  /// rethrows the exception of the rank that failed first, if any.
  template <class F>
  void run(F&& f) {
    shared_->reset();
    std::vector<std::thread> threads;
    std::exception_ptr first;
    std::mutex first_mutex;
    for (int r = 0; r < size(); ++r)
      threads.emplace_back([&, r] {
        try {
          f(rank(r));
        } catch (...) {
          {
            std::lock_guard<std::mutex> lock(first_mutex);
            if (!first) first = std::current_exception();
          }
          shared_->stop();
        }
      });
    for (auto& t : threads) t.join();
    if (first) std::rethrow_exception(first);
  }

 private:
  // What the ranks share: a barrier, each rank's published buffer, and a stop flag.
  struct shared {
    explicit shared(int ranks) : size(ranks), slots(std::size_t(ranks > 0 ? ranks : 0)) {}

    // Returns when every rank has arrived; throws comm_error once a rank has stopped.
    void arrive() {
      std::unique_lock<std::mutex> lock(mutex);
      if (stopped) throw stopped_error();
      const std::uint64_t generation = passed;
      if (++waiting == size) {
        waiting = 0;
        ++passed;
        done.notify_all();
        return;
      }
      done.wait(lock, [&] { return passed != generation || stopped; });
      if (passed == generation) throw stopped_error();
    }
    void stop() {
      std::lock_guard<std::mutex> lock(mutex);
      stopped = true;
      done.notify_all();
    }
    void reset() {  // before a run: no rank is waiting
      std::lock_guard<std::mutex> lock(mutex);
      stopped = false;
      waiting = 0;
    }
    static comm_error stopped_error() {
      return comm_error("splitmask::thread_group: another rank stopped with an error");
    }

    const int size;
    std::vector<const void*> slots;  // each rank's buffer in the current collective
    std::mutex mutex;
    std::condition_variable done;
    int waiting = 0;
    std::uint64_t passed = 0;
    bool stopped = false;
  };

  class rank_of final : public communicator {
   public:
    rank_of(std::shared_ptr<shared> group, int rank) : group_(std::move(group)), rank_(rank) {}

    int rank() const override { return rank_; }
    int size() const override { return group_->size; }
    int ranks_on_this_node() const override { return group_->size; }
    bool on_device() const override { return false; }
    std::string description() const override {
      return "threads, " + std::to_string(group_->size) + (group_->size == 1 ? " rank" : " ranks");
    }
    void barrier() override { group_->arrive(); }
    bool any(bool flag) override {
      std::uint8_t value = flag ? 1 : 0;
      bool result = false;
      exchange(&value, [&] {
        for (const void* slot : group_->slots)
          result = result || *static_cast<const std::uint8_t*>(slot);
      });
      return result;
    }
    void host_sum(double* values, std::size_t count) override { all_reduce_sum(values, count); }
    void host_broadcast(void* bytes, std::size_t size, int root) override {
      broadcast(static_cast<std::uint8_t*>(bytes), size, root);
    }

   protected:
    void all_reduce_sum_raw(void* data, std::size_t count, element_kind kind) override {
      scratch_.resize(count * element_size(kind));
      exchange(data, [&] {
        detail::add_in_rank_order(scratch_.data(), group_->slots.data(), group_->size, count, kind);
      });
      if (count != 0) std::memcpy(data, scratch_.data(), scratch_.size());
    }
    void all_gather_raw(const void* sent, void* received, std::size_t count,
                        element_kind kind) override {
      const std::size_t bytes = count * element_size(kind);
      exchange(sent, [&] {
        for (int r = 0; r < group_->size; ++r)
          if (bytes != 0)
            std::memcpy(static_cast<char*>(received) + std::size_t(r) * bytes,
                        group_->slots[std::size_t(r)], bytes);
      });
    }
    void broadcast_raw(void* data, std::size_t count, element_kind kind, int root) override {
      if (root < 0 || root >= group_->size)
        throw comm_error("splitmask::thread_group::broadcast: no rank " + std::to_string(root));
      const std::size_t bytes = count * element_size(kind);
      exchange(data, [&] {
        if (rank_ != root && bytes != 0) std::memcpy(data, group_->slots[std::size_t(root)], bytes);
      });
    }

   private:
    // Publishes `mine`, waits for every rank's, runs read() (which reads the slots and writes
    // only this rank's memory), and waits until every rank has read before anyone goes on.
    template <class Read>
    void exchange(const void* mine, Read&& read) {
      group_->slots[std::size_t(rank_)] = mine;
      group_->arrive();
      read();
      group_->arrive();
    }

    std::shared_ptr<shared> group_;
    int rank_;
    std::vector<char> scratch_;
  };

  std::shared_ptr<shared> shared_;
  std::vector<std::unique_ptr<rank_of>> ranks_;
};

}  // namespace splitmask
