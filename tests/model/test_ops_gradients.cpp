// Finite-difference checks, in double, of every CPU op on its own: for a random upstream gradient R,
// the scalar L = <R, op(inputs)> is differentiated by central differences with respect to every input
// element and compared with what the op's backward computes. Accumulating outputs are pre-filled with
// a non-zero value (and overwritten ones with NaN) so "+=" versus "=" is checked too.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cram/core/rng.hpp"
#include "cram/cpu/ops.hpp"
#include "test_support.hpp"

namespace {

using vec = std::vector<double>;
using ivec = std::vector<std::int32_t>;
constexpr double nan_v = std::numeric_limits<double>::quiet_NaN();

vec random_vec(std::size_t n, std::uint32_t stream, double lo = -1.0, double hi = 1.0) {
    cram::philox_stream rng(2024, stream, 77);
    vec v(n);
    for (auto& x : v) x = lo + (hi - lo) * static_cast<double>(rng.next_uniform());
    return v;
}

double dot(const vec& a, const vec& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
}

double norm(const vec& a) { return std::sqrt(dot(a, a)); }

vec minus(const vec& a, double c) {
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

}  // namespace

// ---- gemm -----------------------------------------------------------------------------------------
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
                cram::cpu::gemm<double>(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
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
                cram::cpu::gemm<double>(false, !tb, m, k, n, alpha, r.data(), n, b.data(), ldb, 0.0, da.data(), k);
            else
                cram::cpu::gemm<double>(tb, true, k, m, n, alpha, b.data(), ldb, r.data(), n, 0.0, da.data(), m);
            if (!tb)
                cram::cpu::gemm<double>(!ta, false, k, n, m, alpha, a.data(), lda, r.data(), n, 0.0, db.data(), n);
            else
                cram::cpu::gemm<double>(true, ta, n, k, m, alpha, r.data(), n, a.data(), lda, 0.0, db.data(), k);
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

// ---- linear ---------------------------------------------------------------------------------------
TEST_CASE("linear forward/backward, with and without bias") {
    const int rows = 4, in_f = 5, out_f = 3;
    for (const bool with_bias : {true, false}) {
        CAPTURE(with_bias);
        vec x = random_vec(rows * in_f, 10), w = random_vec(out_f * in_f, 11), bias = random_vec(out_f, 12);
        const vec r = random_vec(rows * out_f, 13);
        auto forward = [&] {
            vec out(rows * out_f);
            cram::cpu::linear_forward<double>(out.data(), x.data(), w.data(), with_bias ? bias.data() : nullptr, rows,
                                              in_f, out_f);
            return out;
        };
        // value: out[r][o] = sum_i x[r][i] w[o][i] + b[o]
        const vec out = forward();
        for (int rr = 0; rr < rows; ++rr)
            for (int o = 0; o < out_f; ++o) {
                double s = with_bias ? bias[o] : 0.0;
                for (int i = 0; i < in_f; ++i) s += x[rr * in_f + i] * w[o * in_f + i];
                CHECK(out[rr * out_f + o] == doctest::Approx(s).epsilon(1e-13));
            }
        auto loss = [&] { return dot(r, forward()); };
        const double prefill = 0.25;
        vec dx(x.size(), nan_v), dw(w.size(), prefill), db(bias.size(), prefill);
        cram::cpu::linear_backward<double>(dx.data(), dw.data(), with_bias ? db.data() : nullptr, r.data(), x.data(),
                                           w.data(), rows, in_f, out_f);
        check_fd("linear input", x, dx, loss);
        check_fd("linear weight", w, minus(dw, prefill), loss);
        if (with_bias) check_fd("linear bias", bias, minus(db, prefill), loss);
        // din may be skipped (first layer)
        vec dw2(w.size(), 0.0);
        cram::cpu::linear_backward<double>(nullptr, dw2.data(), nullptr, r.data(), x.data(), w.data(), rows, in_f,
                                           out_f);
        CRAM_CHECK_CLOSE(dw2, minus(dw, prefill), 1e-14, 1e-12);
    }
}

// ---- LayerNorm ------------------------------------------------------------------------------------
TEST_CASE("layernorm backward: input, weight and bias gradients (all accumulate)") {
    const int rows = 3, cols = 7;
    const double eps = 1e-5;
    vec x = random_vec(rows * cols, 20, -2, 2), w = random_vec(cols, 21, 0.5, 1.5), b = random_vec(cols, 22);
    const vec r = random_vec(rows * cols, 23);
    auto loss = [&] {
        vec out(rows * cols), mean(rows), rstd(rows);
        cram::cpu::layernorm_forward<double>(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), rows,
                                             cols, eps);
        return dot(r, out);
    };
    vec out(rows * cols), mean(rows), rstd(rows);
    cram::cpu::layernorm_forward<double>(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), rows,
                                         cols, eps);
    const double prefill = -0.5;
    vec dx(x.size(), prefill), dw(w.size(), prefill), db(b.size(), prefill);
    cram::cpu::layernorm_backward<double>(dx.data(), dw.data(), db.data(), r.data(), x.data(), mean.data(),
                                          rstd.data(), w.data(), rows, cols);
    check_fd("layernorm input", x, minus(dx, prefill), loss);
    check_fd("layernorm weight", w, minus(dw, prefill), loss);
    check_fd("layernorm bias", b, minus(db, prefill), loss);
}

