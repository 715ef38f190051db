// The two spellings every kernel file uses where nvcc's own syntax cannot compile as plain C++: the kernel
// launch and the declaration of shared memory. Under nvcc they are exactly the CUDA forms; built against the
// emulated device (CRAM_CUDA_EMULATED, cram/emu/), the launch runs the kernel's threads as fibers on the CPU
// and shared memory comes from the emulated block's arena, where the race detector sees it (docs/cuda.md,
// "The emulated device").
//   CRAM_LAUNCH(grid, block, shared_bytes, stream, kernel<Args...>)(arguments...);
//   CRAM_SHARED(type, name);          // __shared__ type name;  (arrays through an alias: using tile = float[8][33])
//   CRAM_DYNAMIC_SHARED(type, name);  // extern __shared__ __align__(128) type name[];
#pragma once

#if defined(CRAM_CUDA_EMULATED)
#include "cram/emu/runtime.hpp"
#define CRAM_LAUNCH(grid, block, shared_bytes, stream, ...) \
    ::cram::emu::launch(#__VA_ARGS__, (grid), (block), (shared_bytes), (stream), __VA_ARGS__)
#define CRAM_SHARED(type, name)                   \
    static const char cram_shared_key_##name = 0; \
    type& name = ::cram::emu::static_shared<type>(&cram_shared_key_##name, #name)
#define CRAM_DYNAMIC_SHARED(type, name) type* const name = ::cram::emu::dynamic_shared<type>(#name)
#else
#define CRAM_LAUNCH(grid, block, shared_bytes, stream, ...) __VA_ARGS__<<<(grid), (block), (shared_bytes), (stream)>>>
#define CRAM_SHARED(type, name) __shared__ type name
#define CRAM_DYNAMIC_SHARED(type, name) extern __shared__ __align__(128) type name[]
#endif
