// matmul on the CPU (Eigen) against a naive double product, every transpose combination.
#include "cases/matmul_cases.hpp"

#include <splitmask/splitmask.hpp>

SPLITMASK_GEMM_TEST_CASES(splitmask::device::cpu, "cpu: ")
