// Data-parallel training over MPI: run by ctest as `mpirun -np 2 test_distributed`. For each
// objective, 3 steps of W ranks with batch 4 each must give the parameters, AdamW moments and
// losses of one process with batch 4·W (every rank also trains that process's trainer, alone),
// and, summed in rank order, the very bits of W ranks as threads of one process.
#include <mpi.h>

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <ratio>
#include <string>
#include <vector>

#include "splitmask/comm/mpi_communicator.hpp"
#include "splitmask/comm/thread_group.hpp"
#include "splitmask/core/rng.hpp"
#include "splitmask/model/decoder_config.hpp"
#include "splitmask/tensor/copy.hpp"
#include "splitmask/tensor/expr/random.hpp"
#include "splitmask/tokenizer/patch_tokenizer.hpp"
#include "splitmask/train/objectives/beit.hpp"
#include "splitmask/train/objectives/mae.hpp"
#include "splitmask/train/objectives/splitmask.hpp"
#include "splitmask/train/trainer.hpp"
#include "support/compare.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using namespace splitmask;
using splitmask::testing::relative_difference;

// nano-28: 16 patches of 7 x 7, width 32, 2 blocks, 2 heads; the decoders 1 block of 32.
using nano = vit_config<28, 1, 7, 32, 2, 2>;
using images_type = tensor<float, extents<dynamic, 1, 28, 28>>;
constexpr std::size_t K = 64, local_batch = 4;

communicator* world = nullptr;

template <class Objective, class... Args>
void check_matches_one_process(const images_type& all, const Args&... args) {
  const int rank = world->rank(), ranks = world->size();
  pretrain_options options;
  options.lr = 1e-3;
  options.warmup_steps = 1;
  options.total_steps = 3;
  options.seed = 5;
  trainer<Objective, nano> one(local_batch * ranks, options, typename Objective::options{},
                               args...);
  trainer<Objective, nano> mine(local_batch, options, typename Objective::options{}, args...);
  mine.distribute(*world);
  images_type my_images(local_batch);
  copy(my_images, tensor_view<const float, extents<dynamic, 1, 28, 28>>(
                      all.data() + std::size_t(rank) * local_batch * 28 * 28,
                      extents<dynamic, 1, 28, 28>(local_batch)));
  for (int step = 0; step < 3; ++step) {
    const auto expected = one.step(all);
    const auto got = mine.step(my_images);
    CAPTURE(step);
    CHECK(got.total == doctest::Approx(expected.total).epsilon(1e-5));
    for (std::size_t t = 0; t < expected.count; ++t) {
      CAPTURE(expected.terms[t].key);
      CHECK(got.terms[t].value == doctest::Approx(expected.terms[t].value).epsilon(1e-5));
    }
    CHECK(got.grad_norm == doctest::Approx(expected.grad_norm).epsilon(1e-5));
  }
  CHECK(mine.steps() == one.steps());
  CHECK(relative_difference(mine.encoder().flat_params(), one.encoder().flat_params()) < 1e-5);
  CHECK(relative_difference(mine.optimizer().first_moment(), one.optimizer().first_moment()) <
        1e-5);
  CHECK(relative_difference(mine.optimizer().second_moment(), one.optimizer().second_moment()) <
        1e-5);
  std::printf("rank %d of %d, %s: parameters within %.2e of one process's\n", rank, ranks,
              Objective::name,
              relative_difference(mine.encoder().flat_params(), one.encoder().flat_params()));
}

template <class A, class B>
bool same_bits(const A& a, const B& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(*a.data())) == 0;
}

