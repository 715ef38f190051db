// cram/ops/adamw.hpp: one and two AdamW steps against the closed form (bias correction, decoupled
// decay, the gradient scale), the sum of squares and scaling. (The optimizer over a parameter layout, with
// decay on part of it, is tested in tests/train/test_optimizer.cpp.)
#include <cmath>
#include <cstdint>
#include <vector>

#include "cram/ops/adamw.hpp"
#include "test_support.hpp"

namespace {
using vec = std::vector<double>;
}  // namespace

TEST_CASE("adamw_step: one and two steps against the closed form") {
    cram::ops::adamw_hparams hp;
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
    cram::ops::adamw_step<double>(p.data(), g1.data(), m.data(), v.data(), 2, hp);
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
    cram::ops::adamw_step<double>(p.data(), g2.data(), m.data(), v.data(), 2, hp);
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
    cram::ops::adamw_step<double>(pa.data(), one.data(), ma.data(), va.data(), 1, hp, 0.5);
    cram::ops::adamw_step<double>(pb.data(), half.data(), mb.data(), vb.data(), 1, hp);
    CHECK(pa[0] == pb[0]);
    CHECK(ma[0] == mb[0]);
    CHECK(va[0] == vb[0]);
}

TEST_CASE("sum_squares and scale_inplace") {
    const std::vector<float> x = {3.0f, -4.0f, 12.0f};
    CHECK(cram::ops::sum_squares(x.data(), 3) == 169.0);
    std::vector<float> y = x;
    cram::ops::scale_inplace(y.data(), 0.5f, 3);
    CHECK(y[2] == 6.0f);
}

TEST_CASE("scale_inplace and sum_squares in double, by hand") {
    // [1, -2, 0.5, 4] * -0.25 = [-0.25, 0.5, -0.125, -1]; squares sum to 0.0625 + 0.25 + 0.015625 + 1
    vec x = {1, -2, 0.5, 4};
    cram::ops::scale_inplace(x.data(), -0.25, 4);
    CHECK(x == vec{-0.25, 0.5, -0.125, -1});
    CHECK(cram::ops::sum_squares(x.data(), 4) == 1.328125);
    cram::ops::scale_inplace(x.data(), 2.0, 2);  // only the first n elements
    CHECK(x == vec{-0.5, 1, -0.125, -1});
    CHECK(cram::ops::sum_squares(x.data(), 0) == 0.0);
}
