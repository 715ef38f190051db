// LayerNorm over the last dimension, forward and backward. The per-element normalisation, the
// reciprocal standard deviation and the input-gradient formula are CRAM_HOST_DEVICE rules that the CUDA
// kernels (cram/cuda/layernorm.hpp) evaluate too; the row reductions stay each backend's own.
//
// Contract: out[rows, cols] = (in - mean) * rstd * w + b, overwritten; mean and rstd [rows] are saved for
// backward (fp32 on the GPU). add_layernorm_forward: sum = a + b, then out = LayerNorm(sum), a residual add and
// the norm after it (sum aliases none of the others; the CUDA backend does both in one pass). Backward:
// din += (it accumulates: residual streams add their gradients), dw += and db += (parameter gradients).
#pragma once

#include <algorithm>
#include <cmath>

#include "cram/core/platform.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/ops/elementwise.hpp"
#include "cram/ops/vector_math.hpp"

namespace cram::ops {

using cram::index_t;

// ---- shared scalar rules ----------------------------------------------------------------------------
// 1 / sqrt(var + eps), var the biased (divide by cols) variance of the row.
template <class T>
CRAM_HOST_DEVICE T layernorm_rstd(T var, T eps) {
    return T(1) / std::sqrt(var + eps);
}
// xhat = (x - mean) * rstd.
template <class T>
CRAM_HOST_DEVICE T layernorm_xhat(T x, T mean, T rstd) {
    return (x - mean) * rstd;
}
// y = xhat * w + b.
template <class T>
CRAM_HOST_DEVICE T layernorm_output(T x, T mean, T rstd, T w, T b) {
    return layernorm_xhat(x, mean, rstd) * w + b;
}
// dx = rstd * (dy*w - mean(dy*w) - xhat * mean(dy*w*xhat)), the means taken over the row.
template <class T>
CRAM_HOST_DEVICE T layernorm_input_grad(T dy, T w, T xhat, T rstd, T mean_dxhat, T mean_dxhat_xhat) {
    return rstd * (dy * w - mean_dxhat - xhat * mean_dxhat_xhat);
}

// ---- CPU implementation -----------------------------------------------------------------------------
// Two-pass statistics (mean, then the variance around it), as the CUDA kernel computes them; the row sums
// in vector_math's lanes.
template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* in, const T* w, const T* b, index_t rows, index_t cols,
                       T eps) {
    cram::parallel_for(rows, 8.0 * static_cast<double>(cols), [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            const T* x = in + r * cols;
            T* o = out + r * cols;
            const T mu = sum_of(x, cols) / T(cols);
            const T rs = layernorm_rstd(sum_squared_deviation(x, mu, cols) / T(cols), eps);
            for (index_t i = 0; i < cols; ++i) o[i] = layernorm_output(x[i], mu, rs, w[i], b[i]);
            mean[r] = mu;
            rstd[r] = rs;
        }
    });
}

// sum[rows, cols] = a + b; out = LayerNorm(sum) with its mean and rstd, as add then layernorm_forward.
template <class T>
void add_layernorm_forward(T* sum, T* out, T* mean, T* rstd, const T* a, const T* b, const T* w, const T* bias,
                           index_t rows, index_t cols, T eps) {
    add(sum, a, b, rows * cols);
    layernorm_forward(out, mean, rstd, sum, w, bias, rows, cols, eps);
}

namespace detail {
// One row of LayerNorm's backward: xhat and dxhat into the scratch, dw and db into the block's partial sums.
// The buffers never overlap (restrict), which lets the compiler vectorise the loop.
template <class T>
void layernorm_backward_row_stats(T* __restrict xhat, T* __restrict dxhat, T* __restrict pdw, T* __restrict pdb,
                                  const T* __restrict x, const T* __restrict dy, const T* __restrict w, T mu, T rs,
                                  index_t cols) {
    for (index_t i = 0; i < cols; ++i) {
        xhat[i] = layernorm_xhat(x[i], mu, rs);
        dxhat[i] = dy[i] * w[i];
        pdw[i] += dy[i] * xhat[i];
        pdb[i] += dy[i];
    }
}
template <class T>
void layernorm_backward_row_input(T* __restrict dx, const T* __restrict dy, const T* __restrict w,
                                  const T* __restrict xhat, T rs, T mean_dxhat, T mean_dxhat_xhat, index_t cols) {
    for (index_t i = 0; i < cols; ++i)
        dx[i] += layernorm_input_grad(dy[i], w[i], xhat[i], rs, mean_dxhat, mean_dxhat_xhat);
}
}  // namespace detail

// din[rows, cols] += input gradient; dw[cols] += dout * xhat; db[cols] += dout. Rows go over threads in
// blocks of a fixed size, each summing its own dw and db; the blocks are then added in order, so the
// result does not depend on the thread count.
template <class T>
void layernorm_backward(T* din, T* dw, T* db, const T* dout, const T* in, const T* mean, const T* rstd, const T* w,
                        index_t rows, index_t cols) {
    constexpr index_t block = 64;
    const index_t blocks = (rows + block - 1) / block;
    T* partial = detail::thread_scratch<T, 6>(2 * blocks * cols);  // per block: [dw | db]
    T* rows_all = detail::per_thread_scratch<T, 7>(2 * cols);
    cram::parallel_for(blocks, 12.0 * static_cast<double>(block * cols), [&](index_t b0, index_t b1) {
        T* xhat = detail::part_scratch(rows_all, 2 * cols);
        T* dxhat = xhat + cols;
        for (index_t blk = b0; blk < b1; ++blk) {
            T* pdw = partial + blk * 2 * cols;
            T* pdb = pdw + cols;
            std::fill_n(pdw, 2 * cols, T(0));
            for (index_t r = blk * block; r < std::min(rows, (blk + 1) * block); ++r) {
                const T* x = in + r * cols;
                const T* dy = dout + r * cols;
                const T rs = rstd[r];
                detail::layernorm_backward_row_stats(xhat, dxhat, pdw, pdb, x, dy, w, mean[r], rs, cols);
                const T mean_dxhat = sum_of(dxhat, cols) / T(cols);
                const T mean_dxhat_xhat = dot_of(dxhat, xhat, cols) / T(cols);
                detail::layernorm_backward_row_input(din + r * cols, dy, w, xhat, rs, mean_dxhat, mean_dxhat_xhat,
                                                     cols);
            }
        }
    });
    for (index_t blk = 0; blk < blocks; ++blk)
        for (index_t i = 0; i < cols; ++i) {
            dw[i] += partial[blk * 2 * cols + i];
            db[i] += partial[blk * 2 * cols + cols + i];
        }
}

}  // namespace cram::ops
