// Portability macros: the same header compiles under a plain C++ compiler and under nvcc.
// CRAM_HOST_DEVICE marks functions shared by CPU oracle and CUDA kernels (the RNG, bf16).
#pragma once

#if defined(__CUDACC__)
#define CRAM_HOST_DEVICE __host__ __device__ inline
#define CRAM_DEVICE __device__ inline
#else
#define CRAM_HOST_DEVICE inline
#define CRAM_DEVICE inline
#endif

#include <cstddef>

namespace cram {
// Element counts and offsets: signed, 64-bit (crammed BERT's activations pass 2^31 elements).
using index_t = std::ptrdiff_t;
}  // namespace cram
