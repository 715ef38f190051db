// Activation kernels (GELU, the fused GELU-GLU, tanh), forward and backward, then their launchers: the
// CUDA twin of cram/ops/activation.hpp, evaluating its scalar rules (ops::gelu, ops::gelu_grad,
// ops::tanh_grad_from_output). Memory-bound: grid-stride loops, fp32 arithmetic on 16-bit storage, 16-byte
// vector accesses for GELU-GLU when widths and pointers allow (always, in crammed BERT).
#pragma once

#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/error.hpp"
#include "cram/ops/activation.hpp"

namespace cram::cuda {

// ---- kernels ----------------------------------------------------------------------------------------
template <class T>
__global__ void gelu_forward_kernel(T* out, const T* in, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) out[i] = from_f32<T>(ops::gelu(to_f32(in[i])));
}
template <class T>
__global__ void gelu_backward_kernel(T* din, const T* dout, const T* in, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads())
        din[i] = from_f32<T>(to_f32(dout[i]) * ops::gelu_grad(to_f32(in[i])));
}
template <class T>
__global__ void tanh_forward_kernel(T* out, const T* in, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) out[i] = from_f32<T>(tanhf(to_f32(in[i])));
}
template <class T>
__global__ void tanh_backward_kernel(T* din, const T* dout, const T* out, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads())
        din[i] = from_f32<T>(to_f32(dout[i]) * ops::tanh_grad_from_output(to_f32(out[i])));
}
// in[rows, 2*inner] = [x | gate] -> out = x * GELU(gate); one thread per output element.
template <class T>
__global__ void glu_forward_kernel(T* __restrict__ out, const T* __restrict__ in, index_t rows, index_t inner) {
    const index_t n = rows * inner;
    for (index_t i = global_thread(); i < n; i += grid_threads()) {
        const index_t r = i / inner, c = i - r * inner;
        const T* row = in + r * 2 * inner;
        out[i] = from_f32<T>(to_f32(row[c]) * ops::gelu(to_f32(row[inner + c])));
    }
}
template <class T>
__global__ void glu_backward_kernel(T* __restrict__ din, const T* __restrict__ dout, const T* __restrict__ in,
                                    index_t rows, index_t inner) {
    const index_t n = rows * inner;
    for (index_t i = global_thread(); i < n; i += grid_threads()) {
        const index_t r = i / inner, c = i - r * inner;
        const T* row = in + r * 2 * inner;
        const float x = to_f32(row[c]), g = to_f32(row[inner + c]), d = to_f32(dout[i]);
        din[r * 2 * inner + c] = from_f32<T>(d * ops::gelu(g));
        din[r * 2 * inner + inner + c] = from_f32<T>(d * x * ops::gelu_grad(g));
    }
}

// 16-byte vector variants (8 16-bit elements per access) for the aligned, divisible case the model always hits.
template <class T>
__global__ void glu_forward_vec_kernel(T* __restrict__ out, const T* __restrict__ in, index_t rows, index_t inner) {
    constexpr int W = vec16<T>::n;
    const index_t per_row = inner / W, nvec = rows * per_row;
    for (index_t v = global_thread(); v < nvec; v += grid_threads()) {
        const index_t r = v / per_row, c = (v - r * per_row) * W;
        const T* row = in + r * 2 * inner;
        const vec16<T> x = load16(row + c), g = load16(row + inner + c);
        vec16<T> o;
#pragma unroll
        for (int j = 0; j < W; ++j) o.v[j] = from_f32<T>(to_f32(x.v[j]) * ops::gelu(to_f32(g.v[j])));
        store16(out + r * inner + c, o);
    }
}
template <class T>
__global__ void glu_backward_vec_kernel(T* __restrict__ din, const T* __restrict__ dout, const T* __restrict__ in,
                                        index_t rows, index_t inner) {
    constexpr int W = vec16<T>::n;
    const index_t per_row = inner / W, nvec = rows * per_row;
    for (index_t v = global_thread(); v < nvec; v += grid_threads()) {
        const index_t r = v / per_row, c = (v - r * per_row) * W;
        const T* row = in + r * 2 * inner;
        const vec16<T> x = load16(row + c), g = load16(row + inner + c), d = load16(dout + r * inner + c);
        vec16<T> dx, dg;
#pragma unroll
        for (int j = 0; j < W; ++j) {
            const float gj = to_f32(g.v[j]), dj = to_f32(d.v[j]);
            dx.v[j] = from_f32<T>(dj * ops::gelu(gj));
            dg.v[j] = from_f32<T>(dj * to_f32(x.v[j]) * ops::gelu_grad(gj));
        }
        store16(din + r * 2 * inner + c, dx);
        store16(din + r * 2 * inner + inner + c, dg);
    }
}

