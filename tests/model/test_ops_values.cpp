// Forward values of the CPU ops against numbers worked out by hand on tiny inputs (the working is in
// the comments), and AdamW against its closed form: one and two steps, bias correction, and weight
// decay only on the decayed range of a layout.
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "cram/cpu/backend.hpp"
#include "cram/cpu/ops.hpp"
#include "cram/model/parameters.hpp"
#include "cram/train/optimizer.hpp"
#include "cram/train/training_state.hpp"
#include "test_support.hpp"

namespace {
using vec = std::vector<double>;
using ivec = std::vector<std::int32_t>;
const double ln3 = std::log(3.0);
}  // namespace

TEST_CASE("layernorm of a 2x3 input, by hand") {
    // row 0 = [1, 2, 3]: mean 2, var (1 + 0 + 1)/3 = 2/3, rstd sqrt(3/2) = 1.2247449, xhat = [-1.2247, 0, 1.2247]
    // row 1 = [-1, .5, .5]: mean 0, var (1 + .25 + .25)/3 = .5, rstd sqrt(2), xhat = [-1.4142, .7071, .7071]
    // y = xhat * w + b with w = [1, 2, .5], b = [0, 1, -1]
    const vec x = {1, 2, 3, -1, 0.5, 0.5}, w = {1, 2, 0.5}, b = {0, 1, -1};
    vec y(6), mean(2), rstd(2);
    cram::cpu::layernorm_forward<double>(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), 2, 3, 1e-12);
    const double s15 = std::sqrt(1.5), s2 = std::sqrt(2.0);
    const vec ref = {-s15, 1.0, 0.5 * s15 - 1.0, -s2, 1.0 + 2.0 * s2 / 2.0, -1.0 + 0.5 * s2 / 2.0};
    CRAM_CHECK_CLOSE(y, ref, 1e-11, 1e-11);
    CHECK(mean[0] == doctest::Approx(2.0));
    CHECK(mean[1] == doctest::Approx(0.0));
    CHECK(rstd[0] == doctest::Approx(s15));
    CHECK(rstd[1] == doctest::Approx(s2));
    // the numbers themselves, for a reader: 0.5*sqrt(1.5) - 1 = -0.3876275...
    CHECK(y[2] == doctest::Approx(-0.38762756430420564));
    CHECK(y[4] == doctest::Approx(2.414213562373095));
}

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
    cram::cpu::attention_forward<double>(out.data(), probs.data(), qkv.data(), nullptr, 1, 2, 2, 2);
    CRAM_CHECK_CLOSE(out, (vec{2.5, -1, 2, 4, 2, 0, 2, 4}), 1e-12, 1e-12);
    CRAM_CHECK_CLOSE(probs, (vec{0.25, 0.75, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5}), 1e-12, 1e-12);
    // length 1: only key 0 is visible, so every query returns v0
    const ivec len = {1};
    cram::cpu::attention_forward<double>(out.data(), probs.data(), qkv.data(), len.data(), 1, 2, 2, 2);
    CRAM_CHECK_CLOSE(out, (vec{1, 2, 4, 0, 1, 2, 4, 0}), 1e-12, 1e-12);
    CRAM_CHECK_CLOSE(probs, (vec{1, 0, 1, 0, 1, 0, 1, 0}), 0, 0);
}

TEST_CASE("sinusoidal position table entries") {
    // PE(pos, 2i) = sin(pos / 10000^(2i/H)), PE(pos, 2i+1) = cos(...), H = 8
    const int seq = 3, H = 8;
    vec t(seq * H);
    cram::cpu::sinusoidal_table<double>(t.data(), seq, H);
    auto at = [&](int pos, int col) { return t[std::size_t(pos * H + col)]; };
    for (int c = 0; c < H; ++c) CHECK(at(0, c) == (c % 2 == 0 ? 0.0 : 1.0));
    CHECK(at(1, 0) == doctest::Approx(std::sin(1.0)).epsilon(1e-14));
    CHECK(at(1, 1) == doctest::Approx(std::cos(1.0)).epsilon(1e-14));
    CHECK(at(1, 2) == doctest::Approx(std::sin(0.1)).epsilon(1e-14));    // 10000^(2/8) = 10
    CHECK(at(1, 3) == doctest::Approx(std::cos(0.1)).epsilon(1e-14));
    CHECK(at(1, 4) == doctest::Approx(std::sin(0.01)).epsilon(1e-14));   // 10000^(4/8) = 100
    CHECK(at(1, 6) == doctest::Approx(std::sin(0.001)).epsilon(1e-14));  // 10000^(6/8) = 1000
    CHECK(at(1, 7) == doctest::Approx(std::cos(0.001)).epsilon(1e-14));
    CHECK(at(2, 2) == doctest::Approx(std::sin(0.2)).epsilon(1e-14));
    CHECK(at(2, 5) == doctest::Approx(std::cos(0.02)).epsilon(1e-14));
}

