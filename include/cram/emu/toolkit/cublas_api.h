// The emulated device's cublas_api.h: its status, operation and compute-type enums live with the cuBLASLt
// subset (see cram/emu/cublaslt.hpp).
#pragma once
#include "cram/emu/cublaslt.hpp"
