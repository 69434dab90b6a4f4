// matmul on the CPU (Eigen) against a naive double product, every transpose combination.
#include <splitmask/splitmask.hpp>

#include "cases/matmul_cases.hpp"

SPLITMASK_GEMM_TEST_CASES(splitmask::device::cpu, "cpu: ")
