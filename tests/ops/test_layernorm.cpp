// cram/ops/layernorm.hpp: forward values worked out by hand on a 2x3 input (also as a residual sum, through
// add_layernorm_forward), and finite-difference gradients in double of input, weight and bias (all three
// accumulate: outputs are pre-filled).
#include <cmath>
#include <cstdint>
#include <vector>

#include "cram/ops/layernorm.hpp"
#include "fd_support.hpp"

using namespace cram::test;

TEST_CASE("layernorm of a 2x3 input, by hand") {
    // row 0 = [1, 2, 3]: mean 2, var (1 + 0 + 1)/3 = 2/3, rstd sqrt(3/2) = 1.2247449, xhat = [-1.2247, 0, 1.2247]
    // row 1 = [-1, .5, .5]: mean 0, var (1 + .25 + .25)/3 = .5, rstd sqrt(2), xhat = [-1.4142, .7071, .7071]
    // y = xhat * w + b with w = [1, 2, .5], b = [0, 1, -1]
    const vec x = {1, 2, 3, -1, 0.5, 0.5}, w = {1, 2, 0.5}, b = {0, 1, -1};
    vec y(6), mean(2), rstd(2);
    cram::ops::layernorm_forward<double>(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), 2, 3, 1e-12);
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

TEST_CASE("add_layernorm_forward: the residual sum, then the 2x3 norm by hand") {
    // a + b is the hand-worked input above, [1, 2, 3; -1, .5, .5]
    const vec a = {0.25, 4, 1, -3, 0.5, 2}, b = {0.75, -2, 2, 2, 0, -1.5}, w = {1, 2, 0.5}, bias = {0, 1, -1};
    vec sum(6, -7.0), y(6), mean(2), rstd(2);
    cram::ops::add_layernorm_forward<double>(sum.data(), y.data(), mean.data(), rstd.data(), a.data(), b.data(),
                                             w.data(), bias.data(), 2, 3, 1e-12);
    CRAM_CHECK_CLOSE(sum, (vec{1, 2, 3, -1, 0.5, 0.5}), 0.0, 0.0);
    const double s15 = std::sqrt(1.5), s2 = std::sqrt(2.0);
    CRAM_CHECK_CLOSE(y, (vec{-s15, 1.0, 0.5 * s15 - 1.0, -s2, 1.0 + s2, -1.0 + 0.25 * s2}), 1e-11, 1e-11);
    CHECK(mean[0] == doctest::Approx(2.0));
    CHECK(rstd[1] == doctest::Approx(s2));
}

TEST_CASE("layernorm backward: input, weight and bias gradients (all accumulate)") {
    const int rows = 3, cols = 7;
    const double eps = 1e-5;
    vec x = random_vec(rows * cols, 20, -2, 2), w = random_vec(cols, 21, 0.5, 1.5), b = random_vec(cols, 22);
    const vec r = random_vec(rows * cols, 23);
    auto loss = [&] {
        vec out(rows * cols), mean(rows), rstd(rows);
        cram::ops::layernorm_forward<double>(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), rows,
                                             cols, eps);
        return dot(r, out);
    };
    vec out(rows * cols), mean(rows), rstd(rows);
    cram::ops::layernorm_forward<double>(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), rows,
                                         cols, eps);
    const double prefill = -0.5;
    vec dx(x.size(), prefill), dw(w.size(), prefill), db(b.size(), prefill);
    cram::ops::layernorm_backward<double>(dx.data(), dw.data(), db.data(), r.data(), x.data(), mean.data(),
                                          rstd.data(), w.data(), rows, cols);
    check_fd("layernorm input", x, minus(dx, prefill), loss);
    check_fd("layernorm weight", w, minus(dw, prefill), loss);
    check_fd("layernorm bias", b, minus(db, prefill), loss);
}
