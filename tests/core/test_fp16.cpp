// fp16 (IEEE binary16) conversions against hand-derived bit patterns and, where the compiler has it, the
// compiler's own _Float16 conversions (GCC and Clang on x86-64: an implementation written elsewhere).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "cram/core/fp16.hpp"

namespace {

float float_of(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
std::uint16_t to_fp16_bits(float f) { return cram::fp16(f).bits; }

}  // namespace

// Half: 1 sign, 5 exponent (bias 15), 10 mantissa bits. 1.0 = 0x3c00; ulp(1) = 2^-10.
TEST_CASE("fp16 from float: exact values, round to nearest, ties to even") {
    CHECK(to_fp16_bits(1.0f) == 0x3c00);
    CHECK(to_fp16_bits(-2.0f) == 0xc000);
    CHECK(to_fp16_bits(0.0f) == 0x0000);
    CHECK(to_fp16_bits(-0.0f) == 0x8000);
    CHECK(to_fp16_bits(65504.0f) == 0x7bff);                       // the largest finite half
    CHECK(to_fp16_bits(1.0f + 0x1p-11f) == 0x3c00);                // a tie, 0x3c00 even: down
    CHECK(to_fp16_bits(1.0f + 3 * 0x1p-11f) == 0x3c02);            // a tie, 0x3c01 odd: up
    CHECK(to_fp16_bits(1.0f + 0x1p-11f + 0x1p-20f) == 0x3c01);     // above the tie: up
    CHECK(to_fp16_bits(2.0f - 0x1p-12f) == 0x4000);                // rounding carries into the exponent
    CHECK(to_fp16_bits(1.0f / 3.0f) == 0x3555);                    // 0.333251953125
    CHECK(cram::round_to_fp16(0.1f) == 0.0999755859375f);           // 0x2e66
}

TEST_CASE("fp16 from float: overflow to infinity at 65520, NaN kept") {
    CHECK(to_fp16_bits(65519.996f) == 0x7bff);  // below the midpoint to 65536: the largest finite
    CHECK(to_fp16_bits(65520.0f) == 0x7c00);    // the midpoint, 0x7bff odd: up, to infinity
    CHECK(to_fp16_bits(1e6f) == 0x7c00);
    CHECK(to_fp16_bits(-1e6f) == 0xfc00);
    CHECK(to_fp16_bits(INFINITY) == 0x7c00);
    const std::uint16_t nan = to_fp16_bits(float_of(0x7f800001u));  // payload only in low bits: still NaN
    CHECK((nan & 0x7c00) == 0x7c00);
    CHECK((nan & 0x03ff) != 0);
    CHECK(std::isnan(cram::fp16::to_float(nan)));
}

TEST_CASE("fp16 subnormals: 2^-24 units, half a unit and below vanish") {
    CHECK(to_fp16_bits(0x1p-14f) == 0x0400);        // smallest normal
    CHECK(to_fp16_bits(0x1p-24f) == 0x0001);        // smallest subnormal
    CHECK(to_fp16_bits(0x1p-25f) == 0x0000);        // half a unit: a tie, to even (zero)
    CHECK(to_fp16_bits(0x1.8p-25f) == 0x0001);      // three quarters of a unit: up
    CHECK(to_fp16_bits(0x1.8p-24f) == 0x0002);      // 1.5 units: a tie, to even 2
    CHECK(to_fp16_bits(0x1p-30f) == 0x0000);
    CHECK(to_fp16_bits(-0x1p-24f) == 0x8001);
    CHECK(cram::fp16::to_float(0x0001) == 0x1p-24f);
    CHECK(cram::fp16::to_float(0x03ff) == 1023 * 0x1p-24f);  // the largest subnormal
    CHECK(cram::fp16::to_float(0x7bff) == 65504.0f);
}

#if defined(__FLT16_MAX__)
TEST_CASE("fp16 agrees with the compiler's _Float16 on a sweep of float bit patterns and on every half") {
    int mismatches = 0;
    for (std::uint64_t u = 0; u < (1ull << 32); u += 9973) {  // every exponent, many mantissas, both signs
        const float f = float_of(std::uint32_t(u));
        if (std::isnan(f)) continue;
        const _Float16 ref = static_cast<_Float16>(f);
        std::uint16_t ref_bits;
        std::memcpy(&ref_bits, &ref, sizeof ref_bits);
        if (to_fp16_bits(f) != ref_bits && mismatches++ < 5) MESSAGE("float " << f << " (bits " << u << ")");
    }
    for (std::uint32_t h = 0; h < 65536; ++h) {
        const std::uint16_t b = std::uint16_t(h);
        _Float16 x;
        std::memcpy(&x, &b, sizeof x);
        const float ref = static_cast<float>(x), mine = cram::fp16::to_float(b);
        if (std::isnan(ref)) {
            mismatches += !std::isnan(mine);
        } else if (std::memcmp(&ref, &mine, sizeof ref) != 0) {
            ++mismatches;
        }
    }
    CHECK(mismatches == 0);
}
#else
TEST_CASE("fp16 against _Float16: SKIPPED, this compiler has no _Float16") { MESSAGE("SKIPPED: no _Float16"); }
#endif
