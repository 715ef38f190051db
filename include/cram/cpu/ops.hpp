// The CPU backend: every operation of the model, forward and backward, as plain readable C++.
// It is the correctness oracle for the CUDA backend (same names, same argument order) and runs in
// double for finite-difference gradient checks. Layout conventions, shared with the CUDA backend:
//   - matrices are row-major; a linear layer's weight is [out, in] (PyTorch's), y = x W^T + b;
//   - a fused QKV row is [q(hidden) | k(hidden) | v(hidden)], head h owns columns h*head_dim..;
//   - parameter gradients accumulate (+=), so gradient accumulation costs nothing; activation
//     gradients overwrite unless the comment says "accumulates".
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numbers>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/platform.hpp"
#include "cram/core/rng.hpp"
#include "cram/core/thread_pool.hpp"

namespace cram::cpu {

using cram::index_t;

// ---- GEMM -----------------------------------------------------------------------------------------
namespace detail {
// C[rows, cols] tile = alpha * sum_k A(i, k) * B[k, j] + beta * C, with MR x NR accumulators held in
// registers for the whole k loop (one load of B per MR multiply-adds instead of a load and a store of C).
template <class T, int MR, int NR>
inline void gemm_tile(index_t i0, index_t j0, index_t k, T alpha, const T* a, index_t a_row, index_t a_col,
                      const T* b, index_t ldb, T beta, T* c, index_t ldc) {
    T acc[MR][NR] = {};
    for (index_t kk = 0; kk < k; ++kk) {
        const T* brow = b + kk * ldb + j0;
        for (int r = 0; r < MR; ++r) {
            const T av = a[(i0 + r) * a_row + kk * a_col];
            for (int j = 0; j < NR; ++j) acc[r][j] += av * brow[j];
        }
    }
    for (int r = 0; r < MR; ++r) {
        T* crow = c + (i0 + r) * ldc + j0;
        for (int j = 0; j < NR; ++j) crow[j] = (beta == T(0) ? T(0) : beta * crow[j]) + alpha * acc[r][j];
    }
}

#if defined(__GNUC__) && defined(__AVX__)
#define CRAM_CPU_GEMM_VECTOR_TILE 1
// fp32 fast path: a 6 x 16 tile in twelve 8-wide vector registers (GCC/Clang vector extensions; AVX
// only: without it the tile spills and runs slower than the generic one). Build with -march=native
// or -march=x86-64-v3 to get it (the project's own targets do, see CRAM_NATIVE).
typedef float v8f __attribute__((vector_size(32), aligned(4)));
template <>
inline void gemm_tile<float, 6, 16>(index_t i0, index_t j0, index_t k, float alpha, const float* a, index_t a_row,
                                    index_t a_col, const float* b, index_t ldb, float beta, float* c, index_t ldc) {
    v8f acc[6][2] = {};
    const float* ap = a + i0 * a_row;
    for (index_t kk = 0; kk < k; ++kk) {
        const float* brow = b + kk * ldb + j0;
        v8f b0, b1;
        std::memcpy(&b0, brow, sizeof b0);
        std::memcpy(&b1, brow + 8, sizeof b1);
        const float* ak = ap + kk * a_col;
        for (int r = 0; r < 6; ++r) {
            const float av = ak[r * a_row];
            acc[r][0] += av * b0;
            acc[r][1] += av * b1;
        }
    }
    for (int r = 0; r < 6; ++r) {
        float* crow = c + (i0 + r) * ldc + j0;
        for (int h = 0; h < 2; ++h) {
            v8f old;
            std::memcpy(&old, crow + 8 * h, sizeof old);
            const v8f out = (beta == 0.0f ? v8f{} : beta * old) + alpha * acc[r][h];
            std::memcpy(crow + 8 * h, &out, sizeof out);
        }
    }
}
#endif

// The same for a ragged edge tile (any rows <= MR, cols <= NR).
template <class T>
inline void gemm_edge(index_t i0, index_t i1, index_t j0, index_t j1, index_t k, T alpha, const T* a, index_t a_row,
                      index_t a_col, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
    for (index_t i = i0; i < i1; ++i)
        for (index_t j = j0; j < j1; ++j) {
            T acc = 0;
            for (index_t kk = 0; kk < k; ++kk) acc += a[i * a_row + kk * a_col] * b[kk * ldb + j];
            T& cij = c[i * ldc + j];
            cij = (beta == T(0) ? T(0) : beta * cij) + alpha * acc;
        }
}
}  // namespace detail

// C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, row-major with leading dimensions.
// op(A) = A ([m,k]) or A^T (A stored [k,m]); likewise B. Rows of C are split over threads and every
// output element is summed in the same order (k ascending), so the result does not depend on the
// thread count. beta == 0 ignores C's old contents (NaN included), as BLAS does.
template <class T>
void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
          const T* b, index_t ldb, T beta, T* c, index_t ldc) {
    if (m <= 0 || n <= 0) return;
    // Bring B to [k, n] contiguous so the micro-kernel reads unit-stride rows.
    std::vector<T> b_kn;
    const T* bk = b;
    index_t ldbk = ldb;
    if (trans_b) {
        b_kn.resize(static_cast<std::size_t>(k * n));
        for (index_t j = 0; j < n; ++j)
            for (index_t kk = 0; kk < k; ++kk) b_kn[static_cast<std::size_t>(kk * n + j)] = b[j * ldb + kk];
        bk = b_kn.data();
        ldbk = n;
    }
    const index_t a_row = trans_a ? 1 : lda, a_col = trans_a ? lda : 1;  // A(i, kk) = a[i*a_row + kk*a_col]
#ifdef CRAM_CPU_GEMM_VECTOR_TILE
    constexpr int mr = 6, nr = 16;
#else
    constexpr int mr = 4, nr = 16;
#endif
    const index_t row_blocks = (m + mr - 1) / mr;
    parallel_for(row_blocks, static_cast<double>(mr) * static_cast<double>(n) * static_cast<double>(k),
                 [&](index_t rb0, index_t rb1) {
                     const index_t i_begin = rb0 * mr, i_end = std::min(m, rb1 * mr);
                     const index_t i_full = i_begin + (i_end - i_begin) / mr * mr, j_full = n / nr * nr;
                     for (index_t j0 = 0; j0 < j_full; j0 += nr) {
                         for (index_t i0 = i_begin; i0 < i_full; i0 += mr)
                             detail::gemm_tile<T, mr, nr>(i0, j0, k, alpha, a, a_row, a_col, bk, ldbk, beta, c, ldc);
                         detail::gemm_edge(i_full, i_end, j0, j0 + nr, k, alpha, a, a_row, a_col, bk, ldbk, beta, c,
                                           ldc);
                     }
                     detail::gemm_edge(i_begin, i_end, j_full, n, k, alpha, a, a_row, a_col, bk, ldbk, beta, c, ldc);
                 });
}

