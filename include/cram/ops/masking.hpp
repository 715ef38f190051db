// MLM masking of CRAMMING.md: exactly round(fraction * seq) positions per sequence, chosen uniformly
// without replacement; of those 80% become [MASK], 10% a uniformly random non-special token, 10% stay.
// mask_sequence is CRAM_HOST_DEVICE: the CUDA kernel (cram/cuda/masking.hpp) runs this very function.
//
// Every draw is addressed in a Philox stream keyed by (seed, global sequence index), so the CPU and the GPU
// produce the same masks, and a resumed run masks exactly as an uninterrupted one. Contract of mask_batch:
// ids[batch*seq] (overwritten), positions and targets [batch*k] with k = masked_per_sequence(seq, fraction);
// positions are flat row indices b*seq + s, ascending within each sequence.
#pragma once

#include <cstdint>

#include "cram/core/error.hpp"
#include "cram/core/platform.hpp"
#include "cram/core/rng.hpp"

namespace cram::ops {

using cram::index_t;

// The longest sequence mask_sequence handles (its permutation lives on the stack).
inline constexpr int max_masking_seq = 512;

struct masking_options {
    float mask_fraction = 0.25f;
    float replace_with_mask = 0.8f;    // share of chosen positions that become [MASK]
    float replace_with_random = 0.1f;  // share that become a random token (the rest keep theirs)
    std::int32_t mask_id = 4;
    std::int32_t vocab = 32768;
    std::int32_t random_low = 5;  // random replacements are drawn from [random_low, vocab): no specials
};

// ---- shared scalar rules ----------------------------------------------------------------------------
CRAM_HOST_DEVICE int masked_per_sequence(int seq, float fraction) {
    // round half away from zero, as round() does; computed without <cmath> so it runs on the device
    const float x = fraction * static_cast<float>(seq);
    return static_cast<int>(x + 0.5f);
}

// Masks one sequence. positions_out gets k ascending in-sequence positions; targets_out the original ids.
// Draws: k for the partial Fisher-Yates shuffle, then two per chosen position (kind, random id), each at a
// fixed index of the stream, so the result does not depend on evaluation order.
CRAM_HOST_DEVICE void mask_sequence(const std::int32_t* tokens, int seq, const masking_options& opt,
                                    std::uint64_t seed, std::uint64_t sequence_index, std::int32_t* ids_out,
                                    std::int32_t* positions_out, std::int32_t* targets_out) {
    const philox_stream rng(seed, static_cast<std::uint32_t>(sequence_index),
                            static_cast<std::uint32_t>(sequence_index >> 32));
    const int k = masked_per_sequence(seq, opt.mask_fraction);
    std::uint16_t perm[max_masking_seq];
    for (int i = 0; i < seq; ++i) {
        perm[i] = static_cast<std::uint16_t>(i);
        ids_out[i] = tokens[i];
    }
    for (int i = 0; i < k; ++i) {
        const std::uint32_t r = rng.at(static_cast<std::uint32_t>(i));
        const int j = i + static_cast<int>((static_cast<std::uint64_t>(r) * static_cast<std::uint32_t>(seq - i)) >> 32);
        const std::uint16_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    // insertion sort of the k chosen positions (k <= 128 in practice; no <algorithm> on the device)
    for (int i = 1; i < k; ++i) {
        const std::uint16_t v = perm[i];
        int j = i - 1;
        while (j >= 0 && perm[j] > v) {
            perm[j + 1] = perm[j];
            --j;
        }
        perm[j + 1] = v;
    }
    const std::uint32_t span = static_cast<std::uint32_t>(opt.vocab - opt.random_low);
    for (int i = 0; i < k; ++i) {
        const int pos = perm[i];
        positions_out[i] = pos;
        targets_out[i] = tokens[pos];
        const std::uint32_t kind_bits = rng.at(static_cast<std::uint32_t>(k + 2 * i));
        const float u = static_cast<float>(kind_bits >> 8) * (1.0f / 16777216.0f);
        if (u < opt.replace_with_mask) {
            ids_out[pos] = opt.mask_id;
        } else if (u < opt.replace_with_mask + opt.replace_with_random) {
            const std::uint32_t r = rng.at(static_cast<std::uint32_t>(k + 2 * i + 1));
            ids_out[pos] = opt.random_low +
                           static_cast<std::int32_t>((static_cast<std::uint64_t>(r) * span) >> 32);
        }
    }
}

// What both backends' mask_batch check before masking anything (host side). The throwing half is out of
// line and [[noreturn]], so that the check itself inlines and the compiler sees that an invalid seq never
// reaches mask_sequence's fixed-size permutation.
[[noreturn]] inline void throw_masking_error(int seq, const masking_options& opt) {
    CRAM_CHECK(seq > 0 && seq <= max_masking_seq, "sequence length ", seq, " outside [1, ", max_masking_seq, "]");
    CRAM_CHECK(opt.random_low >= 0 && opt.random_low < opt.vocab, "masking random_low ", opt.random_low,
               " must be below vocab ", opt.vocab);
    CRAM_THROW("invalid masking arguments");  // not reached: one of the checks above fails
}
inline void check_masking(int seq, const masking_options& opt) {
    if (!(seq > 0 && seq <= max_masking_seq && opt.random_low >= 0 && opt.random_low < opt.vocab))
        throw_masking_error(seq, opt);
}

// ---- CPU implementation -----------------------------------------------------------------------------
// Masks `batch` packed sequences tokens[batch*seq] whose global indices start at first_sequence.
inline void mask_batch(const std::int32_t* tokens, int batch, int seq, const masking_options& opt,
                       std::uint64_t seed, std::uint64_t first_sequence, std::int32_t* ids, std::int32_t* positions,
                       std::int32_t* targets) {
    check_masking(seq, opt);
    const int k = masked_per_sequence(seq, opt.mask_fraction);
    for (int b = 0; b < batch; ++b) {
        std::int32_t* pos = positions + static_cast<index_t>(b) * k;
        mask_sequence(tokens + static_cast<index_t>(b) * seq, seq, opt, seed,
                      first_sequence + static_cast<std::uint64_t>(b), ids + static_cast<index_t>(b) * seq, pos,
                      targets + static_cast<index_t>(b) * k);
        for (int i = 0; i < k; ++i) pos[i] += b * seq;  // to flat row indices
    }
}

}  // namespace cram::ops
