// Losses with their gradients, accumulating the summed loss into a device scalar (no host
// synchronisation per micro-step): softmax cross-entropy (one block per row, online max/sum with a CUB
// block reduction, fp32), the sparse MLM decoder fused with it (logits for a chunk of rows at a time, so
// full-vocabulary probabilities never exist for the whole batch), squared error, and dense MLM labels.
// The CUDA twin of cram/ops/loss.hpp: ignore_label and the label and gradient rules come from there.
#pragma once

#include <algorithm>
#include <cstdint>

#include <cub/block/block_reduce.cuh>

#include "cram/core/error.hpp"
#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/error.hpp"
#include "cram/cuda/gemm.hpp"
#include "cram/ops/loss.hpp"

namespace cram::cuda {

namespace detail {
struct max_sum {
    float m, s;  // running max and sum of exp(z - m)
};
struct max_sum_op {
    __device__ __forceinline__ max_sum operator()(const max_sum& a, const max_sum& b) const {
        const float m = fmaxf(a.m, b.m);
        if (m == -INFINITY) return {m, 0.0f};
        return {m, a.s * __expf(a.m - m) + b.s * __expf(b.m - m)};
    }
};
constexpr int xent_threads = 256;
}  // namespace detail

// Row r of logits (+ bias) against labels[r]: loss_sum += lse - z[y]; dlogits = dscale * (softmax - onehot),
// zero on ignored rows. One block per row.
template <class Z, class D, class Bias, int BLOCK>
__global__ void __launch_bounds__(BLOCK) cross_entropy_kernel(float* __restrict__ loss_sum, D* __restrict__ dlogits,
                                                              const Z* __restrict__ logits, const Bias* __restrict__ bias,
                                                              const std::int32_t* __restrict__ labels, index_t n,
                                                              index_t classes, float dscale, unsigned* error_word) {
    using reduce = cub::BlockReduce<detail::max_sum, BLOCK>;
    __shared__ typename reduce::TempStorage tmp;
    __shared__ float s_lse;
    for (index_t r = blockIdx.x; r < n; r += gridDim.x) {
        const Z* z = logits + r * classes;
        D* dz = dlogits ? dlogits + r * classes : nullptr;
        std::int32_t y = labels[r];
        if (y != ops::ignore_label && !ops::label_in_range(y, classes)) {
            if (threadIdx.x == 0) atomicOr(error_word, error_label);
            y = ops::ignore_label;
        }
        if (y == ops::ignore_label) {
            if (dz)
                for (index_t c = threadIdx.x; c < classes; c += BLOCK) dz[c] = from_f32<D>(0.0f);
            continue;  // uniform across the block: no collective skipped by part of it
        }
        detail::max_sum acc{-INFINITY, 0.0f};
        for (index_t c = threadIdx.x; c < classes; c += BLOCK) {
            const float v = to_f32(z[c]) + (bias ? to_f32(bias[c]) : 0.0f);
            if (v > acc.m) {
                acc.s = acc.s * __expf(acc.m - v) + 1.0f;
                acc.m = v;
            } else {
                acc.s += __expf(v - acc.m);
            }
        }
        const detail::max_sum tot = reduce(tmp).Reduce(acc, detail::max_sum_op{});
        if (threadIdx.x == 0) {
            const float lse = tot.m + logf(tot.s);
            s_lse = lse;
            const float zy = to_f32(z[y]) + (bias ? to_f32(bias[y]) : 0.0f);
            atomicAdd(loss_sum, lse - zy);
        }
        __syncthreads();
        const float lse = s_lse;
        if (dz)
            for (index_t c = threadIdx.x; c < classes; c += BLOCK) {
                const float v = to_f32(z[c]) + (bias ? to_f32(bias[c]) : 0.0f);
                dz[c] = from_f32<D>(ops::cross_entropy_grad(__expf(v - lse), c == y, dscale));
            }
        __syncthreads();
    }
}

template <class T>
__global__ void squared_error_kernel(float* __restrict__ loss_sum, T* __restrict__ dpred, const T* __restrict__ pred,
                                     const float* __restrict__ target, index_t n, float dscale) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) {
        const float d = to_f32(pred[i]) - target[i];
        atomicAdd(loss_sum, d * d);
        if (dpred) dpred[i] = from_f32<T>(ops::squared_error_grad(to_f32(pred[i]), target[i], dscale));
    }
}

template <class I>
__global__ void fill_i32_kernel(I* p, I v, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) p[i] = v;
}
template <class I>
__global__ void scatter_labels_kernel(I* labels, const I* positions, const I* targets, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) labels[positions[i]] = targets[i];
}

// ---- launchers ----------------------------------------------------------------------------------------
namespace detail {
template <class Z, class D, class Bias>
void launch_cross_entropy(context& ctx, float* loss_sum, D* dlogits, const Z* logits, const Bias* bias,
                          const std::int32_t* labels, index_t n, index_t classes, float dscale) {
    if (n <= 0) return;
    const unsigned grid = static_cast<unsigned>(std::min<index_t>(n, index_t(ctx.sm_count()) * 8));
    cross_entropy_kernel<Z, D, Bias, xent_threads><<<grid, xent_threads, 0, ctx.stream()>>>(
        loss_sum, dlogits, logits, bias, labels, n, classes, dscale, ctx.error_word());
    CRAM_CUDA_CHECK_LAUNCH();
}
}  // namespace detail

