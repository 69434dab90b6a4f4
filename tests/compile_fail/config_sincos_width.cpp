// expect: sin-cos positional embedding needs a width divisible by 4
#include <splitmask/model/vit_config.hpp>
constexpr auto n = splitmask::vit_config<28, 1, 4, 18, 2, 3>::patches;
