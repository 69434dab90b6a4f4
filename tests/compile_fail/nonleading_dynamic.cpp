// expect: only the leading extent \(the batch\) may be `dynamic`
#include <splitmask/core/extents.hpp>
splitmask::extents<3, splitmask::dynamic> e;
