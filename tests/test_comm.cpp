// The communicator concept without MPI: one process's collectives, and the trainer's checks
// (tests/test_distributed.cpp runs 2 MPI processes).
#include <doctest/doctest.h>

#include <cstdint>
#include <ratio>
#include <string>
#include <vector>

#include "splitmask/comm/communicator.hpp"
#include "splitmask/core/rng.hpp"
#include "splitmask/model/decoder_config.hpp"
#include "splitmask/tensor/expr/random.hpp"
#include "splitmask/train/objectives/mae.hpp"
#include "splitmask/train/trainer.hpp"

namespace {

using namespace splitmask;
using nano = vit_config<28, 1, 7, 32, 2, 2>;
using nano_mae = mae_objective<std::ratio<3, 4>, decoder_config<32, 1, 2>>;

TEST_CASE("single_process: rank 0 of 1; all-gather copies, sums and broadcasts keep the data") {
  single_process one;
  CHECK(one.rank() == 0);
  CHECK(one.size() == 1);
  CHECK_FALSE(one.on_device());
  std::vector<float> sent{1, 2, 3}, received(3);
  one.all_gather(sent.data(), received.data(), 3);
  CHECK(received == sent);
  one.all_reduce_sum(sent.data(), 3);
  one.broadcast(sent.data(), 3);
  CHECK(sent == std::vector<float>{1, 2, 3});
  double values[2] = {0.5, 2};
  one.host_sum(values, 2);
  CHECK(values[1] == 2);
  CHECK(one.any(true));
  CHECK_FALSE(one.any(false));
}

// Two ranks whose collectives take device buffers (as NCCL's), and that must not be called.
struct device_pair final : communicator {
  int rank() const override { return 0; }
  int size() const override { return 2; }
  bool on_device() const override { return true; }
  std::string description() const override { return "NCCL, 2 GPUs"; }
  void barrier() override { FAIL("called"); }
  bool any(bool) override {
    FAIL("called");
    return false;
  }
  void host_sum(double*, std::size_t) override { FAIL("called"); }
  void host_broadcast(void*, std::size_t, int) override { FAIL("called"); }

 protected:
  void all_reduce_sum_raw(void*, std::size_t, element_kind) override { FAIL("called"); }
  void all_gather_raw(const void*, void*, std::size_t, element_kind) override { FAIL("called"); }
  void broadcast_raw(void*, std::size_t, element_kind, int) override { FAIL("called"); }
};

TEST_CASE("trainer::distribute: a host trainer refuses a communicator of device buffers") {
  pretrain_options options;
  trainer<nano_mae, nano> t(2, options);
  device_pair gpus;
  CHECK_THROWS_WITH_AS(t.distribute(gpus),
                       "splitmask::trainer::distribute: a trainer on the host cannot use NCCL, "
                       "2 GPUs, whose collectives take device buffers",
                       comm_error);
  CHECK(t.comm().size() == 1);
}

TEST_CASE("trainer::distribute over one process changes nothing, bit for bit") {
  pretrain_options options;
  options.lr = 1e-3;
  options.total_steps = 2;
  trainer<nano_mae, nano> plain(4, options), distributed(4, options);
  single_process one;
  distributed.distribute(one);
  CHECK(distributed.global_batch() == 4);
  tensor<float, extents<dynamic, 1, 28, 28>> images(4);
  images = uniform(counter_rng(2), images.extents(), -1.0f, 1.0f);
  for (int step = 0; step < 2; ++step)
    CHECK(distributed.step(images).total == plain.step(images).total);
  const auto a = plain.encoder().flat_params(), b = distributed.encoder().flat_params();
  bool same = true;
  for (std::size_t i = 0; i < a.size(); ++i) same = same && a.data()[i] == b.data()[i];
  CHECK(same);
}

// Two host ranks whose rank 0 holds other parameters: its broadcast checksum differs.
struct drifted_pair final : communicator {
  int rank() const override { return 1; }
  int size() const override { return 2; }
  bool on_device() const override { return false; }
  std::string description() const override { return "a test pair"; }
  void barrier() override {}
  bool any(bool flag) override { return flag; }
  void host_sum(double* values, std::size_t count) override {
    for (std::size_t i = 0; i < count; ++i) values[i] *= 2;  // the other rank's are the same
  }
  void host_broadcast(void* bytes, std::size_t size, int) override {
    if (size == sizeof(double) && broadcasts_done++ > 0) *static_cast<double*>(bytes) += 1;
  }
  int broadcasts_done = 0;

 protected:
  void all_reduce_sum_raw(void* data, std::size_t count, element_kind kind) override {
    REQUIRE(kind == element_kind::f32);
    auto* x = static_cast<float*>(data);
    for (std::size_t i = 0; i < count; ++i) x[i] *= 2;
  }
  void all_gather_raw(const void*, void*, std::size_t, element_kind) override {}
  void broadcast_raw(void*, std::size_t, element_kind, int) override {}
};

TEST_CASE("trainer: ranks whose parameters drift apart all stop, naming the step") {
  pretrain_options options;
  options.lr = 1e-3;
  trainer<nano_mae, nano> t(2, options);
  drifted_pair pair;
  t.distribute(pair);
  t.check_ranks_every(2);
  tensor<float, extents<dynamic, 1, 28, 28>> images(2);
  images = uniform(counter_rng(4), images.extents(), -1.0f, 1.0f);
  t.step(images);  // step 1: not checked
  CHECK_THROWS_WITH_AS(t.step(images),
                       doctest::Contains("the ranks' parameters differ after step 2"), comm_error);
}

}  // namespace