// ---- attention ------------------------------------------------------------------------------------
TEST_CASE("attention backward, with and without key lengths") {
    const int batch = 2, seq = 4, heads = 2, head_dim = 3, hidden = heads * head_dim;
    const ivec lengths = {4, 2};
    for (const bool use_lengths : {false, true}) {
        CAPTURE(use_lengths);
        const std::int32_t* len = use_lengths ? lengths.data() : nullptr;
        vec qkv = random_vec(std::size_t(batch) * seq * 3 * hidden, 30, -1.5, 1.5);
        const vec r = random_vec(std::size_t(batch) * seq * hidden, 31);
        vec probs(std::size_t(batch) * heads * seq * seq);
        auto forward = [&] {
            vec out(std::size_t(batch) * seq * hidden);
            cram::cpu::attention_forward<double>(out.data(), probs.data(), qkv.data(), len, batch, seq, heads,
                                                 head_dim);
            return out;
        };
        auto loss = [&] { return dot(r, forward()); };
        forward();
        // probabilities: rows sum to one, masked keys get exactly zero
        for (int bb = 0; bb < batch; ++bb)
            for (int h = 0; h < heads; ++h)
                for (int i = 0; i < seq; ++i) {
                    double s = 0;
                    for (int j = 0; j < seq; ++j) {
                        const double p = probs[((std::size_t(bb) * heads + h) * seq + i) * seq + j];
                        s += p;
                        if (use_lengths && j >= lengths[std::size_t(bb)]) CHECK(p == 0.0);
                    }
                    CHECK(s == doctest::Approx(1.0).epsilon(1e-14));
                }
        vec dqkv(qkv.size(), nan_v);
        cram::cpu::attention_backward<double>(dqkv.data(), r.data(), qkv.data(), probs.data(), len, batch, seq, heads,
                                              head_dim);
        check_fd("attention qkv", qkv, dqkv, loss);
    }
}

// ---- elementwise ----------------------------------------------------------------------------------
TEST_CASE("gelu, gelu-glu and tanh backward") {
    const int n = 24;
    vec x = random_vec(n, 40, -3, 3);
    const vec r = random_vec(n, 41);
    {
        auto loss = [&] {
            vec out(n);
            cram::cpu::gelu_forward<double>(out.data(), x.data(), n);
            return dot(r, out);
        };
        vec dx(n, nan_v);
        cram::cpu::gelu_backward<double>(dx.data(), r.data(), x.data(), n);
        check_fd("gelu", x, dx, loss);
    }
    {
        const int rows = 3, inner = 4;  // in: [rows, 2*inner] = [x | gate]
        vec in = random_vec(rows * 2 * inner, 42, -3, 3);
        const vec rr = random_vec(rows * inner, 43);
        auto loss = [&] {
            vec out(rows * inner);
            cram::cpu::glu_forward<double>(out.data(), in.data(), rows, inner);
            return dot(rr, out);
        };
        vec din(in.size(), nan_v);
        cram::cpu::glu_backward<double>(din.data(), rr.data(), in.data(), rows, inner);
        check_fd("gelu-glu", in, din, loss);
    }
    {
        auto loss = [&] {
            vec out(n);
            cram::cpu::tanh_forward<double>(out.data(), x.data(), n);
            return dot(r, out);
        };
        vec y(n), dx(n, nan_v);
        cram::cpu::tanh_forward<double>(y.data(), x.data(), n);
        cram::cpu::tanh_backward<double>(dx.data(), r.data(), y.data(), n);
        check_fd("tanh", x, dx, loss);
    }
}

