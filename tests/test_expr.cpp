// Expression templates on the CPU: every op, broadcast and reduction against naive loops.
#include <splitmask/splitmask.hpp>

#include "cases/expr_cases.hpp"

SPLITMASK_EXPR_TEST_CASES(splitmask::device::cpu, "cpu: ")

#if defined(_OPENMP)
#include <omp.h>

TEST_CASE("cpu: results do not depend on the number of threads") {
  using namespace splitmask;
  using E = extents<dynamic, 37, 129>;
  tensor<float, E> x(9), one(9), two(9);
  x = normal<float>(counter_rng(7), x.extents());
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  one = exp(x - row_max(x)) / row_sum(exp(x - row_max(x))) +
        uniform<float>(counter_rng(8), x.extents());
  omp_set_num_threads(2);
  two = exp(x - row_max(x)) / row_sum(exp(x - row_max(x))) +
        uniform<float>(counter_rng(8), x.extents());
  omp_set_num_threads(threads);
  CHECK(std::equal(one.data(), one.data() + one.size(), two.data()));
}
#endif