// ---- linear ---------------------------------------------------------------------------------------
// out[rows, out_f] = in[rows, in_f] * w[out_f, in_f]^T (+ bias)
template <class T>
void linear_forward(T* out, const T* in, const T* w, const T* bias, index_t rows, index_t in_f, index_t out_f) {
    gemm<T>(false, true, rows, out_f, in_f, T(1), in, in_f, w, in_f, T(0), out, out_f);
    if (bias)
        for (index_t r = 0; r < rows; ++r)
            for (index_t o = 0; o < out_f; ++o) out[r * out_f + o] += bias[o];
}

// din = dout * w (overwrites; skipped when din is null); dw += dout^T * in; dbias += column sums of dout.
template <class T>
void linear_backward(T* din, T* dw, T* dbias, const T* dout, const T* in, const T* w, index_t rows, index_t in_f,
                     index_t out_f) {
    if (din) gemm<T>(false, false, rows, in_f, out_f, T(1), dout, out_f, w, in_f, T(0), din, in_f);
    gemm<T>(true, false, out_f, in_f, rows, T(1), dout, out_f, in, in_f, T(1), dw, in_f);
    if (dbias)
        for (index_t r = 0; r < rows; ++r)
            for (index_t o = 0; o < out_f; ++o) dbias[o] += dout[r * out_f + o];
}

