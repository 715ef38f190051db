// cram/ops/masking.hpp: MLM masking (CRAMMING.md: exactly round(0.25 S) positions per sequence, 80% [MASK],
// 10% random non-special token, 10% unchanged), tested statistically over many sequences, and its
// determinism: the same (seed, global sequence index) gives the same mask wherever the sequence sits.
#include <cmath>
#include <cstdint>
#include <vector>

#include "cram/core/rng.hpp"
#include "cram/cpu/backend.hpp"
#include "cram/model/masking.hpp"
#include "cram/ops/masking.hpp"
#include "test_support.hpp"

namespace {

// Original tokens never use the special ids [0, 5), so [MASK] (4) in the output means "masked".
std::vector<std::int32_t> random_tokens(int batch, int seq, std::int32_t vocab, std::uint64_t seed) {
    std::vector<std::int32_t> t(std::size_t(batch) * seq);
    cram::philox_stream rng(seed, 99, 0);
    for (auto& x : t) x = 5 + std::int32_t(rng.next_below(std::uint32_t(vocab - 5)));
    return t;
}

}  // namespace

TEST_CASE("masked_per_sequence rounds fraction * seq half away from zero") {
    CHECK(cram::masked_per_sequence(128, 0.25f) == 32);
    CHECK(cram::masked_per_sequence(100, 0.25f) == 25);
    CHECK(cram::masked_per_sequence(7, 0.25f) == 2);   // 1.75
    CHECK(cram::masked_per_sequence(9, 0.25f) == 2);   // 2.25
    CHECK(cram::masked_per_sequence(10, 0.25f) == 3);  // 2.5
    CHECK(cram::masked_per_sequence(128, 0.15f) == 19);  // 19.2
    CHECK(cram::masked_per_sequence(2, 0.25f) == 1);   // 0.5
}

TEST_CASE("masking: counts, order, targets, untouched positions, for several lengths") {
    cram::masking_options opt;
    for (const int seq : {128, 100, 10, 7, 1}) {
        CAPTURE(seq);
        const int batch = 40, k = int(std::lround(0.25 * seq + 1e-9));
        const auto tokens = random_tokens(batch, seq, opt.vocab, 5);
        const auto mb = cram::mask_batch(tokens.data(), batch, seq, opt, 77, 1000);
        REQUIRE(mb.masked_positions.size() == std::size_t(batch * k));
        REQUIRE(mb.masked_targets.size() == std::size_t(batch * k));
        REQUIRE(mb.ids.size() == tokens.size());
        CHECK(mb.view().num_masked == batch * k);
        for (int b = 0; b < batch; ++b) {
            std::vector<bool> chosen(std::size_t(seq), false);
            for (int i = 0; i < k; ++i) {
                const std::int32_t flat = mb.masked_positions[std::size_t(b * k + i)];
                REQUIRE(flat >= b * seq);
                REQUIRE(flat < (b + 1) * seq);  // flat row index inside its own sequence
                if (i > 0) CHECK(flat > mb.masked_positions[std::size_t(b * k + i - 1)]);  // ascending, distinct
                chosen[std::size_t(flat - b * seq)] = true;
                CHECK(mb.masked_targets[std::size_t(b * k + i)] == tokens[std::size_t(flat)]);
            }
            for (int s = 0; s < seq; ++s)
                if (!chosen[std::size_t(s)])
                    CHECK(mb.ids[std::size_t(b * seq + s)] == tokens[std::size_t(b * seq + s)]);
        }
    }
}

TEST_CASE("masking statistics: uniform positions, 80/10/10 split, random ids never special") {
    cram::masking_options opt;  // vocab 32768, [MASK] = 4, random ids from [5, vocab)
    const int seq = 128, batch = 20000, k = 32;
    const auto tokens = random_tokens(batch, seq, opt.vocab, 11);
    const auto mb = cram::mask_batch(tokens.data(), batch, seq, opt, 2023, 0);
    std::vector<long> per_position(seq, 0);
    long n_mask = 0, n_random = 0, n_same = 0;
    for (int i = 0; i < batch * k; ++i) {
        const std::int32_t flat = mb.masked_positions[std::size_t(i)];
        ++per_position[std::size_t(flat % seq)];
        const std::int32_t out = mb.ids[std::size_t(flat)], orig = tokens[std::size_t(flat)];
        if (out == opt.mask_id) {
            ++n_mask;
        } else if (out != orig) {
            ++n_random;
            REQUIRE(out >= opt.random_low);  // never [PAD] [UNK] [CLS] [SEP] [MASK]
            REQUIRE(out < opt.vocab);
        } else {
            ++n_same;  // includes random draws that hit the original token (p = 1/32763)
        }
    }
    // Each position is chosen with probability k/S = 1/4 in every sequence, independently across
    // sequences: chi-square with the Bernoulli variance, S - 1 = 127 degrees of freedom (mean 127,
    // sd ~16); 127 + 6 sd ~ 223.
    const double p = double(k) / seq, expect = batch * p, var = batch * p * (1 - p);
    double chi2 = 0;
    for (long c : per_position) chi2 += (double(c) - expect) * (double(c) - expect) / var;
    CHECK(chi2 < 223.0);
    CHECK(chi2 > 60.0);  // too perfect would be suspicious too (P(chi2_127 < 60) ~ 1e-8)
    // 80/10/10 within 5 binomial standard deviations of n = 640000 draws
    const double n = double(batch) * k;
    auto within = [&](long count, double q) { return std::abs(double(count) / n - q) < 5 * std::sqrt(q * (1 - q) / n); };
    CHECK(within(n_mask, 0.8));
    CHECK(within(n_random, 0.1));
    CHECK(within(n_same, 0.1));
}

