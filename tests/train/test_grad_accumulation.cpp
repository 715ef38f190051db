// Pairwise gradient accumulation (cram/train/grad_accumulation.hpp) against hand-derived trees and an
// independent recursive evaluation, and the property data parallelism rests on: the tree over 2A
// micro-batches is the sum of the trees over each half, bit for bit, where a sequential fold is not.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "cram/cpu/backend.hpp"
#include "cram/train/grad_accumulation.hpp"

using cram::train::pairwise_accumulator;
using cram::train::pairwise_merges_after;
using cpu = cram::cpu::backend<float>;

namespace {

// The tree written as its definition: [lo, hi) = [lo, lo + ceil(n/2)) + the rest.
float tree_sum(const std::vector<float>& x, std::int64_t lo, std::int64_t hi) {
    if (hi - lo == 1) return x[std::size_t(lo)];
    const std::int64_t mid = lo + (hi - lo + 1) / 2;
    return tree_sum(x, lo, mid) + tree_sum(x, mid, hi);
}

// Values whose float sums depend on the order: magnitudes over six decades, both signs.
std::vector<float> awkward_values(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
    std::uniform_int_distribution<int> exponent(-10, 10);
    std::vector<float> v(n);
    for (auto& x : v) x = std::ldexp(mantissa(rng), exponent(rng));
    return v;
}

// Runs the accumulator over `leaves` micro-batches of `width` gradients (leaf k's are leaf[k]), stopping
// after `run` of them (finish_early when run < leaves), as the trainer drives it.
std::vector<float> accumulate(const std::vector<std::vector<float>>& leaf, std::int64_t run) {
    const std::size_t width = leaf[0].size();
    cpu::context ctx{1};
    std::vector<float> grads(width, 0.0f);
    pairwise_accumulator<cpu> acc(ctx, grads.data(), width);
    acc.begin(std::int64_t(leaf.size()));
    for (std::int64_t k = 0; k < run; ++k) {
        for (std::size_t i = 0; i < width; ++i) grads[i] += leaf[std::size_t(k)][i];  // the backward's "+="
        acc.after_micro_batch();
    }
    if (run < std::int64_t(leaf.size())) acc.finish_early();
    return grads;
}

}  // namespace

TEST_CASE("pairwise_merges_after: the trees drawn by hand") {
    // n = 4: ((0 1) (2 3)); n = 3: ((0 1) 2); n = 5: (((0 1) 2) (3 4))
    const std::vector<std::vector<int>> want{{0}, {0, 1}, {0, 1, 1}, {0, 1, 0, 2}, {0, 1, 1, 0, 2}};
    for (std::size_t n = 1; n <= want.size(); ++n)
        for (std::size_t k = 0; k < n; ++k)
            CHECK_MESSAGE(pairwise_merges_after(std::int64_t(k), std::int64_t(n)) == want[n - 1][k], "n=", n, " k=", k);
    // every tree over n leaves has n - 1 additions
    for (std::int64_t n = 1; n <= 70; ++n) {
        int total = 0;
        for (std::int64_t k = 0; k < n; ++k) total += pairwise_merges_after(k, n);
        CHECK(total == n - 1);
    }
    CHECK_THROWS(pairwise_merges_after(3, 3));
}

TEST_CASE("pairwise_accumulator: equals the tree's definition bit for bit, for every size up to 40") {
    for (std::int64_t n = 1; n <= 40; ++n) {
        std::vector<std::vector<float>> leaf;
        for (std::int64_t k = 0; k < n; ++k) leaf.push_back(awkward_values(16, unsigned(100 * n + k)));
        const auto got = accumulate(leaf, n);
        for (std::size_t i = 0; i < 16; ++i) {
            std::vector<float> column;
            for (const auto& l : leaf) column.push_back(l[i]);
            REQUIRE_MESSAGE(got[i] == tree_sum(column, 0, n), "n=", n, " i=", i);
        }
    }
}

TEST_CASE("pairwise: two halves summed apart equal the whole, where a sequential fold does not") {
    // what two data-parallel ranks of A micro-batches each compute, against one process's 2A
    int fold_differs = 0;
    for (std::int64_t a = 1; a <= 12; ++a) {
        std::vector<std::vector<float>> all, first, second;
        for (std::int64_t k = 0; k < 2 * a; ++k) {
            all.push_back(awkward_values(64, unsigned(7000 + 31 * a + k)));
            (k < a ? first : second).push_back(all.back());
        }
        const auto whole = accumulate(all, 2 * a);
        const auto r0 = accumulate(first, a), r1 = accumulate(second, a);
        for (std::size_t i = 0; i < 64; ++i) {
            REQUIRE_MESSAGE(whole[i] == r0[i] + r1[i], "A=", a, " i=", i);
            float fold = 0, f0 = 0, f1 = 0;
            for (std::int64_t k = 0; k < 2 * a; ++k) fold += all[std::size_t(k)][i];
            for (std::int64_t k = 0; k < a; ++k) f0 += first[std::size_t(k)][i], f1 += second[std::size_t(k)][i];
            fold_differs += fold != f0 + f1;
        }
    }
    CHECK(fold_differs > 0);  // the property is not free: summation order shows in float
}

TEST_CASE("pairwise_accumulator: a step cut short holds the sum of the micro-batches that ran") {
    // n = 4 stopped after 3: the stack holds (d0 + d1) and d2; finish_early adds them innermost first
    std::vector<std::vector<float>> leaf{{1.0f}, {1e8f}, {-1e8f}, {1000.0f}};
    const auto got = accumulate(leaf, 3);
    CHECK(got[0] == (0.0f + -1e8f) + (1.0f + 1e8f));  // 0: d0 + (d1 + d2) would be 1
    // one leaf of many: itself
    CHECK(accumulate(leaf, 1)[0] == 1.0f);
    // the scratch buffers: ceil(log2 n) at most
    cpu::context ctx{1};
    std::vector<float> g(4, 0.0f);
    pairwise_accumulator<cpu> acc(ctx, g.data(), 4);
    acc.begin(16);
    for (int k = 0; k < 16; ++k) acc.after_micro_batch();
    CHECK(acc.buffers() == 4);
}