// ---- launchers ----------------------------------------------------------------------------------------
namespace detail {
constexpr int activation_threads = 256;
}

template <class T>
void gelu_forward(context& ctx, T* out, const T* in, index_t n) {
    if (n <= 0) return;
    CRAM_LAUNCH(grid_for(ctx, n, detail::activation_threads), detail::activation_threads, 0, ctx.stream(),
                gelu_forward_kernel<T>)(out, in, n);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void gelu_backward(context& ctx, T* din, const T* dout, const T* in, index_t n) {
    if (n <= 0) return;
    CRAM_LAUNCH(grid_for(ctx, n, detail::activation_threads), detail::activation_threads, 0, ctx.stream(),
                gelu_backward_kernel<T>)(din, dout, in, n);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void tanh_forward(context& ctx, T* out, const T* in, index_t n) {
    if (n <= 0) return;
    CRAM_LAUNCH(grid_for(ctx, n, detail::activation_threads), detail::activation_threads, 0, ctx.stream(),
                tanh_forward_kernel<T>)(out, in, n);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void tanh_backward(context& ctx, T* din, const T* dout, const T* out, index_t n) {
    if (n <= 0) return;
    CRAM_LAUNCH(grid_for(ctx, n, detail::activation_threads), detail::activation_threads, 0, ctx.stream(),
                tanh_backward_kernel<T>)(din, dout, out, n);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void glu_forward(context& ctx, T* out, const T* in, index_t rows, index_t inner) {
    if (rows <= 0 || inner <= 0) return;
    constexpr int W = vec16<T>::n;
    if (inner % W == 0 && aligned16(out) && aligned16(in)) {
        CRAM_LAUNCH(grid_for(ctx, rows * inner / W, detail::activation_threads), detail::activation_threads, 0,
                    ctx.stream(), glu_forward_vec_kernel<T>)(out, in, rows, inner);
        CRAM_CUDA_CHECK_LAUNCH();
        return;
    }
    CRAM_LAUNCH(grid_for(ctx, rows * inner, detail::activation_threads), detail::activation_threads, 0, ctx.stream(),
                glu_forward_kernel<T>)(out, in, rows, inner);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void glu_backward(context& ctx, T* din, const T* dout, const T* in, index_t rows, index_t inner) {
    if (rows <= 0 || inner <= 0) return;
    constexpr int W = vec16<T>::n;
    if (inner % W == 0 && aligned16(din) && aligned16(dout) && aligned16(in)) {
        CRAM_LAUNCH(grid_for(ctx, rows * inner / W, detail::activation_threads), detail::activation_threads, 0,
                    ctx.stream(), glu_backward_vec_kernel<T>)(din, dout, in, rows, inner);
        CRAM_CUDA_CHECK_LAUNCH();
        return;
    }
    CRAM_LAUNCH(grid_for(ctx, rows * inner, detail::activation_threads), detail::activation_threads, 0, ctx.stream(),
                glu_backward_kernel<T>)(din, dout, in, rows, inner);
    CRAM_CUDA_CHECK_LAUNCH();
}

}  // namespace cram::cuda
