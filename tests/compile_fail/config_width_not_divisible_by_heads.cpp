// expect: the width must be divisible by the number of heads
#include <splitmask/model/vit_config.hpp>
constexpr auto n = splitmask::vit_config<28, 1, 4, 192, 12, 5>::patches;
