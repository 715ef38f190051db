// The emulated device's mma.h (cram/emu/wmma.hpp): on the include path of emulated builds only.
#pragma once
#include "cram/emu/wmma.hpp"
