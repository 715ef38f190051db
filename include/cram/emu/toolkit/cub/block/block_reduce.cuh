// The emulated device's cub/block/block_reduce.cuh (cram/emu/cub.hpp): on the include path of emulated builds only.
#pragma once
#include "cram/emu/cub.hpp"
