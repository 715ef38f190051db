// The emulated device's cublasLt.h (see cram/emu/cublaslt.hpp).
#pragma once
#include "cram/emu/cublaslt.hpp"
