// The emulated device's cuda_runtime_api.h (cram/emu/cuda_runtime.hpp): on the include path of emulated builds only.
#pragma once
#include "cram/emu/cuda_runtime.hpp"
