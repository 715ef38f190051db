// The emulated device's cuda_fp16.h (cram/emu/half.hpp): on the include path of emulated builds only.
#pragma once
#include "cram/emu/half.hpp"
