// cram/ops/gemm.hpp: the GEMM in double against a naive sum and finite differences for all four
// transpose combinations (strided, NaN-padded storage), the fp32 GEMM (vector tile) against a double
// reference on ragged shapes, and the linear layer's values and gradients.
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cram/core/rng.hpp"
#include "cram/ops/gemm.hpp"
#include "fd_support.hpp"

using namespace cram::test;

// ---- gemm ----------------------------------------------------------------------------------------
// Strided storage: leading dimensions larger than the logical width, with NaN in the padding, so a
// gemm that reads past a row's end fails loudly.
TEST_CASE("gemm: values against a naive sum, and gradients of all four transpose combinations") {
    const int m = 5, n = 7, k = 4, pad = 3;
    const double alpha = 0.8, beta = 0.5;
    for (const bool ta : {false, true})
        for (const bool tb : {false, true}) {
            CAPTURE(ta);
            CAPTURE(tb);
            // storage shapes: A is [m,k] or [k,m]; B is [k,n] or [n,k]
            const int a_rows = ta ? k : m, a_cols = ta ? m : k, lda = a_cols + pad;
            const int b_rows = tb ? n : k, b_cols = tb ? k : n, ldb = b_cols + pad;
            const int ldc = n + pad;
            auto strided = [&](int rows, int cols, int ld, std::uint32_t stream) {
                vec dense = random_vec(std::size_t(rows) * cols, stream), s(std::size_t(rows) * ld, nan_v);
                for (int r = 0; r < rows; ++r)
                    for (int c = 0; c < cols; ++c) s[std::size_t(r) * ld + c] = dense[std::size_t(r) * cols + c];
                return s;
            };
            vec a = strided(a_rows, a_cols, lda, 1), b = strided(b_rows, b_cols, ldb, 2);
            const vec c0 = strided(m, n, ldc, 3);
            const vec r = random_vec(std::size_t(m) * n, 4);
            auto A = [&](int i, int kk) { return ta ? a[std::size_t(kk) * lda + i] : a[std::size_t(i) * lda + kk]; };
            auto B = [&](int kk, int j) { return tb ? b[std::size_t(j) * ldb + kk] : b[std::size_t(kk) * ldb + j]; };

            auto run = [&] {
                vec c = c0;
                cram::ops::gemm<double>(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
                return c;
            };
            const vec c = run();
            for (int i = 0; i < m; ++i) {
                for (int j = 0; j < n; ++j) {
                    double s = 0;
                    for (int kk = 0; kk < k; ++kk) s += A(i, kk) * B(kk, j);
                    const double ref = alpha * s + beta * c0[std::size_t(i) * ldc + j];
                    CHECK(c[std::size_t(i) * ldc + j] == doctest::Approx(ref).epsilon(1e-13));
                }
                for (int j = n; j < ldc; ++j) CHECK(std::isnan(c[std::size_t(i) * ldc + j]));  // padding untouched
            }

            // L = <R, C>; dL/dop(A) = alpha R op(B)^T and dL/dop(B) = alpha op(A)^T R, computed by gemm
            // with the complementary transposes (exactly what linear_backward relies on).
            auto loss = [&] {
                const vec cc = run();
                double s = 0;
                for (int i = 0; i < m; ++i)
                    for (int j = 0; j < n; ++j) s += r[std::size_t(i) * n + j] * cc[std::size_t(i) * ldc + j];
                return s;
            };
            vec da(std::size_t(a_rows) * a_cols), db(std::size_t(b_rows) * b_cols);
            if (!ta)
                cram::ops::gemm<double>(false, !tb, m, k, n, alpha, r.data(), n, b.data(), ldb, 0.0, da.data(), k);
            else
                cram::ops::gemm<double>(tb, true, k, m, n, alpha, b.data(), ldb, r.data(), n, 0.0, da.data(), m);
            if (!tb)
                cram::ops::gemm<double>(!ta, false, k, n, m, alpha, a.data(), lda, r.data(), n, 0.0, db.data(), n);
            else
                cram::ops::gemm<double>(true, ta, n, k, m, alpha, r.data(), n, a.data(), lda, 0.0, db.data(), k);
            // finite differences over the real (unpadded) elements only
            vec a_dense(da.size()), b_dense(db.size());
            for (int i = 0; i < a_rows; ++i)
                for (int j = 0; j < a_cols; ++j) a_dense[std::size_t(i) * a_cols + j] = a[std::size_t(i) * lda + j];
            for (int i = 0; i < b_rows; ++i)
                for (int j = 0; j < b_cols; ++j) b_dense[std::size_t(i) * b_cols + j] = b[std::size_t(i) * ldb + j];
            auto loss_a = [&] {
                for (int i = 0; i < a_rows; ++i)
                    for (int j = 0; j < a_cols; ++j) a[std::size_t(i) * lda + j] = a_dense[std::size_t(i) * a_cols + j];
                return loss();
            };
            check_fd("gemm A", a_dense, da, loss_a);
            loss_a();
            auto loss_b = [&] {
                for (int i = 0; i < b_rows; ++i)
                    for (int j = 0; j < b_cols; ++j) b[std::size_t(i) * ldb + j] = b_dense[std::size_t(i) * b_cols + j];
                return loss();
            };
            check_fd("gemm B", b_dense, db, loss_b);
        }
}

// The fp32 GEMM (with its vector-register tile when built for AVX) against a naive double-precision
// reference: every transpose combination, ragged sizes around the tile edges, beta 0 / 1 / other, and
// a NaN-poisoned C with beta 0 (BLAS semantics: old contents ignored).
// Both fp32 GEMMs: the one programs use (OpenBLAS's when this suite links cram::blas) and cram's own.
TEST_CASE("fp32 gemm matches a double reference for all transposes and ragged shapes") {
    cram::philox_stream rng(3, 4, 5);
    auto rnd = [&] { return rng.next_uniform() * 2.0f - 1.0f; };
    for (const bool own : {false, true})
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
                    CAPTURE(own);
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
                    (own ? cram::ops::detail::own_gemm<float> : cram::ops::gemm<float>)(
                        ta, tb, m, n, k, alpha, a.data(), ta ? m : k, b.data(), tb ? k : n, beta, c.data(), n);
                    CRAM_CHECK_CLOSE(c, ref, 1e-5, 1e-5);
                }
}

