// expect: the image size must be a multiple of the patch size
#include <splitmask/model/vit_config.hpp>
constexpr auto n = splitmask::vit_config<30, 1, 4, 192, 12, 3>::patches;