TEST_CASE("masking statistics: random replacements are uniform over the non-special ids") {
    cram::masking_options opt;
    opt.vocab = 21;  // random ids from [5, 21): 16 values
    opt.replace_with_mask = 0.0f;
    opt.replace_with_random = 1.0f;  // every chosen position gets a random id
    const int seq = 64, batch = 5000, k = 16;
    const auto tokens = random_tokens(batch, seq, opt.vocab, 3);
    const auto mb = cram::mask_batch(tokens.data(), batch, seq, opt, 8, 0);
    std::vector<long> hist(std::size_t(opt.vocab), 0);
    for (int i = 0; i < batch * k; ++i) ++hist[std::size_t(mb.ids[std::size_t(mb.masked_positions[std::size_t(i)])])];
    for (int id = 0; id < 5; ++id) CHECK(hist[std::size_t(id)] == 0);
    const double expect = double(batch) * k / 16;
    double chi2 = 0;
    for (int id = 5; id < 21; ++id) chi2 += (hist[std::size_t(id)] - expect) * (hist[std::size_t(id)] - expect) / expect;
    CHECK(chi2 < 45.0);  // 15 dof: mean 15, sd 5.5
}

TEST_CASE("masking is a function of (seed, global sequence index)") {
    cram::masking_options opt;
    const int seq = 128;
    const auto tokens = random_tokens(4, seq, opt.vocab, 21);
    const auto a = cram::mask_batch(tokens.data(), 4, seq, opt, 99, 500);  // sequences 500..503
    // sequence 502 alone (the third row of a) masks identically
    const auto b = cram::mask_batch(tokens.data() + 2 * seq, 1, seq, opt, 99, 502);
    for (int i = 0; i < 32; ++i) {
        CHECK(b.masked_positions[std::size_t(i)] + 2 * seq == a.masked_positions[std::size_t(64 + i)]);
        CHECK(b.masked_targets[std::size_t(i)] == a.masked_targets[std::size_t(64 + i)]);
    }
    for (int s = 0; s < seq; ++s) CHECK(b.ids[std::size_t(s)] == a.ids[std::size_t(2 * seq + s)]);
    // the same tokens under another index, another seed, or an index 2^32 apart mask differently
    auto positions = [&](std::uint64_t seed, std::uint64_t index) {
        const auto m = cram::mask_batch(tokens.data(), 1, seq, opt, seed, index);
        return m.masked_positions;
    };
    const auto base = positions(99, 500);
    CHECK(base == positions(99, 500));
    CHECK(base != positions(99, 501));
    CHECK(base != positions(100, 500));
    CHECK(base != positions(99, 500 + (std::uint64_t(1) << 32)));
    // mask_sequence (the function a CUDA kernel runs) agrees with mask_batch
    std::vector<std::int32_t> ids(seq), pos(32), tg(32);
    cram::mask_sequence(tokens.data() + seq, seq, opt, 99, 501, ids.data(), pos.data(), tg.data());
    for (int i = 0; i < 32; ++i) CHECK(pos[std::size_t(i)] + seq == a.masked_positions[std::size_t(32 + i)]);
}

TEST_CASE("mask_batch rejects impossible inputs with a message") {
    cram::masking_options opt;
    const std::vector<std::int32_t> t(600, 7);
    CHECK_THROWS_AS(cram::mask_batch(t.data(), 1, 600, opt, 1, 0), cram::error);  // longer than 512
    opt.random_low = opt.vocab;
    CHECK_THROWS_AS(cram::mask_batch(t.data(), 1, 16, opt, 1, 0), cram::error);
}

TEST_CASE("ops::mask_batch, the CPU backend's mask_batch and the host helper agree") {
    // The op writes into caller memory (what a backend's mask_batch does); cram::mask_batch wraps it for the host.
    cram::ops::masking_options opt;
    const int batch = 5, seq = 37, k = cram::ops::masked_per_sequence(seq, opt.mask_fraction);
    const auto tokens = random_tokens(batch, seq, opt.vocab, 4);
    const auto ref = cram::mask_batch(tokens.data(), batch, seq, opt, 31, 12345);
    std::vector<std::int32_t> ids(std::size_t(batch) * seq, -1), pos(std::size_t(batch) * k, -1), tg(pos.size(), -1);
    cram::ops::mask_batch(tokens.data(), batch, seq, opt, 31, 12345, ids.data(), pos.data(), tg.data());
    CHECK(ids == ref.ids);
    CHECK(pos == ref.masked_positions);
    CHECK(tg == ref.masked_targets);
    using be = cram::cpu::backend<float>;
    be::context ctx;
    std::vector<std::int32_t> ids2(ids.size(), -1), pos2(pos.size(), -1), tg2(tg.size(), -1);
    be::mask_batch(ctx, tokens.data(), batch, seq, opt, 31, 12345, ids2.data(), pos2.data(), tg2.data());
    CHECK(ids2 == ref.ids);
    CHECK(pos2 == ref.masked_positions);
    CHECK(tg2 == ref.masked_targets);
}
