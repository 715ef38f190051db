// cram/ops/attention.hpp: a two-token attention whose softmax is known in closed form (with and without
// key lengths), and finite-difference gradients of the fused QKV in double; attention-probability dropout
// (the mask of ops/dropout.hpp over the probs tensor) by hand on two tokens and by finite differences.
#include <cmath>
#include <cstdint>
#include <vector>

#include "cram/ops/attention.hpp"
#include "cram/ops/dropout.hpp"
#include "fd_support.hpp"

using namespace cram::test;

namespace {
const double ln3 = std::log(3.0);
}  // namespace

TEST_CASE("attention over two tokens with a known softmax, by hand") {
    // batch 1, seq 2, heads 2, head_dim 2 (scale 1/sqrt 2). Row layout [q(4) | k(4) | v(4)], head h owns
    // columns 2h, 2h+1 of each part.
    // head 0: q0 = [1, 0], q1 = [0, 1]; k0 = [0, 0], k1 = [sqrt2 ln3, 0]
    //   scores q0: [0, ln3] -> softmax [1/4, 3/4];  q1: [0, 0] -> [1/2, 1/2]
    //   v0 = [1, 2], v1 = [3, -2]: out0 = [1/4 + 9/4, 2/4 - 6/4] = [2.5, -1], out1 = [2, 0]
    // head 1: q = 0 everywhere -> uniform; v0 = [4, 0], v1 = [0, 8]: out = [2, 4] for both tokens
    const double a = std::sqrt(2.0) * ln3;
    const vec qkv = {
        1, 0, 0, 0, /* k */ 0, 0, 0, 0, /* v */ 1, 2, 4, 0,   // token 0
        0, 1, 0, 0, /* k */ a, 0, 5, 5, /* v */ 3, -2, 0, 8,  // token 1
    };
    vec out(8), probs(8);
    cram::ops::attention_forward<double>(out.data(), probs.data(), qkv.data(), nullptr, 1, 2, 2, 2);
    CRAM_CHECK_CLOSE(out, (vec{2.5, -1, 2, 4, 2, 0, 2, 4}), 1e-12, 1e-12);
    CRAM_CHECK_CLOSE(probs, (vec{0.25, 0.75, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5}), 1e-12, 1e-12);
    // length 1: only key 0 is visible, so every query returns v0
    const ivec len = {1};
    cram::ops::attention_forward<double>(out.data(), probs.data(), qkv.data(), len.data(), 1, 2, 2, 2);
    CRAM_CHECK_CLOSE(out, (vec{1, 2, 4, 0, 1, 2, 4, 0}), 1e-12, 1e-12);
    CRAM_CHECK_CLOSE(probs, (vec{1, 0, 1, 0, 1, 0, 1, 0}), 0, 0);
}

TEST_CASE("attention backward, with and without key lengths") {
    const int batch = 2, seq = 4, heads = 2, head_dim = 3, hidden = heads * head_dim;
    const ivec lengths = {4, 2};
    for (const bool use_lengths : {false, true}) {
        CAPTURE(use_lengths);
        const std::int32_t* len = use_lengths ? lengths.data() : nullptr;
        vec qkv = random_vec(std::size_t(batch) * seq * 3 * hidden, 30, -1.5, 1.5);
        const vec r = random_vec(std::size_t(batch) * seq * hidden, 31);
        vec probs(std::size_t(batch) * heads * seq * seq);
        auto forward = [&] {
            vec out(std::size_t(batch) * seq * hidden);
            cram::ops::attention_forward<double>(out.data(), probs.data(), qkv.data(), len, batch, seq, heads,
                                                 head_dim);
            return out;
        };
        auto loss = [&] { return dot(r, forward()); };
        forward();
        // probabilities: rows sum to one, masked keys get exactly zero
        for (int bb = 0; bb < batch; ++bb)
            for (int h = 0; h < heads; ++h)
                for (int i = 0; i < seq; ++i) {
                    double s = 0;
                    for (int j = 0; j < seq; ++j) {
                        const double p = probs[((std::size_t(bb) * heads + h) * seq + i) * seq + j];
                        s += p;
                        if (use_lengths && j >= lengths[std::size_t(bb)]) CHECK(p == 0.0);
                    }
                    CHECK(s == doctest::Approx(1.0).epsilon(1e-14));
                }
        vec dqkv(qkv.size(), nan_v);
        cram::ops::attention_backward<double>(dqkv.data(), r.data(), qkv.data(), probs.data(), len, batch, seq, heads,
                                              head_dim);
        check_fd("attention qkv", qkv, dqkv, loss);
    }
}