TEST_CASE("embedding forward: word + scale * position + token type, by hand") {
    // hidden 2, vocab 3, seq 2, batch 1; ids [2, 0], types [1, 0]
    const vec word = {0, 0, 1, 2, 10, 20};  // rows 0, 1, 2
    const vec pos = {0.5, -0.5, 1, 3};      // rows for s = 0, 1
    const vec type = {100, 200, 300, 400};  // rows for type 0, 1
    const vec scale = {2.0};
    const ivec ids = {2, 0}, types = {1, 0};
    vec out(4);
    cram::cpu::embedding_forward<double>(out.data(), ids.data(), types.data(), word.data(), pos.data(), scale.data(),
                                         type.data(), 1, 2, 2, 3, 2);
    // token 0: [10, 20] + 2*[.5, -.5] + [300, 400] = [311, 419]; token 1: [0, 0] + 2*[1, 3] + [100, 200]
    CRAM_CHECK_CLOSE(out, (vec{311, 419, 102, 206}), 0, 0);
    cram::cpu::embedding_forward<double>(out.data(), ids.data(), nullptr, word.data(), pos.data(), nullptr, nullptr, 1,
                                         2, 2, 3, 0);
    CRAM_CHECK_CLOSE(out, (vec{10.5, 19.5, 1, 3}), 0, 0);
    const ivec bad = {3, 0};
    CHECK_THROWS_AS(cram::cpu::embedding_forward<double>(out.data(), bad.data(), nullptr, word.data(), pos.data(),
                                                         nullptr, nullptr, 1, 2, 2, 3, 0),
                    cram::error);
}

TEST_CASE("gelu, gelu-glu and tanh values") {
    // GELU(x) = x * Phi(x) (exact erf form); Phi(1) = 0.8413447460685429, Phi(2) = 0.9772498680518208
    const vec x = {0, 1, -1, 2};
    vec y(4);
    cram::cpu::gelu_forward<double>(y.data(), x.data(), 4);
    CRAM_CHECK_CLOSE(y, (vec{0, 0.8413447460685429, -0.15865525393145707, 1.9544997361036416}), 1e-15, 1e-14);
    // GELU'(x) = Phi(x) + x phi(x): at 1, 0.8413447 + 0.2419707 = 1.0833155
    CHECK(cram::cpu::gelu_grad(1.0) == doctest::Approx(1.0833154705876864).epsilon(1e-14));
    // GLU: [x | gate] = [2, -3 | 1, 0] -> [2 * GELU(1), -3 * GELU(0)] = [1.68268949, 0]
    const vec in = {2, -3, 1, 0};
    vec g(2);
    cram::cpu::glu_forward<double>(g.data(), in.data(), 1, 2);
    CRAM_CHECK_CLOSE(g, (vec{1.6826894921370859, 0}), 1e-15, 1e-14);
    const vec t_in = {0.5493061443340549};  // atanh(0.5)
    vec t(1);
    cram::cpu::tanh_forward<double>(t.data(), t_in.data(), 1);
    CHECK(t[0] == doctest::Approx(0.5).epsilon(1e-14));
}

