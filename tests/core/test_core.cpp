// Core layer against published or hand-derived answers: Philox4x32-10 known-answer vectors from
// Random123's kat_vectors file, bf16 round-to-nearest-even conversion against bit patterns worked
// out by hand, and errors that carry the file:line that raised them.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "cram/core/bf16.hpp"
#include "cram/core/error.hpp"
#include "cram/core/rng.hpp"
#include "test_support.hpp"

namespace {

std::uint32_t bits_of(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}
float float_of(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}
std::uint16_t to_bf16_bits(std::uint32_t float_bits) { return cram::bf16(float_of(float_bits)).bits; }

}  // namespace

// ---- Philox ---------------------------------------------------------------------------------------
// Random123 (D. E. Shaw Research), examples/kat_vectors, the three "philox4x32 10" lines:
//   counter[4] key[2] -> output[4]
TEST_CASE("philox4x32_10 reproduces Random123's published known-answer vectors") {
    struct kat {
        std::uint32_t ctr[4], key[2], out[4];
    };
    const kat vectors[] = {
        {{0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u},
         {0x00000000u, 0x00000000u},
         {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
        {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
         {0xffffffffu, 0xffffffffu},
         {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
        {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},  // the digits of pi
         {0xa4093822u, 0x299f31d0u},
         {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
    };
    for (const auto& v : vectors) {
        const auto r = cram::philox4x32_10(v.ctr[0], v.ctr[1], v.ctr[2], v.ctr[3], v.key[0], v.key[1]);
        CAPTURE(v.ctr[0]);
        for (int i = 0; i < 4; ++i) {
            CAPTURE(i);
            CHECK(r.v[i] == v.out[i]);
        }
    }
}

TEST_CASE("philox_stream addresses draw i as word i%4 of block i/4 under (seed, stream, substream)") {
    // The all-zero KAT through the stream interface: seed 0, stream 0, substream 0, draws 0..3.
    cram::philox_stream zero(0, 0, 0);
    CHECK(zero.at(0) == 0x6627e8d5u);
    CHECK(zero.at(1) == 0xe169c58du);
    CHECK(zero.at(2) == 0xbc57ac4cu);
    CHECK(zero.at(3) == 0x9b00dbd8u);
    // next() walks the same sequence, and the seed's halves are the key words (low word first).
    const std::uint64_t seed = 0x299f31d0a4093822ull;
    cram::philox_stream s(seed, 0x13198a2eu, 0x03707344u);
    for (std::uint32_t i = 0; i < 12; ++i) {
        const auto r = cram::philox4x32_10(i / 4, 0, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
        CHECK(s.next() == r.v[i % 4]);
    }
    CHECK(s.position() == 12);
    // Different streams and substreams do not share draws.
    CHECK(cram::philox_stream(seed, 1, 0).at(0) != cram::philox_stream(seed, 0, 1).at(0));
    CHECK(cram::philox_stream(seed, 1, 0).at(0) != cram::philox_stream(seed + 1, 1, 0).at(0));
}

TEST_CASE("philox_stream uniform and bounded draws stay in range and are unbiased") {
    cram::philox_stream s(42, 3, 0);
    double sum = 0;
    const int n = 200000;
    int hist[10] = {};
    for (int i = 0; i < n; ++i) {
        const float u = s.next_uniform();
        REQUIRE(u >= 0.0f);
        REQUIRE(u < 1.0f);
        sum += u;
        const std::uint32_t k = s.next_below(10);
        REQUIRE(k < 10u);
        ++hist[k];
    }
    CHECK(std::abs(sum / n - 0.5) < 5 * std::sqrt(1.0 / 12.0 / n));
    double chi2 = 0;
    for (int h : hist) chi2 += (h - n / 10.0) * (h - n / 10.0) / (n / 10.0);
    CHECK(chi2 < 30.0);  // 9 degrees of freedom: P(chi2 > 30) ~ 4e-4
}

// ---- bf16 -----------------------------------------------------------------------------------------
// Expected bit patterns derived by hand: bf16 keeps the top 16 bits of the fp32 pattern; the dropped
// 16 bits decide the rounding (> 0x8000 up, < 0x8000 down, == 0x8000 to the even neighbour).
TEST_CASE("bf16 from float: exact values, round to nearest, ties to even") {
    CHECK(to_bf16_bits(0x3f800000u) == 0x3f80);  // 1.0 exact
    CHECK(to_bf16_bits(0xc0000000u) == 0xc000);  // -2.0 exact
    CHECK(to_bf16_bits(0x00000000u) == 0x0000);  // +0
    CHECK(to_bf16_bits(0x80000000u) == 0x8000);  // -0 keeps its sign
    CHECK(to_bf16_bits(0x3f807fffu) == 0x3f80);  // just below half an ulp: down
    CHECK(to_bf16_bits(0x3f808001u) == 0x3f81);  // just above half an ulp: up
    CHECK(to_bf16_bits(0x3f808000u) == 0x3f80);  // tie, 0x3f80 is even: down
    CHECK(to_bf16_bits(0x3f818000u) == 0x3f82);  // tie, 0x3f81 is odd: up to 0x3f82
    CHECK(to_bf16_bits(0xbf808000u) == 0xbf80);  // negative tie: magnitude to even
    CHECK(to_bf16_bits(0xbf818000u) == 0xbf82);
    CHECK(to_bf16_bits(0x3fffffffu) == 0x4000);  // rounding carries into the exponent
    CHECK(to_bf16_bits(bits_of(3.14159265f)) == 0x4049);  // pi = 0x40490fdb: low half 0x0fdb, down
    CHECK(to_bf16_bits(bits_of(1.0f / 3.0f)) == 0x3eab);  // 1/3 = 0x3eaaaaab: low half 0xaaab, up
}

TEST_CASE("bf16 from float: infinities, overflow, NaN") {
    CHECK(to_bf16_bits(0x7f800000u) == 0x7f80);  // +inf
    CHECK(to_bf16_bits(0xff800000u) == 0xff80);  // -inf
    CHECK(to_bf16_bits(0x7f7fffffu) == 0x7f80);  // FLT_MAX is past bf16's overflow threshold: +inf
    CHECK(to_bf16_bits(0x7f7f8000u) == 0x7f80);  // the threshold itself is a tie to even: +inf
    CHECK(to_bf16_bits(0x7f7f7fffu) == 0x7f7f);  // just below it: the largest finite bf16
    CHECK(to_bf16_bits(0xff7fffffu) == 0xff80);  // -FLT_MAX: -inf
    // NaN stays NaN, including payloads only in the low 16 bits (truncation would give infinity),
    // and keeps its sign.
    for (const std::uint32_t nan : {0x7fc00000u, 0x7f800001u, 0x7f80ffffu, 0x7fffffffu, 0xffc00000u, 0xff800001u}) {
        CAPTURE(nan);
        const std::uint16_t b = to_bf16_bits(nan);
        CHECK((b & 0x7f80) == 0x7f80);
        CHECK((b & 0x007f) != 0);
        CHECK((b & 0x8000) == ((nan >> 16) & 0x8000));
        CHECK(std::isnan(cram::bf16::to_float(b)));
    }
}

TEST_CASE("bf16 from float: subnormals round like everything else") {
    CHECK(to_bf16_bits(0x00000001u) == 0x0000);  // smallest fp32 subnormal: down to +0
    CHECK(to_bf16_bits(0x80000001u) == 0x8000);  // to -0
    CHECK(to_bf16_bits(0x00010000u) == 0x0001);  // smallest bf16 subnormal, exact
    CHECK(to_bf16_bits(0x00008000u) == 0x0000);  // tie between 0 and 0x0001: even (0)
    CHECK(to_bf16_bits(0x00018000u) == 0x0002);  // tie between 0x0001 and 0x0002: even
    CHECK(to_bf16_bits(0x00018001u) == 0x0002);
    CHECK(to_bf16_bits(0x007fffffu) == 0x0080);  // largest fp32 subnormal rounds up to the smallest normal
    CHECK(to_bf16_bits(0x007f7fffu) == 0x007f);  // largest bf16 subnormal
}

TEST_CASE("bf16 to float and round trips") {
    CHECK(cram::bf16::to_float(0x3f80) == 1.0f);
    CHECK(cram::bf16::to_float(0x4049) == 3.140625f);
    CHECK(cram::bf16::to_float(0xc000) == -2.0f);
    CHECK(cram::bf16::to_float(0x0001) == std::ldexp(1.0f, -133));  // smallest bf16 subnormal
    CHECK(cram::bf16::to_float(0x7f7f) == std::ldexp(255.0f, 120));  // largest finite: (2 - 2^-7) * 2^127
    CHECK(std::isinf(cram::bf16::to_float(0x7f80)));
    CHECK(cram::round_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 1.0f);  // the tie above
    CHECK(cram::round_to_bf16(0.1f) == cram::bf16::to_float(0x3dcd));  // 0.1f = 0x3dcccccd: up
    // Every finite bf16 value converts to float and back unchanged.
    for (std::uint32_t b = 0; b < 0x10000u; ++b) {
        const auto h = static_cast<std::uint16_t>(b);
        const float f = cram::bf16::to_float(h);
        if (std::isnan(f)) continue;
        REQUIRE(cram::bf16(f).bits == h);
    }
}

// ---- errors ---------------------------------------------------------------------------------------
TEST_CASE("CRAM_CHECK and CRAM_THROW: the user's message as what(), the file:line apart") {
    int line = 0;
    try {
        const int width = 7;
        line = __LINE__ + 1;
        CRAM_CHECK(width % 2 == 0, "width ", width, " must be even");
        FAIL("CRAM_CHECK did not throw");
    } catch (const cram::error& e) {
        const std::string what = e.what();
        CHECK(what == "width 7 must be even");  // no C++ expression, no source location: users read this
        CHECK(e.where() == std::string(__FILE__) + ":" + std::to_string(line));
        CHECK(e.line() == line);
        CHECK(std::string(e.file()) == __FILE__);
    }
    try {
        line = __LINE__ + 1;
        CRAM_THROW("bad value ", 2.5, " in ", std::string("x"));
    } catch (const cram::error& e) {
        const std::string what = e.what();
        CHECK(what == "bad value 2.5 in x");
        CHECK(e.line() == line);
    }
    CHECK_NOTHROW(CRAM_CHECK(1 + 1 == 2, "never"));
    // cram::error is a std::runtime_error, so generic handlers catch it.
    CHECK_THROWS_AS(CRAM_THROW("x"), std::runtime_error);
}
