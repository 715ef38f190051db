// Activations: exact (erf) GELU, the GELU-GLU of the crammed FFN, and tanh (the GLUE pooler). The
// scalar rules below (GELU, its derivative, tanh's derivative) are CRAM_HOST_DEVICE and are what the
// CUDA kernels in cram/cuda/activation.hpp evaluate too; then the CPU implementation.
//
// Contract: every output and every input gradient is overwritten (=); nothing accumulates.
#pragma once

#include <cmath>
#include <numbers>
#include <type_traits>

#include "cram/core/platform.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/ops/vector_math.hpp"

namespace cram::ops {

using cram::index_t;

// ---- shared scalar rules ----------------------------------------------------------------------------
// GELU(x) = x * Phi(x) with the exact normal CDF, as BERT and the cramming reference use (not the tanh
// approximation).
template <class T>
CRAM_HOST_DEVICE T gelu(T x) {
    return T(0.5) * x * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2)));
}
// GELU'(x) = Phi(x) + x * phi(x).
template <class T>
CRAM_HOST_DEVICE T gelu_grad(T x) {
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(std::numbers::sqrt2 / 2)));
    const T pdf = std::exp(T(-0.5) * x * x) * T(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
    return cdf + x * pdf;
}
// tanh'(x) from the forward output y = tanh(x): 1 - y^2 (backward reads the stored output, not x).
template <class T>
CRAM_HOST_DEVICE T tanh_grad_from_output(T y) {
    return T(1) - y * y;
}

// ---- CPU implementation -----------------------------------------------------------------------------
// The CPU loops evaluate GELU through cpu_gelu / cpu_gelu_grad: for double the shared rules above (std::erf,
// exact, for the finite-difference checks); for float the same formulas on vector_math's branch-free
// Phi and exp, so the loops vectorise (std::erf is a call per element).
namespace detail {
template <class T>
inline T cpu_gelu(T x) {
    if constexpr (std::is_same_v<T, float>) return x * normal_cdf_poly(x);
    else return gelu(x);
}
template <class T>
inline T cpu_gelu_grad(T x) {
    if constexpr (std::is_same_v<T, float>)
        return normal_cdf_poly(x) +
               x * exp_poly(-0.5f * x * x) * static_cast<float>(std::numbers::inv_sqrtpi / std::numbers::sqrt2);
    else return gelu_grad(x);
}
}  // namespace detail

// ---- GELU ---------------------------------------------------------------------------------------------
// out[n] = GELU(in).
template <class T>
void gelu_forward(T* out, const T* in, index_t n) {
    cram::parallel_for(n, 40.0, [&](index_t i0, index_t i1) {
        for (index_t i = i0; i < i1; ++i) out[i] = detail::cpu_gelu(in[i]);
    });
}
// din[n] = dout * GELU'(in).
template <class T>
void gelu_backward(T* din, const T* dout, const T* in, index_t n) {
    cram::parallel_for(n, 60.0, [&](index_t i0, index_t i1) {
        for (index_t i = i0; i < i1; ++i) din[i] = dout[i] * detail::cpu_gelu_grad(in[i]);
    });
}

// ---- GELU-GLU -------------------------------------------------------------------------------------------
// in[rows, 2*inner] = [x | gate]; out[rows, inner] = x * GELU(gate).
template <class T>
void glu_forward(T* out, const T* in, index_t rows, index_t inner) {
    cram::parallel_for(rows, 40.0 * static_cast<double>(inner), [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            const T* x = in + r * 2 * inner;
            const T* g = x + inner;
            T* o = out + r * inner;
            for (index_t i = 0; i < inner; ++i) o[i] = x[i] * detail::cpu_gelu(g[i]);
        }
    });
}
// din[rows, 2*inner] = [dout * GELU(gate) | dout * x * GELU'(gate)].
template <class T>
void glu_backward(T* din, const T* dout, const T* in, index_t rows, index_t inner) {
    cram::parallel_for(rows, 80.0 * static_cast<double>(inner), [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            const T* x = in + r * 2 * inner;
            const T* g = x + inner;
            const T* dr = dout + r * inner;
            T* dx = din + r * 2 * inner;
            T* dg = dx + inner;
            for (index_t i = 0; i < inner; ++i) {
                dx[i] = dr[i] * detail::cpu_gelu(g[i]);
                dg[i] = dr[i] * x[i] * detail::cpu_gelu_grad(g[i]);
            }
        }
    });
}

// ---- tanh -----------------------------------------------------------------------------------------------
// out[n] = tanh(in).
template <class T>
void tanh_forward(T* out, const T* in, index_t n) {
    for (index_t i = 0; i < n; ++i) out[i] = std::tanh(in[i]);
}
// din[n] = dout * (1 - out^2), from the forward output.
template <class T>
void tanh_backward(T* din, const T* dout, const T* out, index_t n) {
    for (index_t i = 0; i < n; ++i) din[i] = dout[i] * tanh_grad_from_output(out[i]);
}

}  // namespace cram::ops
