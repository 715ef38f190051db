// What the trainer tests share: a small model's token source with something to learn, and a budget clock
// that advances by a fixed step per micro-step, so runs (and interrupted, resumed runs) are reproducible.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "cram/model/presets.hpp"
#include "cram/train/batch_source.hpp"
#include "cram/train/budget.hpp"

namespace cram::test {

// The model the trainer tests train: vocabulary 23, sequences of 8.
inline constexpr bert_config small_model = presets::test_pre_glu;

// `sequences` of a noisy repeating pattern (a linear congruential stream from `seed` picks the noise).
inline train::memory_source pattern_source(std::uint32_t seed, int sequences = 64) {
    std::vector<std::int32_t> toks;
    std::uint32_t s = seed;
    for (int i = 0; i < sequences * small_model.max_seq; ++i) {
        s = s * 1664525u + 1013904223u;
        toks.push_back((s >> 28) < 3 ? 5 + std::int32_t((s >> 16) % 18) : 5 + (i % 7) * 2);
    }
    ops::masking_options m;
    m.vocab = small_model.vocab;
    m.mask_id = 4;
    m.random_low = 5;
    return train::memory_source(std::move(toks), small_model.max_seq, m);
}

// 0.25 s of budget per micro-step (tick() from an after_micro_step observer): exact in binary, so elapsed
// times add up identically in every run.
struct step_clock {
    double t = 0;
    train::time_source source() {
        return [this] { return t; };
    }
    void tick() { t += 0.25; }
};

}  // namespace cram::test
