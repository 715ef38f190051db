// IEEE 754 binary16 (fp16, "half") as a plain 16-bit storage type, usable without CUDA headers, the twin of
// bf16.hpp: 1 sign, 5 exponent and 10 mantissa bits; largest finite 65504, smallest normal 2^-14, smallest
// subnormal 2^-24. Conversions round to nearest, ties to even, as the GPU's do: values from 65520 up become
// infinity (the overflow dynamic loss scaling watches for), values below 2^-25 become zero (the underflow it
// prevents). Arithmetic is done in fp32.
#pragma once

#include <cstdint>

#include "cram/core/platform.hpp"

namespace cram {

struct fp16 {
    std::uint16_t bits = 0;

    fp16() = default;
    CRAM_HOST_DEVICE explicit fp16(float f) : bits(from_float(f)) {}
    CRAM_HOST_DEVICE explicit operator float() const { return to_float(bits); }

    static constexpr float max_finite = 65504.0f;

    CRAM_HOST_DEVICE static std::uint16_t from_float(float f) {
        const std::uint32_t x = float_bits(f);
        const std::uint32_t sign = (x >> 16) & 0x8000u;
        const std::uint32_t a = x & 0x7fffffffu;
        if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // quiet NaN
        if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520: infinity
        const std::uint32_t e = a >> 23;  // the float's biased exponent
        if (e >= 113) {                   // a normal half (2^-14 and up): rebias, keep 10 mantissa bits
            std::uint32_t h = ((e - 112) << 10) | ((a >> 13) & 0x3ffu);
            const std::uint32_t rest = a & 0x1fffu;
            if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right
            return static_cast<std::uint16_t>(sign | h);
        }
        // a subnormal half: the value in units of 2^-24 is m 2^(e - 126), m with its implicit bit
        const std::uint32_t shift = 126 - e;
        if (shift > 24) return static_cast<std::uint16_t>(sign);  // below half a unit: zero
        const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
        std::uint32_t h = m >> shift;
        const std::uint32_t rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rest > half || (rest == half && (h & 1u))) ++h;  // 0x400 is the smallest normal: still right
        return static_cast<std::uint16_t>(sign | h);
    }

    CRAM_HOST_DEVICE static float to_float(std::uint16_t h) {
        const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
        const std::uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
        if (e == 0x1f) return float_from_bits(sign | 0x7f800000u | (m << 13));  // infinity, NaN
        if (e == 0) {                                                          // zero, subnormal: m 2^-24
            const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
            return sign ? -v : v;
        }
        return float_from_bits(sign | ((e + 112) << 23) | (m << 13));
    }
};
static_assert(sizeof(fp16) == 2, "fp16 must be exactly 16 bits for checkpoint and device layouts");

// Rounds through fp16 and back: what a value looks like after a trip through fp16 storage.
CRAM_HOST_DEVICE float round_to_fp16(float f) { return static_cast<float>(fp16(f)); }

}  // namespace cram