// ---- elementwise ----------------------------------------------------------------------------------
template <class T>
void add(T* out, const T* a, const T* b, index_t n) {
    for (index_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}
template <class T>
void add_inplace(T* acc, const T* x, index_t n) {
    for (index_t i = 0; i < n; ++i) acc[i] += x[i];
}
template <class T>
void scale_inplace(T* x, T s, index_t n) {
    for (index_t i = 0; i < n; ++i) x[i] *= s;
}

// Exact (erf) GELU, as BERT and the cramming reference use.
template <class T>
T gelu(T x) {
    return T(0.5) * x * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2)));
}
template <class T>
T gelu_grad(T x) {
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2)));
    const T pdf = std::exp(T(-0.5) * x * x) * T(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
    return cdf + x * pdf;
}

template <class T>
void gelu_forward(T* out, const T* in, index_t n) {
    for (index_t i = 0; i < n; ++i) out[i] = gelu(in[i]);
}
template <class T>
void gelu_backward(T* din, const T* dout, const T* in, index_t n) {
    for (index_t i = 0; i < n; ++i) din[i] = dout[i] * gelu_grad(in[i]);
}

// GELU-GLU: in[rows, 2*inner] = [x | gate]; out[rows, inner] = x * GELU(gate).
template <class T>
void glu_forward(T* out, const T* in, index_t rows, index_t inner) {
    for (index_t r = 0; r < rows; ++r) {
        const T* x = in + r * 2 * inner;
        const T* g = x + inner;
        for (index_t i = 0; i < inner; ++i) out[r * inner + i] = x[i] * gelu(g[i]);
    }
}
template <class T>
void glu_backward(T* din, const T* dout, const T* in, index_t rows, index_t inner) {
    for (index_t r = 0; r < rows; ++r) {
        const T* x = in + r * 2 * inner;
        const T* g = x + inner;
        T* dx = din + r * 2 * inner;
        T* dg = dx + inner;
        for (index_t i = 0; i < inner; ++i) {
            const T d = dout[r * inner + i];
            dx[i] = d * gelu(g[i]);
            dg[i] = d * x[i] * gelu_grad(g[i]);
        }
    }
}

template <class T>
void tanh_forward(T* out, const T* in, index_t n) {
    for (index_t i = 0; i < n; ++i) out[i] = std::tanh(in[i]);
}
// Uses the forward output: d tanh = 1 - y^2.
template <class T>
void tanh_backward(T* din, const T* dout, const T* out, index_t n) {
    for (index_t i = 0; i < n; ++i) din[i] = dout[i] * (T(1) - out[i] * out[i]);
}

// Inverted dropout with a Philox mask addressed by (seed, stream): backward regenerates the mask
// instead of storing it. Element i is kept when its 32-bit draw is >= p * 2^32.
inline bool dropout_keep(const philox_result& r, index_t i, std::uint32_t threshold) {
    return r.v[i & 3] >= threshold;
}
inline std::uint32_t dropout_threshold(float p) {
    return static_cast<std::uint32_t>(std::min(4294967295.0, static_cast<double>(p) * 4294967296.0));
}
template <class T>
void dropout_forward(T* out, const T* in, index_t n, float p, std::uint64_t seed, std::uint32_t stream) {
    const std::uint32_t th = dropout_threshold(p);
    const T scale = T(1) / (T(1) - T(p));
    const auto k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
    for (index_t i = 0; i < n; i += 4) {
        const philox_result r = philox4x32_10(static_cast<std::uint32_t>(i >> 2), 0u, stream, 1u, k0, k1);
        for (index_t j = i; j < std::min(n, i + 4); ++j) out[j] = dropout_keep(r, j, th) ? in[j] * scale : T(0);
    }
}
template <class T>
void dropout_backward(T* din, const T* dout, index_t n, float p, std::uint64_t seed, std::uint32_t stream) {
    dropout_forward(din, dout, n, p, seed, stream);  // the same mask and scale
}

