// Counter-based RNG (Philox4x32-10, Salmon et al. 2011): a pure function of (key, counter), so the
// CPU oracle and a CUDA kernel that ask for the same counter get the same bits. Masking and dropout
// derive every random number from (seed, step, sequence, position) and never carry hidden state.
#pragma once

#include <array>
#include <cstdint>

#include "cram/core/platform.hpp"

namespace cram {

struct philox_result {
    std::uint32_t v[4];
};

CRAM_HOST_DEVICE std::uint32_t mulhi32(std::uint32_t a, std::uint32_t b) {
    return static_cast<std::uint32_t>((static_cast<std::uint64_t>(a) * b) >> 32);
}

// Ten rounds of Philox4x32 on a 128-bit counter with a 64-bit key.
CRAM_HOST_DEVICE philox_result philox4x32_10(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2,
                                             std::uint32_t c3, std::uint32_t k0, std::uint32_t k1) {
    constexpr std::uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
    constexpr std::uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k0 += w0;
            k1 += w1;
        }
        const std::uint32_t hi0 = mulhi32(m0, c0), lo0 = m0 * c0;
        const std::uint32_t hi1 = mulhi32(m1, c2), lo1 = m1 * c2;
        const std::uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    return {{c0, c1, c2, c3}};
}

// A stream of random numbers addressed by (seed, stream id, sub-stream id): the i-th draw of a
// stream is block i/4, word i%4. Copying a stream is free, and two streams never overlap.
class philox_stream {
public:
    CRAM_HOST_DEVICE philox_stream(std::uint64_t seed, std::uint32_t stream, std::uint32_t substream)
        : k0_(static_cast<std::uint32_t>(seed)), k1_(static_cast<std::uint32_t>(seed >> 32)),
          stream_(stream), substream_(substream) {}

    CRAM_HOST_DEVICE std::uint32_t at(std::uint32_t i) const {
        const philox_result r = philox4x32_10(i >> 2, 0u, stream_, substream_, k0_, k1_);
        return r.v[i & 3u];
    }
    CRAM_HOST_DEVICE std::uint32_t next() { return at(index_++); }
    // Uniform in [0, 1) with 24 random bits (exact in fp32).
    CRAM_HOST_DEVICE float next_uniform() { return static_cast<float>(next() >> 8) * (1.0f / 16777216.0f); }
    // Uniform integer in [0, n) by the multiply-shift map (bias below 2^-32 * n, irrelevant here).
    CRAM_HOST_DEVICE std::uint32_t next_below(std::uint32_t n) {
        return static_cast<std::uint32_t>((static_cast<std::uint64_t>(next()) * n) >> 32);
    }
    CRAM_HOST_DEVICE std::uint32_t position() const { return index_; }

private:
    std::uint32_t k0_, k1_, stream_, substream_;
    std::uint32_t index_ = 0;
};

}  // namespace cram