// Shapes the model multiplies (tiled over threads in the BLAS build): the same bits on 1, 2 and 3 threads,
// and the double reference within fp32 rounding. Sub-views with leading dimensions larger than the shape,
// as attention's per-head slices of the fused QKV are.
TEST_CASE("fp32 gemm: model-sized shapes match the reference, bit for bit on any thread count") {
    cram::philox_stream rng(5, 6, 7);
    auto rnd = [&] { return rng.next_uniform() * 2.0f - 1.0f; };
    struct shape {
        bool ta, tb;
        int m, n, k;
    };
    for (const shape sh : {shape{false, true, 300, 384, 128}, shape{false, false, 257, 130, 512},
                           shape{true, false, 128, 136, 700}, shape{false, true, 96, 2050, 64}}) {
        CAPTURE(sh.ta);
        CAPTURE(sh.tb);
        CAPTURE(sh.m);
        CAPTURE(sh.n);
        CAPTURE(sh.k);
        const int lda = (sh.ta ? sh.m : sh.k) + 3, ldb = (sh.tb ? sh.k : sh.n) + 5, ldc = sh.n + 7;
        std::vector<float> a(std::size_t(sh.ta ? sh.k : sh.m) * lda), b(std::size_t(sh.tb ? sh.n : sh.k) * ldb);
        for (auto& x : a) x = rnd();
        for (auto& x : b) x = rnd();
        std::vector<double> ref(std::size_t(sh.m) * sh.n);
        for (int i = 0; i < sh.m; ++i)
            for (int j = 0; j < sh.n; ++j) {
                double s = 0;
                for (int kk = 0; kk < sh.k; ++kk)
                    s += double(sh.ta ? a[std::size_t(kk) * lda + i] : a[std::size_t(i) * lda + kk]) *
                         double(sh.tb ? b[std::size_t(j) * ldb + kk] : b[std::size_t(kk) * ldb + j]);
                ref[std::size_t(i) * sh.n + j] = s;
            }
        std::vector<std::vector<float>> results;
        for (const int threads : {1, 2, 3}) {
            cram::set_cpu_threads(threads);
            std::vector<float> c(std::size_t(sh.m) * ldc, -7.0f);  // padding columns must survive
            cram::ops::gemm<float>(sh.ta, sh.tb, sh.m, sh.n, sh.k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(),
                                   ldc);
            results.push_back(c);
        }
        cram::set_cpu_threads(0);
        CHECK(results[0] == results[1]);
        CHECK(results[0] == results[2]);
        std::vector<double> got(ref.size());
        for (int i = 0; i < sh.m; ++i)
            for (int j = 0; j < sh.n; ++j) {
                got[std::size_t(i) * sh.n + j] = results[0][std::size_t(i) * ldc + j];
                for (int p = sh.n; p < ldc; ++p) REQUIRE(results[0][std::size_t(i) * ldc + p] == -7.0f);
            }
        CRAM_CHECK_CLOSE(got, ref, 1e-4, 1e-5);
    }
}