TEST_CASE("dropout: backward reuses the forward mask; mask is Philox-addressed; keep rate and scale") {
    const int n = 37;  // not a multiple of 4: the last Philox block is partial
    const float p = 0.3f;
    const std::uint64_t seed = 0x1234567890abcdefull;
    const std::uint32_t stream = 5;
    vec x = random_vec(n, 50);
    const vec r = random_vec(n, 51);
    auto loss = [&] {
        vec out(n);
        cram::cpu::dropout_forward<double>(out.data(), x.data(), n, p, seed, stream);
        return dot(r, out);
    };
    vec dx(n, nan_v);
    cram::cpu::dropout_backward<double>(dx.data(), r.data(), n, p, seed, stream);
    check_fd("dropout", x, dx, loss);

    // The documented mask: element i kept iff word i%4 of philox(i/4, 0, stream, 1; seed) >= p * 2^32
    // (the contract the CUDA kernel must meet), kept values scaled by 1/(1-p).
    vec out(n);
    cram::cpu::dropout_forward<double>(out.data(), x.data(), n, p, seed, stream);
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
    cram::cpu::dropout_forward<float>(ones.data(), ones.data(), big, p, 9, 2);
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
    cram::cpu::dropout_forward<float>(y.data(), y.data(), 8, 0.0f, 1, 1);
    for (float v : y) CHECK(v == 2.0f);
}

// ---- embeddings -----------------------------------------------------------------------------------
TEST_CASE("embedding backward: learned positions, scaled sinusoidal positions, token types") {
    const int batch = 2, seq = 3, hidden = 4, vocab = 6, types = 3;
    const ivec ids = {1, 4, 1, 5, 0, 4};  // repeats: gradients of a row add up
    const ivec type_ids = {0, 2, 1, 1, 0, 2};
    const vec r = random_vec(std::size_t(batch) * seq * hidden, 60);

    SUBCASE("learned positions") {
        vec word = random_vec(vocab * hidden, 61), pos = random_vec(seq * hidden, 62);
        auto loss = [&] {
            vec out(std::size_t(batch) * seq * hidden);
            cram::cpu::embedding_forward<double>(out.data(), ids.data(), nullptr, word.data(), pos.data(), nullptr,
                                                 nullptr, batch, seq, hidden, vocab, 0);
            return dot(r, out);
        };
        const double pf = 0.125;
        vec dword(word.size(), pf), dpos(pos.size(), pf);
        cram::cpu::embedding_backward<double>(dword.data(), dpos.data(), nullptr, nullptr, r.data(), ids.data(),
                                              nullptr, pos.data(), nullptr, batch, seq, hidden);
        check_fd("word embedding", word, minus(dword, pf), loss);
        check_fd("learned positions", pos, minus(dpos, pf), loss);
    }
    SUBCASE("scaled sinusoidal positions") {
        vec word = random_vec(vocab * hidden, 63), table(seq * hidden), scale = {0.7};
        cram::cpu::sinusoidal_table<double>(table.data(), seq, hidden);
        auto loss = [&] {
            vec out(std::size_t(batch) * seq * hidden);
            cram::cpu::embedding_forward<double>(out.data(), ids.data(), nullptr, word.data(), table.data(),
                                                 scale.data(), nullptr, batch, seq, hidden, vocab, 0);
            return dot(r, out);
        };
        const double pf = 0.125;
        vec dword(word.size(), pf), dscale = {pf};
        cram::cpu::embedding_backward<double>(dword.data(), nullptr, dscale.data(), nullptr, r.data(), ids.data(),
                                              nullptr, table.data(), scale.data(), batch, seq, hidden);
        check_fd("word embedding (sinusoidal)", word, minus(dword, pf), loss);
        check_fd("position scale", scale, minus(dscale, pf), loss);
    }
    SUBCASE("token types, given and defaulted to type 0") {
        for (const bool given : {true, false}) {
            CAPTURE(given);
            const std::int32_t* tids = given ? type_ids.data() : nullptr;
            vec word = random_vec(vocab * hidden, 64), pos = random_vec(seq * hidden, 65),
                type = random_vec(types * hidden, 66);
            auto loss = [&] {
                vec out(std::size_t(batch) * seq * hidden);
                cram::cpu::embedding_forward<double>(out.data(), ids.data(), tids, word.data(), pos.data(), nullptr,
                                                     type.data(), batch, seq, hidden, vocab, types);
                return dot(r, out);
            };
            vec dword(word.size(), 0.0), dpos(pos.size(), 0.0), dtype(type.size(), 0.0);
            cram::cpu::embedding_backward<double>(dword.data(), dpos.data(), nullptr, dtype.data(), r.data(),
                                                  ids.data(), tids, pos.data(), nullptr, batch, seq, hidden);
            check_fd("token-type table", type, dtype, loss);
            check_fd("word embedding (types)", word, dword, loss);
            if (!given)  // only row 0 is used
                for (int i = hidden; i < types * hidden; ++i) CHECK(dtype[std::size_t(i)] == 0.0);
        }
    }
}

