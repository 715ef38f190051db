// cram/ops/attention.hpp: a two-token attention whose softmax is known in closed form (with and without
// key lengths), and finite-difference gradients of the fused QKV in double.
#include <cmath>
#include <cstdint>
#include <vector>

#include "cram/ops/attention.hpp"
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
