// LayerNorm over the last dimension, forward and backward. The per-element normalisation, the
// reciprocal standard deviation and the input-gradient formula are CRAM_HOST_DEVICE rules that the CUDA
// kernels (cram/cuda/layernorm.hpp) evaluate too; the row reductions stay each backend's own.
//
// Contract: out[rows, cols] = (in - mean) * rstd * w + b, overwritten; mean and rstd [rows] are saved for
// backward (fp32 on the GPU). Backward: din += (it accumulates: residual streams add their gradients),
// dw += and db += (parameter gradients).
#pragma once

#include <cmath>

#include "cram/core/platform.hpp"
#include "cram/core/thread_pool.hpp"

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
// Two-pass statistics (mean, then the variance around it), as the CUDA kernel computes them.
template <class T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* in, const T* w, const T* b, index_t rows, index_t cols,
                       T eps) {
    cram::parallel_for(rows, 8.0 * static_cast<double>(cols), [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            const T* x = in + r * cols;
            T mu = 0;
            for (index_t i = 0; i < cols; ++i) mu += x[i];
            mu /= T(cols);
            T var = 0;
            for (index_t i = 0; i < cols; ++i) var += (x[i] - mu) * (x[i] - mu);
            var /= T(cols);
            const T rs = layernorm_rstd(var, eps);
            for (index_t i = 0; i < cols; ++i) out[r * cols + i] = layernorm_output(x[i], mu, rs, w[i], b[i]);
            mean[r] = mu;
            rstd[r] = rs;
        }
    });
}

// din[rows, cols] += input gradient; dw[cols] += dout * xhat; db[cols] += dout.
template <class T>
void layernorm_backward(T* din, T* dw, T* db, const T* dout, const T* in, const T* mean, const T* rstd, const T* w,
                        index_t rows, index_t cols) {
    for (index_t r = 0; r < rows; ++r) {
        const T* x = in + r * cols;
        const T* dy = dout + r * cols;
        const T mu = mean[r], rs = rstd[r];
        T mean_dxhat = 0, mean_dxhat_xhat = 0;
        for (index_t i = 0; i < cols; ++i) {
            const T xhat = layernorm_xhat(x[i], mu, rs);
            const T dxhat = dy[i] * w[i];
            mean_dxhat += dxhat;
            mean_dxhat_xhat += dxhat * xhat;
            dw[i] += dy[i] * xhat;
            db[i] += dy[i];
        }
        mean_dxhat /= T(cols);
        mean_dxhat_xhat /= T(cols);
        for (index_t i = 0; i < cols; ++i) {
            const T xhat = layernorm_xhat(x[i], mu, rs);
            din[r * cols + i] += layernorm_input_grad(dy[i], w[i], xhat, rs, mean_dxhat, mean_dxhat_xhat);
        }
    }
}

}  // namespace cram::ops