// ---- LayerNorm ------------------------------------------------------------------------------------
// Saves per-row mean and reciprocal standard deviation for the backward pass.
template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* in, const T* w, const T* b, index_t rows, index_t cols,
                       T eps) {
    parallel_for(rows, 8.0 * static_cast<double>(cols), [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            const T* x = in + r * cols;
            T mu = 0;
            for (index_t i = 0; i < cols; ++i) mu += x[i];
            mu /= T(cols);
            T var = 0;
            for (index_t i = 0; i < cols; ++i) var += (x[i] - mu) * (x[i] - mu);
            var /= T(cols);
            const T rs = T(1) / std::sqrt(var + eps);
            for (index_t i = 0; i < cols; ++i) out[r * cols + i] = (x[i] - mu) * rs * w[i] + b[i];
            mean[r] = mu;
            rstd[r] = rs;
        }
    });
}

// din accumulates (residual streams add their gradient); dw and db accumulate.
template <class T>
void layernorm_backward(T* din, T* dw, T* db, const T* dout, const T* in, const T* mean, const T* rstd, const T* w,
                        index_t rows, index_t cols) {
    for (index_t r = 0; r < rows; ++r) {
        const T* x = in + r * cols;
        const T* dy = dout + r * cols;
        const T mu = mean[r], rs = rstd[r];
        T mean_dxhat = 0, mean_dxhat_xhat = 0;
        for (index_t i = 0; i < cols; ++i) {
            const T xhat = (x[i] - mu) * rs;
            const T dxhat = dy[i] * w[i];
            mean_dxhat += dxhat;
            mean_dxhat_xhat += dxhat * xhat;
            dw[i] += dy[i] * xhat;
            db[i] += dy[i];
        }
        mean_dxhat /= T(cols);
        mean_dxhat_xhat /= T(cols);
        for (index_t i = 0; i < cols; ++i) {
            const T xhat = (x[i] - mu) * rs;
            din[r * cols + i] += rs * (dy[i] * w[i] - mean_dxhat - xhat * mean_dxhat_xhat);
        }
    }
}

// ---- attention ------------------------------------------------------------------------------------
// Non-causal multi-head attention over a fused QKV: out = softmax(Q K^T / sqrt(head_dim)) V per head.
// probs [batch, heads, seq, seq] is saved for backward. Keys at or beyond lengths[b] (when given) get
// zero weight; a sequence must keep at least one key.
template <class T>
void attention_forward(T* out, T* probs, const T* qkv, const std::int32_t* lengths, index_t batch, index_t seq,
                       index_t heads, index_t head_dim) {
    const index_t hidden = heads * head_dim, row = 3 * hidden;
    const T scale = T(1) / std::sqrt(T(head_dim));
    parallel_for(batch * heads, static_cast<double>(seq * seq * head_dim * 4), [&](index_t p0, index_t p1) {
        for (index_t p = p0; p < p1; ++p) {
            const index_t b = p / heads, h = p % heads;
            const index_t len = lengths ? lengths[b] : seq;
            const T* base = qkv + b * seq * row;
            T* pb = probs + (b * heads + h) * seq * seq;
            for (index_t i = 0; i < seq; ++i) {
                const T* q = base + i * row + h * head_dim;
                T* pr = pb + i * seq;
                T mx = -std::numeric_limits<T>::infinity();
                for (index_t j = 0; j < seq; ++j) {
                    if (j >= len) {
                        pr[j] = 0;
                        continue;
                    }
                    const T* kj = base + j * row + hidden + h * head_dim;
                    T s = 0;
                    for (index_t d = 0; d < head_dim; ++d) s += q[d] * kj[d];
                    pr[j] = s * scale;
                    mx = std::max(mx, pr[j]);
                }
                T sum = 0;
                for (index_t j = 0; j < len; ++j) {
                    pr[j] = std::exp(pr[j] - mx);
                    sum += pr[j];
                }
                for (index_t j = 0; j < len; ++j) pr[j] /= sum;
                T* o = out + (b * seq + i) * hidden + h * head_dim;
                std::fill(o, o + head_dim, T(0));
                for (index_t j = 0; j < len; ++j) {
                    const T* vj = base + j * row + 2 * hidden + h * head_dim;
                    for (index_t d = 0; d < head_dim; ++d) o[d] += pr[j] * vj[d];
                }
            }
        }
    });
}

