// Elementwise kernels (residual add, GELU, the fused GELU-GLU, tanh, Philox dropout, scaling, type
// conversion), then their launchers. Memory-bound: grid-stride loops, fp32 arithmetic on bf16 storage,
// 16-byte vector accesses for add and GELU-GLU when widths and pointers allow (always, in crammed BERT).
// Dropout addresses its mask exactly as cpu::dropout_forward does (element i uses word i%4 of the Philox
// block (i/4, 0, stream, 1) keyed by the seed), so CPU and GPU drop the same elements.
#pragma once

#include <cstdint>

#include "cram/core/error.hpp"
#include "cram/core/rng.hpp"
#include "cram/cpu/ops.hpp"
#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"

namespace cram::cuda {

// ---- kernels ----------------------------------------------------------------------------------------
template <class T>
__global__ void add_kernel(T* out, const T* a, const T* b, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) out[i] = from_f32<T>(to_f32(a[i]) + to_f32(b[i]));
}
template <class T>
__global__ void scale_kernel(T* x, float s, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) x[i] = from_f32<T>(to_f32(x[i]) * s);
}
template <class D, class S>
__global__ void convert_kernel(D* __restrict__ out, const S* __restrict__ in, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) out[i] = from_f32<D>(to_f32(in[i]));
}
template <class T>
__global__ void gelu_forward_kernel(T* out, const T* in, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) out[i] = from_f32<T>(gelu_f(to_f32(in[i])));
}
template <class T>
__global__ void gelu_backward_kernel(T* din, const T* dout, const T* in, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads())
        din[i] = from_f32<T>(to_f32(dout[i]) * gelu_grad_f(to_f32(in[i])));
}
template <class T>
__global__ void tanh_forward_kernel(T* out, const T* in, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) out[i] = from_f32<T>(tanhf(to_f32(in[i])));
}
template <class T>
__global__ void tanh_backward_kernel(T* din, const T* dout, const T* out, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) {
        const float y = to_f32(out[i]);
        din[i] = from_f32<T>(to_f32(dout[i]) * (1.0f - y * y));
    }
}
// in[rows, 2*inner] = [x | gate] -> out = x * GELU(gate); one thread per output element.
template <class T>
__global__ void glu_forward_kernel(T* __restrict__ out, const T* __restrict__ in, index_t rows, index_t inner) {
    const index_t n = rows * inner;
    for (index_t i = global_thread(); i < n; i += grid_threads()) {
        const index_t r = i / inner, c = i - r * inner;
        const T* row = in + r * 2 * inner;
        out[i] = from_f32<T>(to_f32(row[c]) * gelu_f(to_f32(row[inner + c])));
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
        din[r * 2 * inner + c] = from_f32<T>(d * gelu_f(g));
        din[r * 2 * inner + inner + c] = from_f32<T>(d * x * gelu_grad_f(g));
    }
}
// One thread per group of four elements: one Philox block serves all four, as on the CPU.
template <class T>
__global__ void dropout_kernel(T* out, const T* in, index_t n, std::uint32_t threshold, float scale,
                               std::uint32_t k0, std::uint32_t k1, std::uint32_t stream) {
    const index_t groups = (n + 3) / 4;
    for (index_t g = global_thread(); g < groups; g += grid_threads()) {
        const philox_result r = philox4x32_10(static_cast<std::uint32_t>(g), 0u, stream, 1u, k0, k1);
        for (int j = 0; j < 4; ++j) {
            const index_t i = g * 4 + j;
            if (i >= n) break;
            out[i] = r.v[j] >= threshold ? from_f32<T>(to_f32(in[i]) * scale) : from_f32<T>(0.0f);
        }
    }
}

// 16-byte vector variants (8 bf16 per access) for the aligned, divisible case the model always hits.
template <class T>
__global__ void add_vec_kernel(T* out, const T* a, const T* b, index_t nvec) {
    constexpr int W = vec16<T>::n;
    for (index_t v = global_thread(); v < nvec; v += grid_threads()) {
        const vec16<T> x = load16(a + v * W), y = load16(b + v * W);
        vec16<T> o;
#pragma unroll
        for (int j = 0; j < W; ++j) o.v[j] = from_f32<T>(to_f32(x.v[j]) + to_f32(y.v[j]));
        store16(out + v * W, o);
    }
}
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
        for (int j = 0; j < W; ++j) o.v[j] = from_f32<T>(to_f32(x.v[j]) * gelu_f(to_f32(g.v[j])));
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
            dx.v[j] = from_f32<T>(dj * gelu_f(gj));
            dg.v[j] = from_f32<T>(dj * to_f32(x.v[j]) * gelu_grad_f(gj));
        }
        store16(din + r * 2 * inner + c, dx);
        store16(din + r * 2 * inner + inner + c, dg);
    }
}

// ---- launchers ----------------------------------------------------------------------------------------
namespace detail {
constexpr int elementwise_threads = 256;
}