// Summed in rank order, this MPI rank's 3 steps against the same rank of a thread_group of W
// threads in this process: the same losses, gradient norms, parameters and AdamW moments, bit
// for bit (every rank computes with 1 OpenMP thread, as ctest's OMP_NUM_THREADS=1 sets).
template <class Objective, class... Args>
void check_bits_match_thread_ranks(const images_type& all, const Args&... args) {
  const int rank = world->rank(), ranks = world->size();
  mpi_communicator exact(MPI_COMM_WORLD, summation::rank_order);
  pretrain_options options;
  options.lr = 1e-3;
  options.warmup_steps = 1;
  options.total_steps = 3;
  options.seed = 6;
  using trainer_type = trainer<Objective, nano>;
  const std::size_t share = local_batch * 28 * 28;
  std::vector<std::unique_ptr<trainer_type>> threads;
  std::vector<images_type> shares;
  for (int r = 0; r < ranks; ++r) {
    threads.push_back(std::make_unique<trainer_type>(local_batch, options,
                                                     typename Objective::options{}, args...));
    shares.emplace_back(local_batch);
    std::memcpy(shares.back().data(), all.data() + std::size_t(r) * share, share * sizeof(float));
  }
  trainer_type mine(local_batch, options, typename Objective::options{}, args...);
  mine.distribute(exact);
  thread_group group(ranks);
  std::vector<step_losses> thread_losses(static_cast<std::size_t>(ranks));
  for (int step = 0; step < 3; ++step) {
    CAPTURE(step);
    const step_losses got = mine.step(shares[std::size_t(rank)]);
    group.run([&](communicator& comm) {
#if defined(_OPENMP)
      omp_set_num_threads(1);
#endif
      const auto r = std::size_t(comm.rank());
      if (step == 0) threads[r]->distribute(comm);
      thread_losses[r] = threads[r]->step(shares[r]);
    });
    const step_losses& expected = thread_losses[std::size_t(rank)];
    CHECK(got.total == expected.total);
    CHECK(got.grad_norm == expected.grad_norm);
  }
  auto& twin = *threads[std::size_t(rank)];
  CHECK(same_bits(mine.encoder().flat_params(), twin.encoder().flat_params()));
  CHECK(same_bits(mine.optimizer().first_moment(), twin.optimizer().first_moment()));
  CHECK(same_bits(mine.optimizer().second_moment(), twin.optimizer().second_moment()));
  std::printf("rank %d of %d, %s, summed in rank order: %s the bits of ranks as threads\n", rank,
              ranks, Objective::name,
              same_bits(mine.optimizer().second_moment(), twin.optimizer().second_moment())
                  ? "all"
                  : "NOT");
}

images_type batch_of_all_ranks() {
  images_type all(local_batch * std::size_t(world->size()));
  all = uniform(counter_rng(11), all.extents(), -1.0f, 1.0f);
  return all;
}

patch_tokenizer<nano, K> tokenizer_of(const images_type& images) {
  std::array<float, 1> zero{0.0f}, one{1.0f};
  return patch_tokenizer<nano, K>::sample(images, zero, one, 3);
}

TEST_CASE("distributed: SplitMask over W ranks equals one process with the whole batch") {
  const auto all = batch_of_all_ranks();
  check_matches_one_process<splitmask_objective<K, std::ratio<1, 2>, decoder_config<32, 1, 2>>>(
      all, tokenizer_of(all));
}

TEST_CASE("distributed: BEiT over W ranks equals one process with the whole batch") {
  const auto all = batch_of_all_ranks();
  check_matches_one_process<beit_objective<K>>(all, tokenizer_of(all));
}

TEST_CASE("distributed: MAE over W ranks equals one process with the whole batch") {
  check_matches_one_process<mae_objective<std::ratio<3, 4>, decoder_config<32, 1, 2>>>(
      batch_of_all_ranks());
}

TEST_CASE("distributed, bit for bit: MPI summed in rank order gives the bits of thread ranks") {
  const auto all = batch_of_all_ranks();
  const auto tokenizer = tokenizer_of(all);
  check_bits_match_thread_ranks<splitmask_objective<K, std::ratio<1, 2>, decoder_config<32, 1, 2>>>(
      all, tokenizer);
  check_bits_match_thread_ranks<beit_objective<K>>(all, tokenizer);
  check_bits_match_thread_ranks<mae_objective<std::ratio<3, 4>, decoder_config<32, 1, 2>>>(all);
}

TEST_CASE("distributed: a rank's own parameters are replaced by rank 0's") {
  pretrain_options options;
  options.seed = 100 + std::uint64_t(world->rank());  // each rank draws other parameters
  using mae = mae_objective<std::ratio<3, 4>, decoder_config<32, 1, 2>>;
  trainer<mae, nano> t(local_batch, options);
  t.distribute(*world);
  std::vector<float> first(t.encoder().flat_params().data(), t.encoder().flat_params().data() + 8);
  std::vector<float> rank0 = first;
  world->host_broadcast(rank0.data(), rank0.size() * sizeof(float));
  CHECK(first == rank0);
}

}  // namespace

int main(int argc, char** argv) {
  mpi_session mpi(argc, argv);
  mpi_communicator comm;
  world = &comm;
  doctest::Context context(argc, argv);
  const int failed = context.run();
  // Every rank's verdict: one rank's failure fails the job.
  return comm.any(failed != 0) ? 1 : 0;
}
