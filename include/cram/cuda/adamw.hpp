// The optimizer's kernels: AdamW over flat fp32 buffers (master weights, gradients, moments; one pass,
// each element through ops::adamw_update, the rule the CPU runs), the squared gradient norm (a grid-stride
// sum per thread, a CUB block reduction in double, one double atomic per block) and scaling: the CUDA twin
// of cram/ops/adamw.hpp.
#pragma once

#include <type_traits>

#include <cub/block/block_reduce.cuh>

#include "cram/core/error.hpp"
#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/error.hpp"
#include "cram/ops/adamw.hpp"

namespace cram::cuda {

template <class P>
__global__ void adamw_kernel(P* __restrict__ params, const P* __restrict__ grads, P* __restrict__ m,
                             P* __restrict__ v, index_t n, ops::adamw_coefficients<float> c, float grad_scale) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) {
        float p = params[i], mi = m[i], vi = v[i];
        ops::adamw_update(p, mi, vi, grads[i] * grad_scale, c);
        m[i] = mi;
        v[i] = vi;
        params[i] = p;
    }
}

template <class T, int BLOCK>
__global__ void __launch_bounds__(BLOCK) sum_squares_kernel(double* __restrict__ out, const T* __restrict__ x,
                                                            index_t n) {
    float s = 0.0f;  // a few hundred terms per thread: fp32 is plenty before the double reduction
    for (index_t i = global_thread(); i < n; i += grid_threads()) {
        const float v = to_f32(x[i]);
        s += v * v;
    }
    using reduce = cub::BlockReduce<double, BLOCK>;
    CRAM_SHARED(typename reduce::TempStorage, tmp);
    const double total = reduce(tmp).Sum(static_cast<double>(s));
    if (threadIdx.x == 0) atomicAdd(out, total);
}

template <class T>
__global__ void scale_kernel(T* x, float s, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) x[i] = from_f32<T>(to_f32(x[i]) * s);
}

// One AdamW update of n parameters (hp.step is 1-based); grad_scale folds in gradient clipping.
template <class P, class S>
void adamw_step(context& ctx, P* params, const P* grads, P* m, P* v, index_t n, const ops::adamw_hparams& hp,
                S grad_scale = S(1)) {
    static_assert(std::is_same_v<P, float>, "cram::cuda: master weights and optimizer state are fp32");
    CRAM_CHECK(hp.step >= 1, "AdamW step index is 1-based, got ", hp.step);
    if (n <= 0) return;
    CRAM_LAUNCH(grid_for(ctx, n, 256), 256, 0, ctx.stream(), adamw_kernel<P>)(
        params, grads, m, v, n, ops::adamw_coefficients_for<float>(hp), static_cast<float>(grad_scale));
    CRAM_CUDA_CHECK_LAUNCH();
}

// Adds sum(x^2) to a device double without synchronising (several buffers, one read-back).
template <class T>
void sum_squares_async(context& ctx, double* dev_out, const T* x, index_t n) {
    if (n <= 0) return;
    constexpr int B = 256;
    CRAM_LAUNCH(grid_for(ctx, n, B, 4), B, 0, ctx.stream(), sum_squares_kernel<T, B>)(dev_out, x, n);
    CRAM_CUDA_CHECK_LAUNCH();
}

// sum(x^2) as a host double (synchronises: the clip decision is made on the host).
template <class T>
double sum_squares(context& ctx, const T* x, index_t n) {
    double* acc = static_cast<double*>(ctx.scratch(sizeof(double)));
    CRAM_CUDA_CHECK(cudaMemsetAsync(acc, 0, sizeof(double), ctx.stream()));
    sum_squares_async(ctx, acc, x, n);
    double host = 0;
    CRAM_CUDA_CHECK(cudaMemcpyAsync(&host, acc, sizeof host, cudaMemcpyDeviceToHost, ctx.stream()));
    CRAM_CUDA_CHECK(cudaStreamSynchronize(ctx.stream()));
    return host;
}

// x[n] *= s (fp32 arithmetic).
template <class T, class S>
void scale_inplace(context& ctx, T* x, S s, index_t n) {
    if (n <= 0) return;
    CRAM_LAUNCH(grid_for(ctx, n, 256), 256, 0, ctx.stream(), scale_kernel<T>)(x, static_cast<float>(s), n);
    CRAM_CUDA_CHECK_LAUNCH();
}

}  // namespace cram::cuda