// ---- linear --------------------------------------------------------------------------------------
TEST_CASE("linear forward/backward, with and without bias; the forward with a residual added") {
    const int rows = 4, in_f = 5, out_f = 3;
    for (const bool with_bias : {true, false}) {
        CAPTURE(with_bias);
        vec x = random_vec(rows * in_f, 10), w = random_vec(out_f * in_f, 11), bias = random_vec(out_f, 12);
        const vec r = random_vec(rows * out_f, 13);
        auto forward = [&] {
            vec out(rows * out_f);
            cram::ops::linear_forward<double>(out.data(), x.data(), w.data(), with_bias ? bias.data() : nullptr, rows,
                                              in_f, out_f);
            return out;
        };
        // value: out[r][o] = sum_i x[r][i] w[o][i] + b[o]; with a residual, res[r][o] + that
        const vec out = forward();
        const vec residual = random_vec(rows * out_f, 14);
        vec with_residual(rows * out_f, nan_v);
        cram::ops::linear_residual_forward<double>(with_residual.data(), x.data(), w.data(),
                                                   with_bias ? bias.data() : nullptr, residual.data(), rows, in_f, out_f);
        for (int rr = 0; rr < rows; ++rr)
            for (int o = 0; o < out_f; ++o) {
                double s = with_bias ? bias[o] : 0.0;
                for (int i = 0; i < in_f; ++i) s += x[rr * in_f + i] * w[o * in_f + i];
                CHECK(out[rr * out_f + o] == doctest::Approx(s).epsilon(1e-13));
                CHECK(with_residual[rr * out_f + o] == doctest::Approx(residual[rr * out_f + o] + s).epsilon(1e-13));
            }
        auto loss = [&] { return dot(r, forward()); };
        const double prefill = 0.25;
        vec dx(x.size(), nan_v), dw(w.size(), prefill), db(bias.size(), prefill);
        cram::ops::linear_backward<double>(dx.data(), dw.data(), with_bias ? db.data() : nullptr, r.data(), x.data(),
                                           w.data(), rows, in_f, out_f);
        check_fd("linear input", x, dx, loss);
        check_fd("linear weight", w, minus(dw, prefill), loss);
        if (with_bias) check_fd("linear bias", bias, minus(db, prefill), loss);
        // din may be skipped (first layer)
        vec dw2(w.size(), 0.0);
        cram::ops::linear_backward<double>(nullptr, dw2.data(), nullptr, r.data(), x.data(), w.data(), rows, in_f,
                                           out_f);
        CRAM_CHECK_CLOSE(dw2, minus(dw, prefill), 1e-14, 1e-12);
    }
}
