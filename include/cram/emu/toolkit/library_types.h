// The emulated device's library_types.h: the data-type tags cuBLAS(Lt) take (values as the toolkit's).
#pragma once
#include "cram/emu/library_types.hpp"