template <class L, class T, class S>
void cross_entropy(context& ctx, L* loss_sum, opt_ptr<T> dlogits, const T* logits, const std::int32_t* labels, index_t n,
                   index_t classes, S dscale) {
    static_assert(std::is_same_v<L, float>, "cram::cuda: the loss accumulator is fp32");
    detail::launch_cross_entropy<T, T, T>(ctx, loss_sum, dlogits, logits, nullptr, labels, n, classes,
                                          static_cast<float>(dscale));
}

template <class L, class T, class S>
void squared_error(context& ctx, L* loss_sum, opt_ptr<T> dpred, const T* pred, const float* target, index_t n, S dscale) {
    static_assert(std::is_same_v<L, float>, "cram::cuda: the loss accumulator is fp32");
    if (n <= 0) return;
    squared_error_kernel<T><<<grid_for(ctx, n, 256), 256, 0, ctx.stream()>>>(loss_sum, dpred, pred, target, n,
                                                                            static_cast<float>(dscale));
    CRAM_CUDA_CHECK_LAUNCH();
}

inline void dense_labels(context& ctx, std::int32_t* labels, index_t rows, const std::int32_t* positions,
                         const std::int32_t* targets, index_t n) {
    if (rows > 0) {
        fill_i32_kernel<std::int32_t><<<grid_for(ctx, rows, 256), 256, 0, ctx.stream()>>>(labels, ops::ignore_label, rows);
        CRAM_CUDA_CHECK_LAUNCH();
    }
    if (n > 0) {
        scatter_labels_kernel<std::int32_t><<<grid_for(ctx, n, 256), 256, 0, ctx.stream()>>>(labels, positions, targets, n);
        CRAM_CUDA_CHECK_LAUNCH();
    }
}

// Rows of logits held at once by the fused decoder: fp32 logits + a 16-bit (bf16 or fp16) gradient per row.
inline index_t decoder_chunk_rows(index_t n, index_t vocab) {
    constexpr std::size_t budget = std::size_t(192) << 20;
    static_assert(sizeof(cram::bf16) == sizeof(cram::fp16), "one chunk size serves both 16-bit formats");
    const index_t per_row = vocab * index_t(sizeof(float) + sizeof(cram::bf16));
    index_t rows = std::max<index_t>(8, static_cast<index_t>(budget) / per_row / 8 * 8);
    return std::min(rows, n);
}

// The MLM decoder fused with its loss: logits = hidden[n,h] w[vocab,h]^T (+ bias) for a chunk of rows,
// cross-entropy against targets (loss_sum += summed loss), and with dhidden given the backward: dhidden
// (overwritten), dw (fp32, accumulates; the tied embedding's gradient) and dbias (accumulates), scaled by dscale.
template <class L, class T, class S, class G = float>
void decoder_cross_entropy(context& ctx, L* loss_sum, opt_ptr<T> dhidden, opt_ptr<G> dw, opt_ptr<G> dbias,
                           const T* hidden, const T* w, opt_ptr<const T> bias, const std::int32_t* targets, index_t n, index_t h, index_t vocab, S dscale) {
    static_assert(std::is_same_v<L, float> && std::is_same_v<G, float>,
                  "cram::cuda: loss accumulator and parameter gradients are fp32");
    if (n <= 0) return;
    CRAM_CHECK(!dhidden || dw, "decoder_cross_entropy: a backward pass needs the weight gradient");
    const index_t chunk = decoder_chunk_rows(n, vocab);
    using carve = detail::scratch_carver;
    const bool train = dhidden != nullptr;
    const std::size_t need = carve::bytes<float>(chunk * vocab) + (train ? carve::bytes<T>(chunk * vocab) : 0);
    carve sc{static_cast<std::byte*>(ctx.scratch(need))};
    float* logits = sc.take<float>(chunk * vocab);
    T* dlogits = train ? sc.take<T>(chunk * vocab) : nullptr;
    for (index_t r0 = 0; r0 < n; r0 += chunk) {
        const index_t rows = std::min(chunk, n - r0);
        const T* hid = hidden + r0 * h;
        gemm<T, float>(ctx, false, true, rows, vocab, h, 1.0f, hid, h, w, h, 0.0f, logits, vocab);
        detail::launch_cross_entropy<float, T, T>(ctx, loss_sum, dlogits, logits, bias, targets + r0, rows, vocab,
                                                  static_cast<float>(dscale));
        if (!train) continue;
        gemm<T, T>(ctx, false, false, rows, h, vocab, 1.0f, dlogits, vocab, w, h, 0.0f, dhidden + r0 * h, h);
        gemm<T, G>(ctx, true, false, vocab, h, rows, 1.0f, dlogits, vocab, hid, h, 1.0f, dw, h);
        if (dbias) column_sum_accumulate(ctx, dbias, dlogits, rows, vocab);
    }
}

}  // namespace cram::cuda
