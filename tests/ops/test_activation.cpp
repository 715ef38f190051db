// cram/ops/activation.hpp: GELU, GELU-GLU and tanh values against known constants, and their backward
// passes against finite differences in double (outputs poisoned with NaN: they must be overwritten).
#include <cmath>
#include <cstdint>
#include <vector>

#include "cram/ops/activation.hpp"
#include "fd_support.hpp"

using namespace cram::test;

TEST_CASE("gelu, gelu-glu and tanh values") {
    // GELU(x) = x * Phi(x) (exact erf form); Phi(1) = 0.8413447460685429, Phi(2) = 0.9772498680518208
    const vec x = {0, 1, -1, 2};
    vec y(4);
    cram::ops::gelu_forward<double>(y.data(), x.data(), 4);
    CRAM_CHECK_CLOSE(y, (vec{0, 0.8413447460685429, -0.15865525393145707, 1.9544997361036416}), 1e-15, 1e-14);
    // GELU'(x) = Phi(x) + x phi(x): at 1, 0.8413447 + 0.2419707 = 1.0833155
    CHECK(cram::ops::gelu_grad(1.0) == doctest::Approx(1.0833154705876864).epsilon(1e-14));
    // GLU: [x | gate] = [2, -3 | 1, 0] -> [2 * GELU(1), -3 * GELU(0)] = [1.68268949, 0]
    const vec in = {2, -3, 1, 0};
    vec g(2);
    cram::ops::glu_forward<double>(g.data(), in.data(), 1, 2);
    CRAM_CHECK_CLOSE(g, (vec{1.6826894921370859, 0}), 1e-15, 1e-14);
    const vec t_in = {0.5493061443340549};  // atanh(0.5)
    vec t(1);
    cram::ops::tanh_forward<double>(t.data(), t_in.data(), 1);
    CHECK(t[0] == doctest::Approx(0.5).epsilon(1e-14));
}

TEST_CASE("gelu, gelu-glu and tanh backward") {
    const int n = 24;
    vec x = random_vec(n, 40, -3, 3);
    const vec r = random_vec(n, 41);
    {
        auto loss = [&] {
            vec out(n);
            cram::ops::gelu_forward<double>(out.data(), x.data(), n);
            return dot(r, out);
        };
        vec dx(n, nan_v);
        cram::ops::gelu_backward<double>(dx.data(), r.data(), x.data(), n);
        check_fd("gelu", x, dx, loss);
    }
    {
        const int rows = 3, inner = 4;  // in: [rows, 2*inner] = [x | gate]
        vec in = random_vec(rows * 2 * inner, 42, -3, 3);
        const vec rr = random_vec(rows * inner, 43);
        auto loss = [&] {
            vec out(rows * inner);
            cram::ops::glu_forward<double>(out.data(), in.data(), rows, inner);
            return dot(rr, out);
        };
        vec din(in.size(), nan_v);
        cram::ops::glu_backward<double>(din.data(), rr.data(), in.data(), rows, inner);
        check_fd("gelu-glu", in, din, loss);
    }
    {
        auto loss = [&] {
            vec out(n);
            cram::ops::tanh_forward<double>(out.data(), x.data(), n);
            return dot(r, out);
        };
        vec y(n), dx(n, nan_v);
        cram::ops::tanh_forward<double>(y.data(), x.data(), n);
        cram::ops::tanh_backward<double>(dx.data(), r.data(), y.data(), n);
        check_fd("tanh", x, dx, loss);
    }
}