TEST_CASE("attention dropout over two tokens, by hand") {
    // batch 1, seq 2, heads 1, head_dim 1 (scale 1). q = [0, 1], k = [0, ln3], v = [2, 4]:
    //   P row 0 = softmax [0, 0] = [1/2, 1/2];  row 1 = softmax [0, ln3] = [1/4, 3/4]
    // Dropout p = 0.5 (scale 2) with a mask that keeps elements 0 and 3 of probs (e = 2i + j) and drops 1, 2:
    //   D = [[1, 0], [0, 3/2]];  out = D v = [2, 6]   (no dropout: [3, 3.5])
    // Backward with dout = [1, 1]:
    //   dv_j = sum_i D_ij dout_i = [1, 3/2]
    //   dD_ij = dout_i v_j = [[2, 4], [2, 4]];  dP = mask * 2 * dD = [[4, 0], [0, 8]]
    //   dS = P (dP - sum_j P dP): row 0 dot 2 -> [1, -1];  row 1 dot 6 -> [-3/2, 3/2]
    //   dq_i = sum_j dS_ij k_j = [-ln3, 3/2 ln3];  dk_j = sum_i dS_ij q_i = [-3/2, 3/2]
    const float p = 0.5f;
    const std::uint32_t stream = 7;
    // the first seed whose mask (ops/dropout.hpp's, as dropout_forward draws it over four elements) is
    // keep, drop, drop, keep
    std::uint64_t seed = 0;
    bool found = false;
    for (; seed < 10000 && !found; ++seed) {
        const vec ones = {1, 1, 1, 1};
        vec m(4);
        cram::ops::dropout_forward<double>(m.data(), ones.data(), 4, p, seed, stream);
        found = m == vec{2, 0, 0, 2};
        if (found) break;
    }
    REQUIRE(found);
    for (int e = 0; e < 4; ++e)
        CHECK(cram::ops::attention_keep(seed, stream, e, cram::ops::dropout_threshold(p)) == (e == 0 || e == 3));
    const vec qkv = {0, 0, 2, /* token 1 */ 1, ln3, 4};
    vec out(2), probs(4);
    cram::ops::attention_forward<double>(out.data(), probs.data(), qkv.data(), nullptr, 1, 2, 1, 1, p, seed, stream);
    CRAM_CHECK_CLOSE(out, (vec{2, 6}), 1e-12, 1e-12);
    CRAM_CHECK_CLOSE(probs, (vec{0.5, 0.5, 0.25, 0.75}), 1e-12, 1e-12);  // saved undropped
    const vec dout = {1, 1};
    vec dqkv(6, nan_v);
    cram::ops::attention_backward<double>(dqkv.data(), dout.data(), qkv.data(), probs.data(), nullptr, 1, 2, 1, 1, p,
                                          seed, stream);
    // rows [dq | dk | dv] per token
    CRAM_CHECK_CLOSE(dqkv, (vec{-ln3, -1.5, 1, 1.5 * ln3, 1.5, 1.5}), 1e-12, 1e-12);
    // p = 0 is the plain attention whatever the seed
    cram::ops::attention_forward<double>(out.data(), probs.data(), qkv.data(), nullptr, 1, 2, 1, 1, 0.0f, seed, stream);
    CRAM_CHECK_CLOSE(out, (vec{3, 3.5}), 1e-12, 1e-12);
}

TEST_CASE("attention dropout backward by finite differences (fixed mask), with and without key lengths") {
    const int batch = 2, seq = 5, heads = 2, head_dim = 3, hidden = heads * head_dim;
    const float p = 0.3f;
    const std::uint64_t seed = 1234;
    const std::uint32_t stream = 33;
    const ivec lengths = {5, 3};
    for (const bool use_lengths : {false, true}) {
        CAPTURE(use_lengths);
        const std::int32_t* len = use_lengths ? lengths.data() : nullptr;
        vec qkv = random_vec(std::size_t(batch) * seq * 3 * hidden, 40, -1.5, 1.5);
        const vec r = random_vec(std::size_t(batch) * seq * hidden, 41);
        vec probs(std::size_t(batch) * heads * seq * seq);
        auto forward = [&] {
            vec out(std::size_t(batch) * seq * hidden);
            cram::ops::attention_forward<double>(out.data(), probs.data(), qkv.data(), len, batch, seq, heads,
                                                 head_dim, p, seed, stream);
            return out;
        };
        auto loss = [&] { return dot(r, forward()); };
        const vec dropped = forward();
        // the mask is live: some of the visible probabilities are dropped, and the output differs from p = 0
        vec plain(dropped.size());
        vec probs0(probs.size());
        cram::ops::attention_forward<double>(plain.data(), probs0.data(), qkv.data(), len, batch, seq, heads, head_dim);
        CHECK(probs0 == probs);  // the saved probabilities are the undropped ones
        int kept = 0, visible = 0;
        const std::uint32_t th = cram::ops::dropout_threshold(p);
        for (std::size_t e = 0; e < probs.size(); ++e)
            if (probs[e] > 0) {
                ++visible;
                kept += cram::ops::attention_keep(seed, stream, cram::index_t(e), th);
            }
        CHECK(kept > 0);
        CHECK(kept < visible);
        CHECK(dropped != plain);
        vec dqkv(qkv.size(), nan_v);
        cram::ops::attention_backward<double>(dqkv.data(), r.data(), qkv.data(), probs.data(), len, batch, seq, heads,
                                              head_dim, p, seed, stream);
        check_fd("attention qkv with dropout", qkv, dqkv, loss);
    }
}
