// Elementwise kernels on activations (the residual add, in place or not; the add into a residual stream wider than
// the activations) and the conversions between storage types (the fp32 -> bf16/fp16 refresh of the weights the
// matmuls read; to and from an fp32 residual stream), then their launchers: the CUDA twin of
// cram/ops/elementwise.hpp. Memory-bound: grid-stride loops, 16-byte vector accesses when widths and pointers
// allow (always, in crammed BERT).
#pragma once

#include <type_traits>

#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/error.hpp"

namespace cram::cuda {

// ---- kernels ----------------------------------------------------------------------------------------
template <class T>
__global__ void add_kernel(T* out, const T* a, const T* b, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) out[i] = from_f32<T>(to_f32(a[i]) + to_f32(b[i]));
}
// 8 bf16 or fp16 (or 4 fp32) per access, for the aligned, divisible case.
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
// out = residual + branch, the stream (R) wider than the branch (A); 8 elements per step when `packs`.
template <class R, class A, bool PACKS>
__global__ void add_residual_kernel(R* out, const R* residual, const A* __restrict__ branch, index_t n) {
    if constexpr (PACKS) {
        for (index_t v = global_thread(); v < n / 8; v += grid_threads()) {
            float x[8], y[8];
            load8(residual + v * 8, x);
            load8(branch + v * 8, y);
#pragma unroll
            for (int j = 0; j < 8; ++j) x[j] += y[j];
            store8(out + v * 8, x);
        }
    } else {
        for (index_t i = global_thread(); i < n; i += grid_threads())
            out[i] = from_f32<R>(to_f32(residual[i]) + to_f32(branch[i]));
    }
}
template <class D, class S, bool PACKS>
__global__ void convert_kernel(D* __restrict__ out, const S* __restrict__ in, index_t n) {
    if constexpr (PACKS) {
        for (index_t v = global_thread(); v < n / 8; v += grid_threads()) {
            float x[8];
            load8(in + v * 8, x);
            store8(out + v * 8, x);
        }
    } else {
        for (index_t i = global_thread(); i < n; i += grid_threads()) out[i] = from_f32<D>(to_f32(in[i]));
    }
}

// ---- launchers ----------------------------------------------------------------------------------------
namespace detail {
constexpr int elementwise_threads = 256;
}

// out[n] = a + b (out may alias a or b).
template <class T>
void add(context& ctx, T* out, const T* a, const T* b, index_t n) {
    if (n <= 0) return;
    constexpr int W = vec16<T>::n;
    if (n % W == 0 && aligned16(out) && aligned16(a) && aligned16(b)) {
        CRAM_LAUNCH(grid_for(ctx, n / W, detail::elementwise_threads), detail::elementwise_threads, 0, ctx.stream(),
                    add_vec_kernel<T>)(out, a, b, n / W);
        CRAM_CUDA_CHECK_LAUNCH();
        return;
    }
    CRAM_LAUNCH(grid_for(ctx, n, detail::elementwise_threads), detail::elementwise_threads, 0, ctx.stream(),
                add_kernel<T>)(out, a, b, n);
    CRAM_CUDA_CHECK_LAUNCH();
}
// acc[n] += x.
template <class T>
void add_inplace(context& ctx, T* acc, const T* x, index_t n) {
    add(ctx, acc, acc, x, n);
}
// out = in converted (fp32 master weights -> the bf16 or fp16 copy the matmuls read; the residual stream to and
// from fp32), rounded to nearest even.
template <class D, class S>
void convert(context& ctx, D* out, const S* in, index_t n) {
    if (n <= 0) return;
    if (n % 8 == 0 && aligned16(out) && aligned16(in))
        CRAM_LAUNCH(grid_for(ctx, n / 8, detail::elementwise_threads), detail::elementwise_threads, 0, ctx.stream(),
                    convert_kernel<D, S, true>)(out, in, n);
    else
        CRAM_LAUNCH(grid_for(ctx, n, detail::elementwise_threads), detail::elementwise_threads, 0, ctx.stream(),
                    convert_kernel<D, S, false>)(out, in, n);
    CRAM_CUDA_CHECK_LAUNCH();
}
// out[n] = residual + branch in the residual stream's type R (out may alias residual): add() when R is the
// branch's type, else the branch widened on the way.
template <class R, class A>
void add_residual(context& ctx, R* out, const R* residual, const A* branch, index_t n) {
    if constexpr (std::is_same_v<R, A>) {
        add(ctx, out, residual, branch, n);
    } else {
        if (n <= 0) return;
        if (n % 8 == 0 && aligned16(out) && aligned16(residual) && aligned16(branch))
            CRAM_LAUNCH(grid_for(ctx, n / 8, detail::elementwise_threads), detail::elementwise_threads, 0, ctx.stream(),
                        add_residual_kernel<R, A, true>)(out, residual, branch, n);
        else
            CRAM_LAUNCH(grid_for(ctx, n, detail::elementwise_threads), detail::elementwise_threads, 0, ctx.stream(),
                        add_residual_kernel<R, A, false>)(out, residual, branch, n);
        CRAM_CUDA_CHECK_LAUNCH();
    }
}

}  // namespace cram::cuda
