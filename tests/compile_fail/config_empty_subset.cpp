// expect: both subsets must hold at least one patch
#include <ratio>
#include <splitmask/model/vit_config.hpp>
// 4 patches at a mask ratio of 99/100: N_A = floor(4 / 100) = 0.
using bad = splitmask::vit_config<8, 1, 4, 16, 1, 2>::with_mask_ratio<std::ratio<99, 100>>;
constexpr auto n = bad::subset_a;