// dqkv (overwritten) from dout, the saved probs and the QKV input.
template <class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* probs, const std::int32_t* lengths,
                        index_t batch, index_t seq, index_t heads, index_t head_dim) {
    const index_t hidden = heads * head_dim, row = 3 * hidden;
    const T scale = T(1) / std::sqrt(T(head_dim));
    parallel_for(batch * heads, static_cast<double>(seq * seq * head_dim * 8), [&](index_t p0, index_t p1) {
        std::vector<T> dp(static_cast<std::size_t>(seq));
        for (index_t p = p0; p < p1; ++p) {
            const index_t b = p / heads, h = p % heads;
            const index_t len = lengths ? lengths[b] : seq;
            const T* base = qkv + b * seq * row;
            T* dbase = dqkv + b * seq * row;
            for (index_t i = 0; i < seq; ++i)
                for (index_t part = 0; part < 3; ++part)
                    std::fill_n(dbase + i * row + part * hidden + h * head_dim, head_dim, T(0));
            const T* pb = probs + (b * heads + h) * seq * seq;
            for (index_t i = 0; i < seq; ++i) {
                const T* pr = pb + i * seq;
                const T* go = dout + (b * seq + i) * hidden + h * head_dim;
                T dot = 0;
                for (index_t j = 0; j < len; ++j) {
                    const T* vj = base + j * row + 2 * hidden + h * head_dim;
                    T* dvj = dbase + j * row + 2 * hidden + h * head_dim;
                    T s = 0;
                    for (index_t d = 0; d < head_dim; ++d) {
                        s += go[d] * vj[d];
                        dvj[d] += pr[j] * go[d];
                    }
                    dp[static_cast<std::size_t>(j)] = s;
                    dot += pr[j] * s;
                }
                const T* q = base + i * row + h * head_dim;
                T* dq = dbase + i * row + h * head_dim;
                for (index_t j = 0; j < len; ++j) {
                    const T ds = pr[j] * (dp[static_cast<std::size_t>(j)] - dot) * scale;
                    const T* kj = base + j * row + hidden + h * head_dim;
                    T* dkj = dbase + j * row + hidden + h * head_dim;
                    for (index_t d = 0; d < head_dim; ++d) {
                        dq[d] += ds * kj[d];
                        dkj[d] += ds * q[d];
                    }
                }
            }
        }
    });
}

// ---- embeddings -----------------------------------------------------------------------------------
// Fixed sin/cos table [seq, hidden]: even columns sin(pos / 10000^(2i/hidden)), odd columns cos.
template <class T>
void sinusoidal_table(T* out, index_t seq, index_t hidden) {
    for (index_t pos = 0; pos < seq; ++pos)
        for (index_t i = 0; i < hidden; i += 2) {
            const double freq = std::pow(10000.0, -static_cast<double>(i) / static_cast<double>(hidden));
            out[pos * hidden + i] = T(std::sin(static_cast<double>(pos) * freq));
            if (i + 1 < hidden) out[pos * hidden + i + 1] = T(std::cos(static_cast<double>(pos) * freq));
        }
}

