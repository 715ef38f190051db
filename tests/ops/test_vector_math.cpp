// The CPU ops' row math (cram/ops/vector_math.hpp) against the standard library in double: the float
// exponential within 2 ulp of the correctly rounded e^x over the range softmax and cross-entropy use, and
// the lane-split sums, dot products and maxima against plain loops in double.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cram/core/rng.hpp"
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
