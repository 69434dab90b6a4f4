// expect: both subsets must hold at least one patch
#include <ratio>
#include <splitmask/model/vit_config.hpp>
#include <splitmask/train/split_sampler.hpp>
// 4 patches at a mask ratio of 99/100 (an objective's split): N_A = floor(4 / 100) = 0.
using encoder = splitmask::vit_config<8, 1, 4, 16, 1, 2>;
constexpr auto n = splitmask::patch_split<encoder::patches, std::ratio<99, 100>>::kept;
