// GEMM and the linear layer: the contract both backends implement, and the CPU implementation. The CUDA
// twin is cram/cuda/gemm.hpp (cuBLASLt).
//
// Two CPU GEMMs: cram's own (register-tiled, every output summed in a fixed order; the double-precision
// oracle of the gradient checks, and the fp32 GEMM of a build without BLAS), and, when the program links
// cram::blas (CRAM_WITH_BLAS), the BLAS's sgemm for fp32: ~2x faster per core (docs/dependencies.md).
// Either way cram's thread pool owns the threads (the BLAS runs single-threaded inside each of cram's
// parts, so the two never oversubscribe the cores) and C is cut into tiles fixed by the shape alone, so
// results never depend on the thread count.
//
// Layout: matrices are row-major with leading dimensions; a linear layer's weight is [out, in]
// (PyTorch's), y = x W^T + b. Parameter gradients accumulate (+=); activation gradients overwrite.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <vector>

#include "cram/core/platform.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/ops/elementwise.hpp"

#if defined(CRAM_WITH_BLAS)
#include <cblas.h>
// The thread setters of the two BLAS cram is built with (docs/dependencies.md); weak, so whichever is
// linked answers and the other is null.
extern "C" void openblas_set_num_threads(int) __attribute__((weak));
extern "C" void bli_thread_set_num_threads(long) __attribute__((weak));
#endif

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
// included), as BLAS does.

// Whether fp32 GEMMs go to the BLAS in this build.
inline constexpr bool gemm_uses_blas =
#if defined(CRAM_WITH_BLAS)
    true;
#else
    false;
#endif

namespace detail {
// cram's own GEMM: rows of C are split over threads and every output element is summed in the same order
// (k ascending), so the result does not depend on the thread count.
template <class T>
void own_gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
              const T* b, index_t ldb, T beta, T* c, index_t ldc) {
    if (m <= 0 || n <= 0) return;
    // Bring B to [k, n] contiguous so the micro-kernel reads unit-stride rows, in a buffer this thread keeps
    // (it grows to the largest B the thread has transposed, then stays).
    const T* bk = b;
    index_t ldbk = ldb;
    if (trans_b) {
        thread_local std::vector<T> b_kn;
        if (b_kn.size() < static_cast<std::size_t>(k * n)) b_kn.resize(static_cast<std::size_t>(k * n));
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

#if defined(CRAM_WITH_BLAS)
// The BLAS runs on the calling thread only: cram's pool is the process's one set of workers. Set once,
// before the first sgemm (a pthread OpenBLAS would otherwise start a team of its own per call).
inline void blas_single_threaded() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (openblas_set_num_threads) openblas_set_num_threads(1);
        if (bli_thread_set_num_threads) bli_thread_set_num_threads(1);
    });
}

// One sgemm on the calling thread (row-major, CBLAS).
inline void blas_sgemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, float alpha, const float* a,
                       index_t lda, const float* b, index_t ldb, float beta, float* c, index_t ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {  // C = beta C; CBLAS would reject the leading dimensions of an empty A or B
        for (index_t i = 0; i < m; ++i)
            for (index_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    blas_single_threaded();
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
                static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}
#endif

// Tiles of C for the parallel BLAS GEMM, chosen from the shape alone (never from the thread count, so a
// result is the same on any number of threads): halve the longer side until a tile holds about
// `target_flops`, keeping sides of at least 64, and cut a product worth splitting (above `split_flops`) in
// two at least. Smaller tiles balance more threads but lose the BLAS's efficiency (each call packs its
// panels again: 64-wide tiles ran ~20% slower on one core, measured).
struct gemm_tiling {
    index_t tile_m, tile_n, tiles_m, tiles_n;
};
inline gemm_tiling gemm_tiles(index_t m, index_t n, index_t k) {
    constexpr double target_flops = 40e6;  // ~0.4 ms of one core: far above a hand-off's few microseconds
    constexpr double split_flops = 8e6;
    constexpr index_t min_side = 64;
    auto halve = [](index_t x) { return (x / 2 + 15) / 16 * 16; };
    auto flops = [k](index_t a, index_t b) { return 2.0 * static_cast<double>(a) * static_cast<double>(b) * k; };
    index_t tm = m, tn = n;
    while (flops(tm, tn) > target_flops || (tm == m && tn == n && flops(m, n) > split_flops)) {
        if (tm >= tn && tm >= 2 * min_side) tm = halve(tm);
        else if (tn >= 2 * min_side) tn = halve(tn);
        else if (tm >= 2 * min_side) tm = halve(tm);
        else break;
    }
    return {tm, tn, (m + tm - 1) / tm, (n + tn - 1) / tn};
}
}  // namespace detail

template <class T>
void gemm(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
          const T* b, index_t ldb, T beta, T* c, index_t ldc) {
#if defined(CRAM_WITH_BLAS)
    if constexpr (std::is_same_v<T, float>) {
        if (m <= 0 || n <= 0) return;
        const detail::gemm_tiling t = detail::gemm_tiles(m, n, k);
        const double tile_flops = 2.0 * static_cast<double>(t.tile_m) * static_cast<double>(t.tile_n) *
                                  static_cast<double>(k);
        cram::parallel_for(t.tiles_m * t.tiles_n, tile_flops, [&](index_t t0, index_t t1) {
            for (index_t tile = t0; tile < t1; ++tile) {
                const index_t i0 = tile / t.tiles_n * t.tile_m, j0 = tile % t.tiles_n * t.tile_n;
                const index_t mi = std::min(t.tile_m, m - i0), nj = std::min(t.tile_n, n - j0);
                const float* ai = trans_a ? a + i0 : a + i0 * lda;  // rows i0.. of op(A)
                const float* bj = trans_b ? b + j0 * ldb : b + j0;  // columns j0.. of op(B)
                detail::blas_sgemm(trans_a, trans_b, mi, nj, k, alpha, ai, lda, bj, ldb, beta, c + i0 * ldc + j0,
                                   ldc);
            }
        });
        return;
    }
#endif
    detail::own_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// The same without cutting C into tiles: for ops that already run one part per thread (attention's
// (sequence, head) pairs). cram's own GEMM, called from inside a part, runs on that part's thread.
template <class T>
void gemm_serial(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
                 const T* b, index_t ldb, T beta, T* c, index_t ldc) {
#if defined(CRAM_WITH_BLAS)
    if constexpr (std::is_same_v<T, float>) {
        detail::blas_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#endif
    detail::own_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
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

// out = residual + linear(in): a sublayer's projection and its residual add in one op (the GPU adds the
// residual as the GEMM's C operand); here linear_forward, then add. out must not alias residual or in.
template <class T>
void linear_residual_forward(T* out, const T* in, const T* w, const T* bias, const T* residual, index_t rows,
                             index_t in_f, index_t out_f) {
    linear_forward(out, in, w, bias, rows, in_f, out_f);
    add(out, residual, out, rows * out_f);
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
