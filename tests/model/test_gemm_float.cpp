// The fp32 GEMM (with its vector-register tile when built for AVX) against a naive double-precision
// reference: every transpose combination, ragged sizes around the tile edges, beta 0 / 1 / other, and
// a NaN-poisoned C with beta 0 (BLAS semantics: old contents ignored).
#include <cmath>
#include <limits>
#include <vector>

#include "cram/cpu/ops.hpp"
#include "cram/core/rng.hpp"
#include "test_support.hpp"

TEST_CASE("fp32 gemm matches a double reference for all transposes and ragged shapes") {
    cram::philox_stream rng(3, 4, 5);
    auto rnd = [&] { return rng.next_uniform() * 2.0f - 1.0f; };
    for (const bool ta : {false, true})
        for (const bool tb : {false, true})
            for (const auto [m, n, k] : {std::array{1, 1, 1}, std::array{6, 16, 8}, std::array{7, 17, 3},
                                         std::array{13, 33, 29}, std::array{64, 100, 70}})
                for (const float beta : {0.0f, 1.0f, 0.5f}) {
                    CAPTURE(ta);
                    CAPTURE(tb);
                    CAPTURE(m);
                    CAPTURE(n);
                    CAPTURE(k);
                    CAPTURE(beta);
                    std::vector<float> a(std::size_t(m) * k), b(std::size_t(k) * n), c(std::size_t(m) * n);
                    for (auto& x : a) x = rnd();
                    for (auto& x : b) x = rnd();
                    for (auto& x : c) x = beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : rnd();
                    const float alpha = 0.75f;
                    std::vector<double> ref(c.size());
                    for (int i = 0; i < m; ++i)
                        for (int j = 0; j < n; ++j) {
                            double s = 0;
                            for (int kk = 0; kk < k; ++kk) {
                                const double av = ta ? a[std::size_t(kk) * m + i] : a[std::size_t(i) * k + kk];
                                const double bv = tb ? b[std::size_t(j) * k + kk] : b[std::size_t(kk) * n + j];
                                s += av * bv;
                            }
                            const double old = beta == 0.0f ? 0.0 : double(c[std::size_t(i) * n + j]);
                            ref[std::size_t(i) * n + j] = alpha * s + beta * old;
                        }
                    cram::cpu::gemm<float>(ta, tb, m, n, k, alpha, a.data(), ta ? m : k, b.data(), tb ? k : n, beta,
                                           c.data(), n);
                    CRAM_CHECK_CLOSE(c, ref, 1e-5, 1e-5);
                }
}