template <class T>
void add(context& ctx, T* out, const T* a, const T* b, index_t n) {
    if (n <= 0) return;
    constexpr int W = vec16<T>::n;
    if (n % W == 0 && aligned16(out) && aligned16(a) && aligned16(b)) {
        add_vec_kernel<T><<<grid_for(ctx, n / W, detail::elementwise_threads), detail::elementwise_threads, 0,
                            ctx.stream()>>>(out, a, b, n / W);
        CRAM_CUDA_CHECK_LAUNCH();
        return;
    }
    add_kernel<T><<<grid_for(ctx, n, detail::elementwise_threads), detail::elementwise_threads, 0, ctx.stream()>>>(
        out, a, b, n);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void add_inplace(context& ctx, T* acc, const T* x, index_t n) {
    add(ctx, acc, acc, x, n);
}
template <class T, class S>
void scale_inplace(context& ctx, T* x, S s, index_t n) {
    if (n <= 0) return;
    scale_kernel<T><<<grid_for(ctx, n, detail::elementwise_threads), detail::elementwise_threads, 0, ctx.stream()>>>(
        x, static_cast<float>(s), n);
    CRAM_CUDA_CHECK_LAUNCH();
}
// out = in converted (fp32 master weights -> the bf16 copy the matmuls read).
template <class D, class S>
void convert(context& ctx, D* out, const S* in, index_t n) {
    if (n <= 0) return;
    convert_kernel<D, S><<<grid_for(ctx, n, detail::elementwise_threads), detail::elementwise_threads, 0,
                           ctx.stream()>>>(out, in, n);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void gelu_forward(context& ctx, T* out, const T* in, index_t n) {
    if (n <= 0) return;
    gelu_forward_kernel<T><<<grid_for(ctx, n, detail::elementwise_threads), detail::elementwise_threads, 0,
                             ctx.stream()>>>(out, in, n);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void gelu_backward(context& ctx, T* din, const T* dout, const T* in, index_t n) {
    if (n <= 0) return;
    gelu_backward_kernel<T><<<grid_for(ctx, n, detail::elementwise_threads), detail::elementwise_threads, 0,
                              ctx.stream()>>>(din, dout, in, n);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void tanh_forward(context& ctx, T* out, const T* in, index_t n) {
    if (n <= 0) return;
    tanh_forward_kernel<T><<<grid_for(ctx, n, detail::elementwise_threads), detail::elementwise_threads, 0,
                             ctx.stream()>>>(out, in, n);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void tanh_backward(context& ctx, T* din, const T* dout, const T* out, index_t n) {
    if (n <= 0) return;
    tanh_backward_kernel<T><<<grid_for(ctx, n, detail::elementwise_threads), detail::elementwise_threads, 0,
                              ctx.stream()>>>(din, dout, out, n);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void glu_forward(context& ctx, T* out, const T* in, index_t rows, index_t inner) {
    if (rows <= 0 || inner <= 0) return;
    constexpr int W = vec16<T>::n;
    if (inner % W == 0 && aligned16(out) && aligned16(in)) {
        glu_forward_vec_kernel<T><<<grid_for(ctx, rows * inner / W, detail::elementwise_threads),
                                    detail::elementwise_threads, 0, ctx.stream()>>>(out, in, rows, inner);
        CRAM_CUDA_CHECK_LAUNCH();
        return;
    }
    glu_forward_kernel<T><<<grid_for(ctx, rows * inner, detail::elementwise_threads), detail::elementwise_threads,
                            0, ctx.stream()>>>(out, in, rows, inner);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void glu_backward(context& ctx, T* din, const T* dout, const T* in, index_t rows, index_t inner) {
    if (rows <= 0 || inner <= 0) return;
    constexpr int W = vec16<T>::n;
    if (inner % W == 0 && aligned16(din) && aligned16(dout) && aligned16(in)) {
        glu_backward_vec_kernel<T><<<grid_for(ctx, rows * inner / W, detail::elementwise_threads),
                                     detail::elementwise_threads, 0, ctx.stream()>>>(din, dout, in, rows, inner);
        CRAM_CUDA_CHECK_LAUNCH();
        return;
    }
    glu_backward_kernel<T><<<grid_for(ctx, rows * inner, detail::elementwise_threads), detail::elementwise_threads,
                             0, ctx.stream()>>>(din, dout, in, rows, inner);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void dropout_forward(context& ctx, T* out, const T* in, index_t n, float p, std::uint64_t seed, std::uint32_t stream) {
    CRAM_CHECK(p >= 0.0f && p < 1.0f, "dropout probability ", p, " outside [0, 1)");
    if (n <= 0) return;
    const std::uint32_t th = cpu::dropout_threshold(p);
    const float scale = 1.0f / (1.0f - p);  // the same fp32 expression as the CPU oracle
    const index_t groups = (n + 3) / 4;
    dropout_kernel<T><<<grid_for(ctx, groups, detail::elementwise_threads), detail::elementwise_threads, 0,
                        ctx.stream()>>>(out, in, n, th, scale, static_cast<std::uint32_t>(seed),
                                        static_cast<std::uint32_t>(seed >> 32), stream);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void dropout_backward(context& ctx, T* din, const T* dout, index_t n, float p, std::uint64_t seed,
                      std::uint32_t stream) {
    dropout_forward(ctx, din, dout, n, p, seed, stream);  // the same mask and scale
}

}  // namespace cram::cuda
