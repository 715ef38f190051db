// The CPU ops' row math (cram/ops/vector_math.hpp) against the standard library in double: the float
// exponential within 2 ulp of the correctly rounded e^x over the range softmax and cross-entropy use, and
// the lane-split sums, dot products and maxima against plain loops in double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cram/core/rng.hpp"
#include "cram/ops/activation.hpp"
#include "cram/ops/vector_math.hpp"
#include "doctest/doctest.h"

namespace {
// Distance in units in the last place between a float and a double reference (the reference rounded).
double ulp_error(float got, double ref) {
    const float r = static_cast<float>(ref);
    if (r == 0.0f) return got == 0.0f ? 0.0 : std::numeric_limits<double>::infinity();
    const double ulp = std::nextafter(std::fabs(r), std::numeric_limits<float>::infinity()) - std::fabs(r);
    return std::fabs(static_cast<double>(got) - ref) / ulp;
}
}  // namespace

TEST_CASE("float exp_row: within 2 ulp of e^x on [-87, 88], 0 below the normal range") {
    double worst = 0;
    float worst_x = 0;
    std::vector<float> xs;
    for (float x = -87.0f; x <= 88.0f; x += 0.000977f) xs.push_back(x);  // ~180K points, not grid-aligned
    for (float x : {0.0f, -0.0f, 1.0f, -1.0f, 0.34657359f, -0.34657359f, 88.0f, -87.0f}) xs.push_back(x);
    std::vector<float> out(xs.size());
    cram::ops::exp_row(out.data(), xs.data(), static_cast<cram::index_t>(xs.size()), 0.0f);
    for (std::size_t i = 0; i < xs.size(); ++i) {
        const double e = ulp_error(out[i], std::exp(static_cast<double>(xs[i])));
        if (e > worst) worst = e, worst_x = xs[i];
    }
    CAPTURE(worst_x);
    CHECK(worst <= 2.0);
    // the shift is subtracted first, as softmax does: e^(x - max)
    float pair[2] = {3.0f, 5.0f}, res[2];
    const float sum = cram::ops::exp_row(res, pair, 2, 5.0f);
    CHECK(res[1] == 1.0f);
    CHECK(ulp_error(res[0], std::exp(-2.0)) <= 2.0);
    CHECK(sum == res[0] + res[1]);
    float tiny[3] = {-88.0f, -100.0f, -1e30f}, zero[3];
    cram::ops::exp_row(zero, tiny, 3, 0.0f);
    for (float z : zero) CHECK(z == 0.0f);
}

TEST_CASE("lane sums, dots and maxima equal plain double loops within rounding, for every tail length") {
    cram::philox_stream rng(9, 1, 2);
    for (int n = 1; n <= 70; ++n) {
        CAPTURE(n);
        std::vector<float> x(n), y(n);
        double sum = 0, dot = 0;
        float mx = -std::numeric_limits<float>::infinity();
        for (int i = 0; i < n; ++i) {
            x[i] = rng.next_uniform() * 4.0f - 2.0f;
            y[i] = rng.next_uniform() * 4.0f - 2.0f;
            sum += x[i];
            dot += double(x[i]) * y[i];
            mx = std::max(mx, x[i]);
        }
        CHECK(cram::ops::sum_of(x.data(), n) == doctest::Approx(sum).epsilon(1e-5).scale(1.0));
        CHECK(cram::ops::dot_of(x.data(), y.data(), n) == doctest::Approx(dot).epsilon(1e-5).scale(1.0));
        CHECK(cram::ops::max_of(x.data(), n) == mx);
        // double keeps std::exp exactly
        std::vector<double> xd(x.begin(), x.end()), ed(n);
        cram::ops::exp_row(ed.data(), xd.data(), n, 0.5);
        for (int i = 0; i < n; ++i) CHECK(ed[i] == std::exp(xd[i] - 0.5));
    }
}

// The float GELU the CPU loops use against the exact one in double: Phi to a relative 1e-6 x max(1, x^2/2)
// in both tails (GELU's negative side is x Phi(x) with Phi tiny). The x^2/2 is the conditioning of
// e^(-x^2/2) in float arithmetic: x^2/2 carries a relative rounding of ~1e-7, which the exponential turns
// into a relative x^2/2 * 1e-7. (0.5 (1 + erf(x / sqrt 2))) in float, the textbook form, loses the tail:
// at x = -4.4, where Phi = 5e-6, the rounding of erf next to -1 alone is a relative 0.3%; by x = -5.5 it
// is all of it.) GELU' to an absolute 1e-6.
TEST_CASE("float normal CDF and GELU derivative match std::erf in double, tails included") {
    double worst_cdf = 0, worst_grad = 0;
    for (float x = -12.0f; x <= 9.0f; x += 0.00391f) {
        const double xd = x;
        const double cdf = 0.5 * std::erfc(-xd / std::sqrt(2.0));
        const double grad = cdf + xd * std::exp(-0.5 * xd * xd) / std::sqrt(2.0 * M_PI);
        const double bound = std::max(1.0, 0.5 * xd * xd);
        worst_cdf =
            std::max(worst_cdf, std::fabs(cram::ops::detail::normal_cdf_poly(x) - cdf) / cdf / bound);
        worst_grad = std::max(worst_grad, std::fabs(cram::ops::detail::cpu_gelu_grad(x) - grad));
    }
    CHECK(worst_cdf < 1e-6);
    CHECK(worst_grad < 1e-6);
    CHECK(cram::ops::detail::normal_cdf_poly(-30.0f) == 0.0f);
    CHECK(cram::ops::detail::normal_cdf_poly(30.0f) == 1.0f);
}

TEST_CASE("sum of squared deviations equals a double loop within rounding") {
    cram::philox_stream rng(4, 4, 4);
    for (int n : {1, 15, 16, 17, 128, 333}) {
        CAPTURE(n);
        std::vector<float> x(n);
        double mean = 0;
        for (auto& v : x) mean += (v = rng.next_uniform() * 3.0f + 1.0f);
        mean /= n;
        double ref = 0;
        for (float v : x) ref += (v - float(mean)) * double(v - float(mean));
        CHECK(cram::ops::sum_squared_deviation(x.data(), float(mean), n) == doctest::Approx(ref).epsilon(1e-5));
    }
}
