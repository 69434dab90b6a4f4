// expect: the mask ratio must lie strictly between 0 and 1
#include <ratio>
#include <splitmask/model/vit_config.hpp>
#include <splitmask/train/split_sampler.hpp>
using encoder = splitmask::vit_config<28, 1, 4, 192, 12, 3>;
constexpr auto n = splitmask::patch_split<encoder::patches, std::ratio<3, 2>>::kept;
