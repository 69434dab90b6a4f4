// expect: the mask ratio must lie strictly between 0 and 1
#include <ratio>
#include <splitmask/model/vit_config.hpp>
using bad = splitmask::vit_config<28, 1, 4, 192, 12, 3>::with_mask_ratio<std::ratio<3, 2>>;
constexpr auto n = bad::subset_a;
