// bfloat16 as a plain 16-bit storage type, usable without CUDA headers: the CPU side reads and
// writes the same bits the GPU kernels use (checkpoints, parity tests). Arithmetic is done in fp32.
#pragma once

#include <cstdint>

#include "cram/core/platform.hpp"

namespace cram {

struct bf16 {
    std::uint16_t bits = 0;

    bf16() = default;
    CRAM_HOST_DEVICE explicit bf16(float f) : bits(from_float(f)) {}
    CRAM_HOST_DEVICE explicit operator float() const { return to_float(bits); }

    CRAM_HOST_DEVICE static std::uint16_t from_float(float f) {
        std::uint32_t u = float_bits(f);
        if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);  // quiet NaN
        // round to nearest, ties to even: add 0x7fff plus the lowest kept bit
        u += 0x7fffu + ((u >> 16) & 1u);
        return static_cast<std::uint16_t>(u >> 16);
    }
    CRAM_HOST_DEVICE static float to_float(std::uint16_t b) {
        return float_from_bits(static_cast<std::uint32_t>(b) << 16);
    }
};
static_assert(sizeof(bf16) == 2, "bf16 must be exactly 16 bits for checkpoint and device layouts");

// Rounds through bf16 and back: what a value looks like after a trip through device storage.
CRAM_HOST_DEVICE float round_to_bf16(float f) { return static_cast<float>(bf16(f)); }

}  // namespace cram
