// The optimizer's ops over flat buffers: one AdamW step (PyTorch's decoupled weight decay), the sum of
// squares behind the global gradient norm, and scaling. The per-element AdamW update is CRAM_HOST_DEVICE
// and is what the CUDA kernel (cram/cuda/adamw.hpp) runs too; then the CPU implementation.
//
// Contract: adamw_step updates params, m and v in place (n elements; grads read only, multiplied by
// grad_scale on the fly, which folds clipping in without a separate pass). sum_squares returns a host
// double. scale_inplace: x *= s.
#pragma once

#include <algorithm>
#include <cmath>

#include "cram/core/platform.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/ops/vector_math.hpp"

namespace cram::ops {

using cram::index_t;

struct adamw_hparams {
    float lr = 1e-3f;
    float beta1 = 0.9f;
    float beta2 = 0.98f;
    float eps = 1e-12f;
    float weight_decay = 0.01f;
    long step = 1;  // 1-based, for bias correction
};

// ---- shared scalar rules ----------------------------------------------------------------------------
// The step's constants in the element type: bias corrections are computed once per step in double.
template <class T>
struct adamw_coefficients {
    T lr, beta1, beta2, eps, weight_decay;
    T inv_bc1;       // 1 / (1 - beta1^step)
    T inv_sqrt_bc2;  // 1 / sqrt(1 - beta2^step)
};
template <class T>
adamw_coefficients<T> adamw_coefficients_for(const adamw_hparams& hp) {
    const double bc1 = 1.0 - std::pow(static_cast<double>(hp.beta1), static_cast<double>(hp.step));
    const double bc2 = 1.0 - std::pow(static_cast<double>(hp.beta2), static_cast<double>(hp.step));
    return {T(hp.lr), T(hp.beta1), T(hp.beta2), T(hp.eps), T(hp.weight_decay), T(1.0 / bc1), T(1.0 / std::sqrt(bc2))};
}
// One element: m, v updated with the (already scaled) gradient g; p decays by lr*wd*p, then takes the
// bias-corrected Adam step p -= lr * m_hat / (sqrt(v_hat) + eps). The expression order is fixed: the
// CPU and the GPU must round alike.
template <class T>
CRAM_HOST_DEVICE void adamw_update(T& p, T& m, T& v, T g, const adamw_coefficients<T>& c) {
    m = c.beta1 * m + (T(1) - c.beta1) * g;
    v = c.beta2 * v + (T(1) - c.beta2) * g * g;
    p -= c.lr * c.weight_decay * p;
    p -= c.lr * (m * c.inv_bc1) / (std::sqrt(v) * c.inv_sqrt_bc2 + c.eps);
}

// ---- CPU implementation -----------------------------------------------------------------------------
namespace detail {
// The four buffers never overlap; saying so (restrict) lets the compiler vectorise the loop.
template <class T>
void adamw_range(T* __restrict params, const T* __restrict grads, T* __restrict m, T* __restrict v, index_t n,
                 const adamw_coefficients<T>& c, T grad_scale) {
    for (index_t i = 0; i < n; ++i) {
        T p = params[i], mi = m[i], vi = v[i];
        adamw_update(p, mi, vi, grads[i] * grad_scale, c);
        params[i] = p;
        m[i] = mi;
        v[i] = vi;
    }
}
}  // namespace detail

template <class T>
void adamw_step(T* params, const T* grads, T* m, T* v, index_t n, const adamw_hparams& hp, T grad_scale = T(1)) {
    const adamw_coefficients<T> c = adamw_coefficients_for<T>(hp);
    cram::parallel_for(n, 16.0, [&](index_t i0, index_t i1) {
        detail::adamw_range(params + i0, grads + i0, m + i0, v + i0, i1 - i0, c, grad_scale);
    });
}

// sum(x^2) in double: the global gradient norm is the square root of the sum over all buffers. Blocks of
// a fixed size are summed in parallel (vector_math's lanes, 8 doubles), then added in block order: the same bits on any
// number of threads.
template <class T>
double sum_squares(const T* x, index_t n) {
    constexpr index_t block = index_t{1} << 16;
    const index_t blocks = (n + block - 1) / block;
    double* partial = detail::thread_scratch<double, 5>(blocks);
    cram::parallel_for(blocks, 2.0 * block, [&](index_t b0, index_t b1) {
        for (index_t b = b0; b < b1; ++b) {
            const T* xb = x + b * block;
            partial[b] = lane_sum<8, double>(std::min(block, n - b * block), [xb](index_t i) {
                return static_cast<double>(xb[i]) * static_cast<double>(xb[i]);
            });
        }
    });
    double s = 0;
    for (index_t b = 0; b < blocks; ++b) s += partial[b];
    return s;
}

// x[n] *= s.
template <class T>
void scale_inplace(T* x, T s, index_t n) {
    cram::parallel_for(n, 1.0, [&](index_t i0, index_t i1) {
        for (index_t i = i0; i < i1; ++i) x[i] *= s;
    });
}

}  // namespace cram::ops