// out[b*seq+s] = word[ids] + pos_scale * positions[s] + type[type_ids]. For learned positions pass the
// table parameter and pos_scale = null (scale 1); for scaled sinusoidal pass the fixed table and the scalar.
template <class T>
void embedding_forward(T* out, const std::int32_t* ids, const std::int32_t* type_ids, const T* word,
                       const T* positions, const T* pos_scale, const T* type_table, index_t batch, index_t seq,
                       index_t hidden, index_t vocab, index_t types) {
    const T sc = pos_scale ? *pos_scale : T(1);
    for (index_t r = 0; r < batch * seq; ++r) {
        const index_t id = ids[r], s = r % seq;
        CRAM_CHECK(id >= 0 && id < vocab, "token id ", id, " at row ", r, " outside vocabulary [0, ", vocab, ")");
        const T* wrow = word + id * hidden;
        const T* prow = positions + s * hidden;
        T* o = out + r * hidden;
        for (index_t i = 0; i < hidden; ++i) o[i] = wrow[i] + sc * prow[i];
        if (type_table) {  // no type ids given: every token is type 0
            const index_t t = type_ids ? type_ids[r] : 0;
            CRAM_CHECK(t >= 0 && t < types, "token type ", t, " at row ", r, " outside [0, ", types, ")");
            for (index_t i = 0; i < hidden; ++i) o[i] += type_table[t * hidden + i];
        }
    }
}

// Gradients accumulate: dword rows, dpositions (learned table, or null), dpos_scale (scalar, or null),
// dtype_table (or null).
template <class T>
void embedding_backward(T* dword, T* dpositions, T* dpos_scale, T* dtype_table, const T* dout, const std::int32_t* ids,
                        const std::int32_t* type_ids, const T* positions, const T* pos_scale, index_t batch,
                        index_t seq, index_t hidden) {
    const T sc = pos_scale ? *pos_scale : T(1);
    T dscale = 0;
    for (index_t r = 0; r < batch * seq; ++r) {
        const index_t s = r % seq;
        const T* g = dout + r * hidden;
        T* dw = dword + static_cast<index_t>(ids[r]) * hidden;
        for (index_t i = 0; i < hidden; ++i) dw[i] += g[i];
        if (dpositions)
            for (index_t i = 0; i < hidden; ++i) dpositions[s * hidden + i] += sc * g[i];
        if (dpos_scale)
            for (index_t i = 0; i < hidden; ++i) dscale += g[i] * positions[s * hidden + i];
        if (dtype_table) {
            const index_t t = type_ids ? type_ids[r] : 0;
            for (index_t i = 0; i < hidden; ++i) dtype_table[t * hidden + i] += g[i];
        }
    }
    if (dpos_scale) *dpos_scale += dscale;
}

// ---- row gather / scatter (sparse prediction) -----------------------------------------------------
template <class T>
void gather_rows(T* out, const T* in, const std::int32_t* rows, index_t n, index_t cols) {
    for (index_t i = 0; i < n; ++i) std::copy_n(in + static_cast<index_t>(rows[i]) * cols, cols, out + i * cols);
}
// dst[rows[i]] += src[i]
template <class T>
void scatter_add_rows(T* dst, const T* src, const std::int32_t* rows, index_t n, index_t cols) {
    for (index_t i = 0; i < n; ++i) add_inplace(dst + static_cast<index_t>(rows[i]) * cols, src + i * cols, cols);
}

// ---- losses ---------------------------------------------------------------------------------------
inline constexpr std::int32_t ignore_label = -100;

// Softmax cross-entropy of logits [n, classes] against labels (ignore_label skipped). Returns the summed
// loss; dlogits (if given) is overwritten with dscale * (softmax - onehot), zero on ignored rows.
template <class T>
double cross_entropy(T* dlogits, const T* logits, const std::int32_t* labels, index_t n, index_t classes, T dscale) {
    double total = 0;
    for (index_t r = 0; r < n; ++r) {
        const T* z = logits + r * classes;
        const std::int32_t y = labels[r];
        if (y == ignore_label) {
            if (dlogits) std::fill_n(dlogits + r * classes, classes, T(0));
            continue;
        }
        CRAM_CHECK(y >= 0 && y < classes, "label ", y, " at row ", r, " outside [0, ", classes, ")");
        const T mx = *std::max_element(z, z + classes);
        T sum = 0;
        for (index_t c = 0; c < classes; ++c) sum += std::exp(z[c] - mx);
        const T lse = mx + std::log(sum);
        total += static_cast<double>(lse - z[y]);
        if (dlogits)
            for (index_t c = 0; c < classes; ++c)
                dlogits[r * classes + c] = dscale * (std::exp(z[c] - lse) - (c == y ? T(1) : T(0)));
    }
    return total;
}

