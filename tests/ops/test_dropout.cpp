// cram/ops/dropout.hpp: backward reuses the forward mask (finite differences), the documented Philox
// addressing of the mask (the contract the CUDA kernel must meet), keep rate, scale and p = 0.
#include <cmath>
#include <cstdint>
#include <vector>

#include "cram/core/rng.hpp"
#include "cram/ops/dropout.hpp"
#include "fd_support.hpp"

using namespace cram::test;

TEST_CASE("dropout: backward reuses the forward mask; mask is Philox-addressed; keep rate and scale") {
    const int n = 37;  // not a multiple of 4: the last Philox block is partial
    const float p = 0.3f;
    const std::uint64_t seed = 0x1234567890abcdefull;
    const std::uint32_t stream = 5;
    vec x = random_vec(n, 50);
    const vec r = random_vec(n, 51);
    auto loss = [&] {
        vec out(n);
        cram::ops::dropout_forward<double>(out.data(), x.data(), n, p, seed, stream);
        return dot(r, out);
    };
    vec dx(n, nan_v);
    cram::ops::dropout_backward<double>(dx.data(), r.data(), n, p, seed, stream);
    check_fd("dropout", x, dx, loss);

    // The documented mask: element i kept iff word i%4 of philox(i/4, 0, stream, 1; seed) >= p * 2^32
    // (the contract the CUDA kernel must meet), kept values scaled by 1/(1-p).
    vec out(n);
    cram::ops::dropout_forward<double>(out.data(), x.data(), n, p, seed, stream);
    int kept = 0;
    for (int i = 0; i < n; ++i) {
        const auto bits = cram::philox4x32_10(std::uint32_t(i / 4), 0, stream, 1, std::uint32_t(seed),
                                              std::uint32_t(seed >> 32))
                              .v[i % 4];
        const bool keep = double(bits) >= double(p) * 4294967296.0;
        kept += keep;
        CHECK(out[std::size_t(i)] == doctest::Approx(keep ? x[std::size_t(i)] / (1.0 - double(p)) : 0.0));
    }
    CHECK(kept > 0);
    CHECK(kept < n);

    // Statistics on a long vector, in place (the model drops out in place): keep rate 1-p within 5 sd.
    const int big = 200000;
    std::vector<float> ones(big, 1.0f);
    cram::ops::dropout_forward<float>(ones.data(), ones.data(), big, p, 9, 2);
    long k = 0;
    for (float v : ones) {
        if (v != 0.0f) {
            ++k;
            REQUIRE(v == doctest::Approx(1.0 / (1.0 - 0.3)).epsilon(1e-6));
        }
    }
    const double rate = double(k) / big, sd = std::sqrt(0.3 * 0.7 / big);
    CHECK(std::abs(rate - 0.7) < 5 * sd);
    // p = 0 keeps everything unscaled
    std::vector<float> y(8, 2.0f);
    cram::ops::dropout_forward<float>(y.data(), y.data(), 8, 0.0f, 1, 1);
    for (float v : y) CHECK(v == 2.0f);
}
