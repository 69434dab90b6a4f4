// The communicator concept without MPI: one process's collectives, ranks as threads
// (thread_group), and the trainer over several ranks in one process: the sharding of batches,
// token targets and splits (tests/test_distributed.cpp runs 2 MPI processes).
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <ratio>
#include <stdexcept>
#include <string>
#include <vector>

#include "splitmask/comm/communicator.hpp"
#include "splitmask/comm/thread_group.hpp"
#include "splitmask/core/rng.hpp"
#include "splitmask/model/decoder_config.hpp"
#include "splitmask/tensor/expr/random.hpp"
#include "splitmask/tokenizer/patch_tokenizer.hpp"
#include "splitmask/train/objectives/beit.hpp"
#include "splitmask/train/objectives/mae.hpp"
#include "splitmask/train/objectives/splitmask.hpp"
#include "splitmask/train/trainer.hpp"
#include "support/compare.hpp"

namespace {

using namespace splitmask;
using splitmask::testing::relative_difference;
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

// ---- Ranks as threads -----------------------------------------------------------------------

TEST_CASE("thread_group: sums in rank order, gathers, broadcasts and agrees, alike on every rank") {
  thread_group group(3);
  CHECK(group.size() == 3);
  // Rank order matters for element 0: (1 + 1e8) + -1e8 is 0 in float, 1 + (1e8 + -1e8) is 1.
  const std::array<float, 3> first{1.0f, 1e8f, -1e8f};
  std::array<std::vector<float>, 3> sums, gathered, broadcast;
  std::array<std::array<bool, 2>, 3> anys{};
  std::array<double, 3> host{};
  std::array<std::string, 3> names;
  group.run([&](communicator& comm) {
    const auto r = std::size_t(comm.rank());
    names[r] = comm.description() + ", rank " + std::to_string(r);
    sums[r] = {first[r], float(r + 1)};
    comm.all_reduce_sum(sums[r].data(), 2);
    const std::vector<float> sent{float(r), float(r + 10)};
    gathered[r].resize(6);
    comm.all_gather(sent.data(), gathered[r].data(), 2);
    broadcast[r] = {float(r), float(r)};
    comm.broadcast(broadcast[r].data(), 2, 2);
    anys[r] = {comm.any(r == 1), comm.any(false)};
    host[r] = 0.25 * double(r);
    comm.host_sum(&host[r], 1);
    comm.barrier();
  });
  for (std::size_t r = 0; r < 3; ++r) {
    CAPTURE(r);
    CHECK(names[r] == "threads, 3 ranks, rank " + std::to_string(r));
    CHECK(sums[r] == std::vector<float>{0.0f, 6.0f});
    CHECK(gathered[r] == std::vector<float>{0, 10, 1, 11, 2, 12});
    CHECK(broadcast[r] == std::vector<float>{2, 2});
    CHECK(anys[r][0]);
    CHECK_FALSE(anys[r][1]);
    CHECK(host[r] == 0.75);
  }
}

TEST_CASE("thread_group: a rank that throws stops the others; run rethrows its error") {
  thread_group group(2);
  bool rank0_stopped = false;
  CHECK_THROWS_WITH_AS(group.run([&](communicator& comm) {
    if (comm.rank() == 1) throw std::runtime_error("rank 1 failed");
    try {
      comm.barrier();  // would wait forever for rank 1
    } catch (const comm_error&) {
      rank0_stopped = true;
      throw;
    }
  }),
                       "rank 1 failed", std::runtime_error);
  CHECK(rank0_stopped);
  int passed = 0;
  group.run([&](communicator& comm) {  // the group runs again after a failed run
    comm.barrier();
    if (comm.rank() == 0) ++passed;
  });
  CHECK(passed == 1);
  CHECK_THROWS_AS(thread_group(0), comm_error);
}

using images_type = tensor<float, extents<dynamic, 1, 28, 28>>;
using nano_splitmask = splitmask_objective<64, std::ratio<1, 2>, decoder_config<32, 1, 2>>;
constexpr std::size_t rank_batch = 4;

// Whether `part` equals rows [first, first + part's rows) of `whole` (same row length), bit for
// bit.
template <class Part, class Whole>
bool rows_equal(const Part& part, const Whole& whole, std::size_t first) {
  const std::size_t row = whole.size() / whole.batch();
  return std::equal(part.data(), part.data() + part.size(), whole.data() + first * row);
}

images_type images_of(std::size_t count, std::uint64_t seed) {
  images_type images(count);
  images = uniform(counter_rng(seed), images.extents(), -1.0f, 1.0f);
  return images;
}

patch_tokenizer<nano, 64> tokenizer_of(const images_type& images) {
  return patch_tokenizer<nano, 64>::sample(images, {0.0f}, {1.0f}, 3);
}

// W ranks as threads, batch 4 each, against one process with batch 4·W: `check(one, ranks)`
// after the first step, and the parameters, AdamW's moments and losses after 3.
template <class Objective, class Check, class... Args>
void check_thread_ranks(int W, Check&& check, const Args&... args) {
  pretrain_options options;
  options.lr = 1e-3;
  options.warmup_steps = 1;
  options.total_steps = 3;
  options.seed = 9;
  using trainer_type = trainer<Objective, nano>;
  const images_type all = images_of(rank_batch * std::size_t(W), 21);
  trainer_type one(rank_batch * std::size_t(W), options, typename Objective::options{}, args...);
  std::vector<std::unique_ptr<trainer_type>> ranks;
  std::vector<images_type> shares;
  for (int r = 0; r < W; ++r) {
    ranks.push_back(std::make_unique<trainer_type>(rank_batch, options,
                                                   typename Objective::options{}, args...));
    shares.emplace_back(rank_batch);
    std::copy_n(all.data() + std::size_t(r) * shares.back().size(), shares.back().size(),
                shares.back().data());
  }
  thread_group group(W);
  std::vector<step_losses> losses(static_cast<std::size_t>(W));
  const auto step_all = [&](bool first) {
    group.run([&](communicator& comm) {
      const auto r = std::size_t(comm.rank());
      if (first) ranks[r]->distribute(comm);
      losses[r] = ranks[r]->step(shares[r]);
    });
  };
  for (int step = 0; step < 3; ++step) {
    CAPTURE(step);
    const step_losses expected = one.step(all);
    step_all(step == 0);
    if (step == 0) check(one, ranks);
    for (const auto& got : losses) {
      CHECK(got.total == doctest::Approx(expected.total).epsilon(1e-5));
      CHECK(got.grad_norm == doctest::Approx(expected.grad_norm).epsilon(1e-5));
    }
  }
  for (const auto& mine : ranks) {
    CHECK(mine->steps() == 3);
    CHECK(relative_difference(mine->encoder().flat_params(), one.encoder().flat_params()) < 1e-5);
    CHECK(relative_difference(mine->optimizer().second_moment(), one.optimizer().second_moment()) <
          1e-5);
    // Every rank holds the same bits.
    CHECK(relative_difference(mine->encoder().flat_params(), ranks[0]->encoder().flat_params()) ==
          0);
  }
}

TEST_CASE(
    "trainer over ranks as threads: rank r's token ids and splits are rows of one process's") {
  const auto tokenizer = tokenizer_of(images_of(8, 3));
  for (int W : {2, 3}) {
    CAPTURE(W);
    check_thread_ranks<nano_splitmask>(
        W,
        [&](auto& one, auto& ranks) {
          for (std::size_t r = 0; r < ranks.size(); ++r) {
            const auto& mine = ranks[r]->objective();
            CHECK(rows_equal(mine.ids(), one.objective().ids(), r * rank_batch));
            CHECK(rows_equal(mine.split().a(), one.objective().split().a(), r * rank_batch));
            CHECK(rows_equal(mine.split().b(), one.objective().split().b(), r * rank_batch));
          }
        },
        tokenizer);
  }
}

TEST_CASE("trainer over ranks as threads: BEiT and MAE step as one process with the whole batch") {
  const auto ignore = [](auto&, auto&) {};
  check_thread_ranks<beit_objective<64>>(2, ignore, tokenizer_of(images_of(8, 3)));
  check_thread_ranks<nano_mae>(2, ignore);
}

}  // namespace
