// LayerNorm forward and backward: one thread block per row (grid-stride over rows), CUB block
// reductions, fp32 statistics (two-pass mean then variance, as the CPU oracle), 16-byte vector loads when
// the width and pointers allow. Backward accumulates dweight/dbias per block in shared memory and adds
// them to the fp32 gradients with one atomic per column per block. The CUDA twin of cram/ops/layernorm.hpp:
// normalisation, rstd and the input-gradient formula are its shared rules.
#pragma once

#include <cub/block/block_reduce.cuh>

#include "cram/core/error.hpp"
#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/error.hpp"
#include "cram/ops/layernorm.hpp"

namespace cram::cuda {

namespace detail {
// Calls f(column, value) for every element of the row this thread owns. With VEC a thread owns whole
// 16-byte vectors, so it owns the same columns in every row (the backward's shared accumulators rely on it).
template <class T, int BLOCK, bool VEC, class F>
__device__ __forceinline__ void for_row(const T* x, index_t cols, F&& f) {
    if constexpr (VEC) {
        constexpr int W = vec16<T>::n;
        for (index_t v = threadIdx.x; v * W < cols; v += BLOCK) {
            const vec16<T> p = load16(x + v * W);
#pragma unroll
            for (int j = 0; j < W; ++j) f(v * W + j, to_f32(p.v[j]));
        }
    } else {
        for (index_t c = threadIdx.x; c < cols; c += BLOCK) f(c, to_f32(x[c]));
    }
}
constexpr int layernorm_threads = 128;
}  // namespace detail

template <class T, class S, int BLOCK, bool VEC>
__global__ void __launch_bounds__(BLOCK) layernorm_forward_kernel(T* __restrict__ out, S* __restrict__ mean,
                                                                  S* __restrict__ rstd, const T* __restrict__ in,
                                                                  const T* __restrict__ w, const T* __restrict__ b,
                                                                  index_t rows, index_t cols, float eps) {
    using reduce = cub::BlockReduce<float, BLOCK>;
    __shared__ typename reduce::TempStorage tmp;
    __shared__ float s_stat;
    const float inv_cols = 1.0f / static_cast<float>(cols);
    for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* x = in + r * cols;
        float s = 0.0f;
        detail::for_row<T, BLOCK, VEC>(x, cols, [&](index_t, float v) { s += v; });
        s = reduce(tmp).Sum(s);
        if (threadIdx.x == 0) s_stat = s * inv_cols;
        __syncthreads();
        const float mu = s_stat;
        float q = 0.0f;
        detail::for_row<T, BLOCK, VEC>(x, cols, [&](index_t, float v) { q += (v - mu) * (v - mu); });
        __syncthreads();  // tmp and s_stat are reused
        q = reduce(tmp).Sum(q);
        if (threadIdx.x == 0) s_stat = ops::layernorm_rstd(q * inv_cols, eps);
        __syncthreads();
        const float rs = s_stat;
        T* o = out + r * cols;
        if constexpr (VEC) {
            constexpr int W = vec16<T>::n;
            for (index_t v = threadIdx.x; v * W < cols; v += BLOCK) {
                const vec16<T> xv = load16(x + v * W), wv = load16(w + v * W), bv = load16(b + v * W);
                vec16<T> ov;
#pragma unroll
                for (int j = 0; j < W; ++j)
                    ov.v[j] = from_f32<T>(
                        ops::layernorm_output(to_f32(xv.v[j]), mu, rs, to_f32(wv.v[j]), to_f32(bv.v[j])));
                store16(o + v * W, ov);
            }
        } else {
            for (index_t c = threadIdx.x; c < cols; c += BLOCK)
                o[c] = from_f32<T>(ops::layernorm_output(to_f32(x[c]), mu, rs, to_f32(w[c]), to_f32(b[c])));
        }
        if (threadIdx.x == 0) {
            mean[r] = from_f32<S>(mu);
            rstd[r] = from_f32<S>(rs);
        }
        __syncthreads();
    }
}