TEST_CASE("cross-entropy, squared error and the fused decoder loss, by hand") {
    // row 0: logits [0, ln3], label 1: softmax [1/4, 3/4], loss -ln(3/4); grad [1/4, -1/4]
    // row 1: logits [5, 5] (ignored)
    // row 2: logits [7, 7], label 0: loss ln 2; grad [-1/2, 1/2]
    const vec logits = {0, ln3, 5, 5, 7, 7};
    const ivec labels = {1, cram::cpu::ignore_label, 0};
    vec d(6);
    const double loss = cram::cpu::cross_entropy<double>(d.data(), logits.data(), labels.data(), 3, 2, 1.0);
    CHECK(loss == doctest::Approx(-std::log(0.75) + std::log(2.0)).epsilon(1e-14));
    CRAM_CHECK_CLOSE(d, (vec{0.25, -0.25, 0, 0, -0.5, 0.5}), 1e-15, 1e-14);

    // squared error: 0.5 * ((3 - 1)^2 + (-1 - 0.5)^2) = 0.5 * (4 + 2.25) = 3.125; grad = pred - target
    const vec pred = {3, -1};
    const std::vector<float> target = {1.0f, 0.5f};
    vec dp(2);
    CHECK(cram::cpu::squared_error<double>(dp.data(), pred.data(), target.data(), 2, 1.0) == 3.125);
    CRAM_CHECK_CLOSE(dp, (vec{2, -1.5}), 0, 0);

    // decoder: hidden [1, 0] and [0, 2], w = [[ln3, 0], [0, 0], [0, ln3 / 2]], bias [0, 0, 1]
    // logits row 0 = [ln3, 0, 1]: target 1 -> loss ln(3 + 1 + e) - 0
    // logits row 1 = [0, 0, ln3 + 1]: target 2 -> loss ln(2 + 3e) - (ln3 + 1)
    const vec hid = {1, 0, 0, 2}, w = {ln3, 0, 0, 0, 0, ln3 / 2}, bias = {0, 0, 1};
    const ivec tg = {1, 2};
    const double e = std::numbers::e;
    const double ref = std::log(4 + e) + std::log(2 + 3 * e) - (ln3 + 1);
    CHECK(cram::cpu::decoder_cross_entropy<double>(nullptr, nullptr, nullptr, hid.data(), w.data(), bias.data(),
                                                   tg.data(), 2, 2, 3, 1.0) == doctest::Approx(ref).epsilon(1e-14));
}

// ---- AdamW ----------------------------------------------------------------------------------------
TEST_CASE("adamw_step: one and two steps against the closed form") {
    cram::cpu::adamw_hparams hp;
    hp.lr = 0.1f;
    hp.beta1 = 0.9f;
    hp.beta2 = 0.98f;
    hp.eps = 1e-8f;
    hp.weight_decay = 0.01f;
    const double lr = hp.lr, b1 = hp.beta1, b2 = hp.beta2, eps = hp.eps, wd = hp.weight_decay;

    // step 1: m = (1-b1) g, v = (1-b2) g^2, bias-corrected m_hat = g, v_hat = g^2:
    //   p1 = p0 (1 - lr wd) - lr g / (|g| + eps)   (p0 = 1, g = .5: 0.999 - 0.1 = 0.899)
    vec p = {1.0, -2.0}, m = {0, 0}, v = {0, 0};
    const vec g1 = {0.5, 1e-3};
    hp.step = 1;
    cram::cpu::adamw_step<double>(p.data(), g1.data(), m.data(), v.data(), 2, hp);
    CHECK(p[0] == doctest::Approx(0.899).epsilon(1e-6));
    for (int i = 0; i < 2; ++i) {
        const double p0 = i == 0 ? 1.0 : -2.0, g = g1[std::size_t(i)];
        CHECK(p[std::size_t(i)] == doctest::Approx(p0 * (1 - lr * wd) - lr * g / (std::abs(g) + eps)).epsilon(1e-12));
        CHECK(m[std::size_t(i)] == doctest::Approx((1 - b1) * g).epsilon(1e-12));
        CHECK(v[std::size_t(i)] == doctest::Approx((1 - b2) * g * g).epsilon(1e-12));
    }
    // step 2 with g2 = -0.25 on element 0:
    //   m2 = b1 (1-b1) g1 + (1-b1) g2 = 0.045 - 0.025 = 0.02;  v2 = b2 (1-b2) g1^2 + (1-b2) g2^2 = 0.00615
    //   m_hat = 0.02 / (1 - 0.81) = 0.1052632;  v_hat = 0.00615 / (1 - 0.9604) = 0.1553030
    //   p2 = 0.899 * 0.999 - 0.1 * 0.1052632 / 0.3940851 = 0.898101 - 0.0267110 = 0.871390
    const vec g2 = {-0.25, 0.0};
    hp.step = 2;
    const vec p1 = p;
    cram::cpu::adamw_step<double>(p.data(), g2.data(), m.data(), v.data(), 2, hp);
    CHECK(p[0] == doctest::Approx(0.871390).epsilon(2e-6));
    for (int i = 0; i < 2; ++i) {
        const double ga = g1[std::size_t(i)], gb = g2[std::size_t(i)];
        const double m2 = b1 * (1 - b1) * ga + (1 - b1) * gb, v2 = b2 * (1 - b2) * ga * ga + (1 - b2) * gb * gb;
        const double mh = m2 / (1 - b1 * b1), vh = v2 / (1 - b2 * b2);
        const double ref = p1[std::size_t(i)] * (1 - lr * wd) - lr * mh / (std::sqrt(vh) + eps);
        CHECK(p[std::size_t(i)] == doctest::Approx(ref).epsilon(1e-10));
    }
    // grad_scale multiplies the gradient before the moments: (g = 1, scale .5) == (g = .5, scale 1)
    vec pa = {1.0}, ma = {0}, va = {0}, pb = {1.0}, mb = {0}, vb = {0};
    const vec one = {1.0}, half = {0.5};
    hp.step = 1;
    cram::cpu::adamw_step<double>(pa.data(), one.data(), ma.data(), va.data(), 1, hp, 0.5);
    cram::cpu::adamw_step<double>(pb.data(), half.data(), mb.data(), vb.data(), 1, hp);
    CHECK(pa[0] == pb[0]);
    CHECK(ma[0] == mb[0]);
    CHECK(va[0] == vb[0]);
}

