// The emulated device's cuda_bf16.h (cram/emu/half.hpp): on the include path of emulated builds only.
#pragma once
#include "cram/emu/half.hpp"