// din += rs * (dy*w - mean(dy*w) - xhat * mean(dy*w*xhat)); dw += dy*xhat; db += dy (dynamic shared
// memory: 2*cols floats of per-block partial sums).
template <class T, class S, class G, int BLOCK, bool VEC>
__global__ void __launch_bounds__(BLOCK) layernorm_backward_kernel(T* __restrict__ din, G* __restrict__ dw,
                                                                   G* __restrict__ db, const T* __restrict__ dout,
                                                                   const T* __restrict__ in, const S* __restrict__ mean,
                                                                   const S* __restrict__ rstd, const T* __restrict__ w,
                                                                   index_t rows, index_t cols) {
    using reduce = cub::BlockReduce<float, BLOCK>;
    __shared__ typename reduce::TempStorage tmp;
    __shared__ float s_a, s_b;
    extern __shared__ float acc[];  // [0, cols): dw partials, [cols, 2 cols): db partials
    for (index_t c = threadIdx.x; c < 2 * cols; c += BLOCK) acc[c] = 0.0f;
    __syncthreads();
    const float inv_cols = 1.0f / static_cast<float>(cols);
    for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* x = in + r * cols;
        const T* dy = dout + r * cols;
        const float mu = to_f32(mean[r]), rs = to_f32(rstd[r]);
        float a = 0.0f, bsum = 0.0f;
        // pass 1: sums of dxhat and dxhat*xhat; the parameter-gradient partials on the way
        detail::for_row<T, BLOCK, VEC>(dy, cols, [&](index_t c, float g) {
            const float xhat = ops::layernorm_xhat(to_f32(x[c]), mu, rs);
            const float dxhat = g * to_f32(w[c]);
            a += dxhat;
            bsum += dxhat * xhat;
            acc[c] += g * xhat;
            acc[cols + c] += g;
        });
        a = reduce(tmp).Sum(a);
        if (threadIdx.x == 0) s_a = a * inv_cols;
        __syncthreads();
        bsum = reduce(tmp).Sum(bsum);
        if (threadIdx.x == 0) s_b = bsum * inv_cols;
        __syncthreads();
        const float ma = s_a, mb = s_b;
        T* dx = din + r * cols;
        detail::for_row<T, BLOCK, VEC>(dy, cols, [&](index_t c, float g) {
            const float xhat = ops::layernorm_xhat(to_f32(x[c]), mu, rs);
            dx[c] = from_f32<T>(to_f32(dx[c]) + ops::layernorm_input_grad(g, to_f32(w[c]), xhat, rs, ma, mb));
        });
        __syncthreads();
    }
    __syncthreads();
    for (index_t c = threadIdx.x; c < cols; c += BLOCK) {
        atomicAdd(dw + c, acc[c]);
        atomicAdd(db + c, acc[cols + c]);
    }
}

template <class T, class S>
void layernorm_forward(context& ctx, T* out, S* mean, S* rstd, const T* in, const T* w, const T* b, index_t rows,
                       index_t cols, S eps) {
    static_assert(std::is_same_v<S, float>, "cram::cuda: LayerNorm statistics are fp32");
    if (rows <= 0) return;
    CRAM_CHECK(cols > 0, "layernorm over ", cols, " columns");
    constexpr int B = detail::layernorm_threads;
    const unsigned grid = static_cast<unsigned>(std::min<index_t>(rows, index_t(ctx.sm_count()) * 16));
    const bool vec = cols % vec16<T>::n == 0 && aligned16(out) && aligned16(in) && aligned16(w) && aligned16(b);
    if (vec)
        layernorm_forward_kernel<T, S, B, true><<<grid, B, 0, ctx.stream()>>>(out, mean, rstd, in, w, b, rows, cols,
                                                                             static_cast<float>(eps));
    else
        layernorm_forward_kernel<T, S, B, false><<<grid, B, 0, ctx.stream()>>>(out, mean, rstd, in, w, b, rows, cols,
                                                                              static_cast<float>(eps));
    CRAM_CUDA_CHECK_LAUNCH();
}

template <class T, class S, class G>
void layernorm_backward(context& ctx, T* din, G* dw, G* db, const T* dout, const T* in, const S* mean, const S* rstd,
                        const T* w, index_t rows, index_t cols) {
    static_assert(std::is_same_v<G, float>, "cram::cuda: parameter gradients are fp32");
    if (rows <= 0) return;
    const std::size_t smem = 2 * static_cast<std::size_t>(cols) * sizeof(float);
    CRAM_CHECK(smem <= 48 * 1024, "layernorm_backward supports up to 6144 columns, got ", cols);
    constexpr int B = detail::layernorm_threads;
    const unsigned grid = static_cast<unsigned>(std::min<index_t>(rows, index_t(ctx.sm_count()) * 4));
    const bool vec = cols % vec16<T>::n == 0 && aligned16(dout);
    if (vec)
        layernorm_backward_kernel<T, S, G, B, true><<<grid, B, smem, ctx.stream()>>>(din, dw, db, dout, in, mean,
                                                                                    rstd, w, rows, cols);
    else
        layernorm_backward_kernel<T, S, G, B, false><<<grid, B, smem, ctx.stream()>>>(din, dw, db, dout, in, mean,
                                                                                     rstd, w, rows, cols);
    CRAM_CUDA_CHECK_LAUNCH();
}

}  // namespace cram::cuda
