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
#include <cstdint>
#include <cstring>

namespace cram {
// Element counts and offsets: signed, 64-bit (crammed BERT's activations pass 2^31 elements).
using index_t = std::ptrdiff_t;

// A float's bit pattern and back, on the host and the device (the 16-bit storage types round through these;
// memcpy is the defined way, and compiles to a register move).
CRAM_HOST_DEVICE std::uint32_t float_bits(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}
CRAM_HOST_DEVICE float float_from_bits(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
}  // namespace cram