TEST_CASE("training_state's AdamW step decays only the decayed range of a layout") {
    // roles in visit order, interleaved, so the layout must reorder them to put decayed tensors first
    cram::param_layout layout;
    layout.add("a.weight", {3, 5}, cram::param_role::matrix);
    layout.add("a.bias", {5}, cram::param_role::bias);
    layout.add("norm.weight", {5}, cram::param_role::norm_weight);
    layout.add("emb.weight", {4, 3}, cram::param_role::embedding);
    layout.add("norm.bias", {5}, cram::param_role::norm_bias);
    layout.add("pos.scale", {1}, cram::param_role::position_scale);
    layout.finalize();
    using be = cram::cpu::backend<double>;
    be::context ctx;
    cram::train::training_state<be> state(ctx, layout);
    vec params(layout.buffer_size(), 0.0), grads(layout.buffer_size(), 0.0);
    for (std::size_t i = 0; i < params.size(); ++i) params[i] = 1.0 + 0.01 * double(i);
    // Every real parameter gets gradient 0 except the tensor under test, whose gradient is +1:
    // zero-gradient elements move only by decay, so decay shows up in isolation.
    cram::train::adamw_options o;
    o.weight_decay = 0.1f;
    const double lr = 0.01, wd = double(o.weight_decay);
    const vec before = params;
    const auto* bias = layout.find("a.bias");
    REQUIRE(bias);
    for (std::size_t i = 0; i < bias->size; ++i) grads[bias->offset + i] = 1.0;
    state.load_params(params.data());
    std::copy(grads.begin(), grads.end(), state.grads());
    state.adamw_step(o, float(lr), 1, 1.0f);
    std::copy_n(state.params(), params.size(), params.begin());
    const double lr_f = double(float(lr));
    for (const auto& t : layout.tensors()) {
        const bool decayed = t.name == "a.weight" || t.name == "emb.weight";
        CAPTURE(t.name);
        CHECK((t.offset < layout.decay_end()) == decayed);
        for (std::size_t i = 0; i < t.size; ++i) {
            const double p0 = before[t.offset + i];
            double ref = decayed ? p0 * (1 - lr_f * wd) : p0;
            if (t.name == "a.bias") ref -= lr_f * 1.0 / (1.0 + double(o.eps));  // not decayed, Adam step of sign 1
            CHECK(params[t.offset + i] == doctest::Approx(ref).epsilon(1e-12));
        }
    }
}

TEST_CASE("clip_scale brings the global norm down to the clip value") {
    CHECK(cram::train::clip_scale(2.0, 0.5f) == doctest::Approx(0.25));
    CHECK(cram::train::clip_scale(0.4, 0.5f) == 1.0f);
    CHECK(cram::train::clip_scale(0.5, 0.5f) == 1.0f);
    CHECK(cram::train::clip_scale(100.0, 0.0f) == 1.0f);  // disabled
}