// ---- gather / scatter -----------------------------------------------------------------------------
TEST_CASE("gather_rows backward is scatter_add_rows (duplicates accumulate)") {
    const int rows = 5, cols = 3;
    const ivec pick = {2, 0, 2, 4};
    vec in = random_vec(rows * cols, 70);
    const vec r = random_vec(pick.size() * cols, 71);
    auto loss = [&] {
        vec out(pick.size() * cols);
        cram::cpu::gather_rows<double>(out.data(), in.data(), pick.data(), cram::index_t(pick.size()), cols);
        return dot(r, out);
    };
    const double pf = 1.5;
    vec din(in.size(), pf);
    cram::cpu::scatter_add_rows<double>(din.data(), r.data(), pick.data(), cram::index_t(pick.size()), cols);
    check_fd("gather", in, minus(din, pf), loss);
    for (int c = 0; c < cols; ++c) {
        CHECK(din[std::size_t(1 * cols + c)] == pf);  // row 1 and 3 never gathered
        CHECK(din[std::size_t(3 * cols + c)] == pf);
    }
}

// ---- losses ---------------------------------------------------------------------------------------
TEST_CASE("cross_entropy gradient with ignored rows and a loss scale") {
    const int n = 5, classes = 4;
    const ivec labels = {1, cram::cpu::ignore_label, 3, 0, cram::cpu::ignore_label};
    const double dscale = 0.7;
    vec logits = random_vec(n * classes, 80, -3, 3);
    auto loss = [&] { return dscale * cram::cpu::cross_entropy<double>(nullptr, logits.data(), labels.data(), n,
                                                                        classes, dscale); };
    vec dl(logits.size(), nan_v);
    const double total = cram::cpu::cross_entropy<double>(dl.data(), logits.data(), labels.data(), n, classes, dscale);
    check_fd("cross_entropy logits", logits, dl, loss);
    for (int c = 0; c < classes; ++c) {
        CHECK(dl[std::size_t(1 * classes + c)] == 0.0);
        CHECK(dl[std::size_t(4 * classes + c)] == 0.0);
    }
    // the returned sum: -log softmax at the label, over the three labelled rows only
    double ref = 0;
    for (int row : {0, 2, 3}) {
        double z = 0;
        for (int c = 0; c < classes; ++c) z += std::exp(logits[std::size_t(row * classes + c)]);
        ref += std::log(z) - logits[std::size_t(row * classes + labels[std::size_t(row)])];
    }
    CHECK(total == doctest::Approx(ref).epsilon(1e-13));
    // out-of-range labels are reported, not read out of bounds
    const ivec bad = {4, 0, 0, 0, 0};
    CHECK_THROWS_AS(cram::cpu::cross_entropy<double>(nullptr, logits.data(), bad.data(), n, classes, 1.0),
                    cram::error);
}

