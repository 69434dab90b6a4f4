// The pretrainer's runs for the presets of 28-pixel images (see instances.hpp).
#include "instances.hpp"

SPLITMASK_PRETRAIN_INSTANCES_28()