// Mean squared error 0.5 * (pred - target)^2 summed (half so the gradient is pred - target); dpred gets
// dscale * (pred - target).
template <class T>
double squared_error(T* dpred, const T* pred, const float* target, index_t n, T dscale) {
    double total = 0;
    for (index_t i = 0; i < n; ++i) {
        const T d = pred[i] - T(target[i]);
        total += 0.5 * static_cast<double>(d * d);
        if (dpred) dpred[i] = dscale * d;
    }
    return total;
}

// The MLM decoder fused with its loss: logits = hidden[n,H] * w[V,H]^T (+ bias), cross-entropy against
// targets. Rows are processed in chunks so the full [n, V] logits never exist at once. With dhidden given,
// also computes dhidden (overwritten), dw and dbias (accumulate), all scaled by dscale. Returns the summed loss.
template <class T>
double decoder_cross_entropy(T* dhidden, T* dw, T* dbias, const T* hidden, const T* w, const T* bias,
                             const std::int32_t* targets, index_t n, index_t h, index_t vocab, T dscale) {
    constexpr index_t chunk = 128;
    std::vector<T> logits(static_cast<std::size_t>(std::min(n, chunk) * vocab));
    double total = 0;
    for (index_t r0 = 0; r0 < n; r0 += chunk) {
        const index_t rows = std::min(chunk, n - r0);
        const T* hid = hidden + r0 * h;
        linear_forward(logits.data(), hid, w, bias, rows, h, vocab);
        total += cross_entropy(dhidden ? logits.data() : static_cast<T*>(nullptr), logits.data(), targets + r0, rows,
                               vocab, dscale);
        if (dhidden) linear_backward(dhidden + r0 * h, dw, dbias, logits.data(), hid, w, rows, h, vocab);
    }
    return total;
}

// ---- optimizer ------------------------------------------------------------------------------------
struct adamw_hparams {
    float lr = 1e-3f;
    float beta1 = 0.9f;
    float beta2 = 0.98f;
    float eps = 1e-12f;
    float weight_decay = 0.01f;
    long step = 1;  // 1-based, for bias correction
};

// PyTorch's AdamW (decoupled decay): p -= lr*wd*p; m, v updated; p -= lr * m_hat / (sqrt(v_hat) + eps).
// grad_scale multiplies the gradient on the fly (clipping without a separate pass).
template <class T>
void adamw_step(T* params, const T* grads, T* m, T* v, index_t n, const adamw_hparams& hp, T grad_scale = T(1)) {
    const double bc1 = 1.0 - std::pow(static_cast<double>(hp.beta1), static_cast<double>(hp.step));
    const double bc2 = 1.0 - std::pow(static_cast<double>(hp.beta2), static_cast<double>(hp.step));
    const T lr = T(hp.lr), b1 = T(hp.beta1), b2 = T(hp.beta2), eps = T(hp.eps), wd = T(hp.weight_decay);
    const T inv_bc1 = T(1.0 / bc1), inv_sqrt_bc2 = T(1.0 / std::sqrt(bc2));
    parallel_for(n, 16.0, [&](index_t i0, index_t i1) {
        for (index_t i = i0; i < i1; ++i) {
            const T g = grads[i] * grad_scale;
            m[i] = b1 * m[i] + (T(1) - b1) * g;
            v[i] = b2 * v[i] + (T(1) - b2) * g * g;
            params[i] -= lr * wd * params[i];
            params[i] -= lr * (m[i] * inv_bc1) / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
        }
    });
}

// Sum of squares in double (the global gradient norm is sqrt of the sum over all buffers).
template <class T>
double sum_squares(const T* x, index_t n) {
    double s = 0;
    for (index_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    return s;
}

}  // namespace cram::cpu