TEST_CASE("squared_error gradient") {
    const int n = 6;
    vec pred = random_vec(n, 90, -2, 2);
    const std::vector<float> target = {0.5f, -1.0f, 2.0f, 0.0f, 1.25f, -0.75f};
    const double dscale = 1.0 / 3;
    auto loss = [&] { return dscale * cram::cpu::squared_error<double>(nullptr, pred.data(), target.data(), n, 1.0); };
    vec dp(n, nan_v);
    const double total = cram::cpu::squared_error<double>(dp.data(), pred.data(), target.data(), n, dscale);
    check_fd("squared_error", pred, dp, loss);
    double ref = 0;
    for (int i = 0; i < n; ++i) ref += 0.5 * (pred[std::size_t(i)] - target[std::size_t(i)]) *
                                       (pred[std::size_t(i)] - target[std::size_t(i)]);
    CHECK(total == doctest::Approx(ref).epsilon(1e-13));
}

// More than 128 rows, so the chunked loop runs three times (128 + 128 + 44), with ignored rows.
TEST_CASE("decoder_cross_entropy: value and gradients across row chunks, with and without bias") {
    const int n = 300, h = 5, vocab = 7;
    ivec targets(n);
    for (int i = 0; i < n; ++i) targets[std::size_t(i)] = (i % 11 == 3) ? cram::cpu::ignore_label : (i * 5 + 2) % vocab;
    const double dscale = 1.0 / 250;
    for (const bool with_bias : {true, false}) {
        CAPTURE(with_bias);
        vec hid = random_vec(std::size_t(n) * h, 100, -1.5, 1.5), w = random_vec(vocab * h, 101, -1.5, 1.5),
            bias = random_vec(vocab, 102);
        const double* bp = with_bias ? bias.data() : nullptr;
        auto loss = [&] {
            return dscale * cram::cpu::decoder_cross_entropy<double>(nullptr, nullptr, nullptr, hid.data(), w.data(),
                                                                     bp, targets.data(), n, h, vocab, 1.0);
        };
        // value against explicit logits and log-sum-exp
        double ref = 0;
        for (int i = 0; i < n; ++i) {
            const std::int32_t y = targets[std::size_t(i)];
            if (y == cram::cpu::ignore_label) continue;
            vec z(vocab);
            for (int v = 0; v < vocab; ++v) {
                z[std::size_t(v)] = with_bias ? bias[std::size_t(v)] : 0.0;
                for (int d = 0; d < h; ++d) z[std::size_t(v)] += hid[std::size_t(i) * h + d] * w[std::size_t(v) * h + d];
            }
            double s = 0;
            for (double zz : z) s += std::exp(zz);
            ref += std::log(s) - z[std::size_t(y)];
        }
        CHECK(loss() / dscale == doctest::Approx(ref).epsilon(1e-12));

        const double pf = 0.0625;
        vec dh(hid.size(), nan_v), dw(w.size(), pf), db(bias.size(), pf);
        cram::cpu::decoder_cross_entropy<double>(dh.data(), dw.data(), with_bias ? db.data() : nullptr, hid.data(),
                                                 w.data(), bp, targets.data(), n, h, vocab, dscale);
        check_fd("decoder hidden", hid, dh, loss);
        check_fd("decoder weight", w, minus(dw, pf), loss);
        if (with_bias) check_fd("decoder bias", bias, minus(db, pf), loss);
        for (int d = 0; d < h; ++d) CHECK(dh[std::size_t(3 * h + d)] == 0.0);  // row 3 is ignored
    }
}

TEST_CASE("sum_squares and scale_inplace") {
    const std::vector<float> x = {3.0f, -4.0f, 12.0f};
    CHECK(cram::cpu::sum_squares(x.data(), 3) == 169.0);
    std::vector<float> y = x;
    cram::cpu::scale_inplace(y.data(), 0.5f, 3);
    CHECK(y[2] == 6.0f);
}
