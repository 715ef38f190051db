// Finite-difference helpers shared by the ops suites: for a random upstream gradient R, the scalar
// L = <R, op(inputs)> is differentiated by central differences in double with respect to every input
// element and compared with what the op's backward computes (never passing on an all-zero gradient).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cram/core/rng.hpp"
#include "test_support.hpp"

namespace cram::test {

using vec = std::vector<double>;
using ivec = std::vector<std::int32_t>;
inline constexpr double nan_v = std::numeric_limits<double>::quiet_NaN();

inline vec random_vec(std::size_t n, std::uint32_t stream, double lo = -1.0, double hi = 1.0) {
    cram::philox_stream rng(2024, stream, 77);
    vec v(n);
    for (auto& x : v) x = lo + (hi - lo) * static_cast<double>(rng.next_uniform());
    return v;
}

inline double dot(const vec& a, const vec& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
}

inline double norm(const vec& a) { return std::sqrt(dot(a, a)); }

// a - c elementwise: what an accumulating output gained over its pre-filled value c.
inline vec minus(const vec& a, double c) {
    vec r = a;
    for (auto& x : r) x -= c;
    return r;
}

// Central differences of loss() with respect to every element of x, compared with `analytic`.
// Never passes on an all-zero gradient.
template <class Loss>
void check_fd(const std::string& what, vec& x, const vec& analytic, Loss&& loss, double eps = 1e-6) {
    REQUIRE(analytic.size() == x.size());
    vec numeric(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double saved = x[i];
        x[i] = saved + eps;
        const double lp = loss();
        x[i] = saved - eps;
        const double lm = loss();
        x[i] = saved;
        numeric[i] = (lp - lm) / (2 * eps);
    }
    INFO("gradient of " << what);
    CRAM_CHECK_CLOSE(analytic, numeric, 1e-7, 1e-6);
    CHECK(norm(numeric) > 1e-3);
}

}  // namespace cram::test
