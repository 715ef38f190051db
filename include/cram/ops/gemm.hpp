// GEMM and the linear layer: the contract both backends implement, and the CPU implementation (the
// correctness oracle; a register-tiled, thread-parallel GEMM that sums every output in a fixed order,
// so results never depend on the thread count). The CUDA twin is cram/cuda/gemm.hpp (cuBLASLt).
//
// Layout: matrices are row-major with leading dimensions; a linear layer's weight is [out, in]
// (PyTorch's), y = x W^T + b. Parameter gradients accumulate (+=); activation gradients overwrite.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "cram/core/platform.hpp"
#include "cram/core/thread_pool.hpp"

namespace cram::ops {

using cram::index_t;

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
#define CRAM_OPS_GEMM_VECTOR_TILE 1
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

// ---- gemm ---------------------------------------------------------------------------------------------
// C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, row-major with leading dimensions.
// op(A) = A ([m,k]) or A^T (A stored [k,m]); likewise B. beta == 0 ignores C's old contents (NaN
// included), as BLAS does. Rows of C are split over threads and every output element is summed in the
// same order (k ascending), so the result does not depend on the thread count.
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
#ifdef CRAM_OPS_GEMM_VECTOR_TILE
    constexpr int mr = 6, nr = 16;
#else
    constexpr int mr = 4, nr = 16;
#endif
    const index_t row_blocks = (m + mr - 1) / mr;
    cram::parallel_for(row_blocks, static_cast<double>(mr) * static_cast<double>(n) * static_cast<double>(k),
                      [&](index_t rb0, index_t rb1) {
                          const index_t i_begin = rb0 * mr, i_end = std::min(m, rb1 * mr);
                          const index_t i_full = i_begin + (i_end - i_begin) / mr * mr, j_full = n / nr * nr;
                          for (index_t j0 = 0; j0 < j_full; j0 += nr) {
                              for (index_t i0 = i_begin; i0 < i_full; i0 += mr)
                                  detail::gemm_tile<T, mr, nr>(i0, j0, k, alpha, a, a_row, a_col, bk, ldbk, beta, c,
                                                               ldc);
                              detail::gemm_edge(i_full, i_end, j0, j0 + nr, k, alpha, a, a_row, a_col, bk, ldbk, beta,
                                                c, ldc);
                          }
                          detail::gemm_edge(i_begin, i_end, j_full, n, k, alpha, a, a_row, a_col, bk, ldbk, beta, c,
                                            ldc);
                      });
}

// ---- linear -------------------------------------------------------------------------------------------
// out[rows, out_f] = in[rows, in_f] * w[out_f, in_f]^T (+ bias[out_f]); out is overwritten; bias may be null.
template <class T>
void linear_forward(T* out, const T* in, const T* w, const T* bias, index_t rows, index_t in_f, index_t out_f) {
    gemm<T>(false, true, rows, out_f, in_f, T(1), in, in_f, w, in_f, T(0), out, out_f);
    if (bias)
        for (index_t r = 0; r < rows; ++r)
            for (index_t o = 0; o < out_f; ++o) out[r * out_f + o] += bias[o];
}

// din[rows, in_f] = dout * w (overwrites; skipped when din is null, e.g. the first layer);
// dw[out_f, in_f] += dout^T * in; dbias[out_f] += column sums of dout (skipped when null).
template <class T>
void linear_backward(T* din, T* dw, T* dbias, const T* dout, const T* in, const T* w, index_t rows, index_t in_f,
                     index_t out_f) {
    if (din) gemm<T>(false, false, rows, in_f, out_f, T(1), dout, out_f, w, in_f, T(0), din, in_f);
    gemm<T>(true, false, out_f, in_f, rows, T(1), dout, out_f, in, in_f, T(1), dw, in_f);
    if (dbias)
        for (index_t r = 0; r < rows; ++r)
            for (index_t o = 0; o < out_f; ++o) dbias[o] += dout[r * out_f + o];
}

}  // namespace cram::ops
