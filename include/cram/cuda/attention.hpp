// Multi-head attention for short sequences (seq <= 512; crammed BERT uses 128), forward and backward.
// This first version is correct rather than fused: heads are split into [batch, heads, seq, head_dim]
// copies, the score and value products are strided-batched cuBLASLt GEMMs (bf16 in, fp32 accumulate,
// fp32 scores), and softmax (forward) and its backward are one warp per row. The probabilities are
// stored in bf16 (the model's probs buffer) for the backward pass. A fused kernel that keeps the
// 128x128 scores on chip is the planned replacement (docs/cuda.md).
#pragma once

#include <cstdint>

#include "cram/core/error.hpp"
#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/gemm.hpp"

namespace cram::cuda {

namespace detail {
constexpr int attention_max_seq = 512;
constexpr int softmax_per_lane = attention_max_seq / 32;

}  // namespace detail

// dst[b, h, s, d] = src[(b*seq + s)*ld + h*head_dim + d]
template <class T>
__global__ void split_heads_kernel(T* __restrict__ dst, const T* __restrict__ src, index_t ld, index_t batch,
                                   index_t seq, index_t heads, index_t head_dim) {
    const index_t n = batch * heads * seq * head_dim;
    for (index_t i = global_thread(); i < n; i += grid_threads()) {
        const index_t d = i % head_dim;
        index_t t = i / head_dim;
        const index_t s = t % seq;
        t /= seq;
        const index_t h = t % heads, b = t / heads;
        dst[i] = src[(b * seq + s) * ld + h * head_dim + d];
    }
}
// The inverse: dst[(b*seq + s)*ld + h*head_dim + d] = src[b, h, s, d]
template <class T>
__global__ void merge_heads_kernel(T* __restrict__ dst, const T* __restrict__ src, index_t ld, index_t batch,
                                   index_t seq, index_t heads, index_t head_dim) {
    const index_t n = batch * heads * seq * head_dim;
    for (index_t i = global_thread(); i < n; i += grid_threads()) {
        const index_t d = i % head_dim;
        index_t t = i / head_dim;
        const index_t s = t % seq;
        t /= seq;
        const index_t h = t % heads, b = t / heads;
        dst[(b * seq + s) * ld + h * head_dim + d] = src[i];
    }
}

// One warp per score row: probs = softmax over the first lengths[b] keys (zero beyond), fp32 throughout.
template <class T>
__global__ void attention_softmax_kernel(T* __restrict__ probs, const float* __restrict__ scores,
                                         const std::int32_t* __restrict__ lengths, index_t batch, index_t heads,
                                         index_t seq) {
    const index_t rows = batch * heads * seq;
    const int lane = threadIdx.x & 31;
    const index_t warps = static_cast<index_t>(gridDim.x) * (blockDim.x / 32);
    for (index_t r = global_thread() / 32; r < rows; r += warps) {
        const index_t b = r / (heads * seq);
        const index_t len = lengths ? min(static_cast<index_t>(lengths[b]), seq) : seq;
        const float* z = scores + r * seq;
        float v[detail::softmax_per_lane];
        float mx = -INFINITY;
#pragma unroll
        for (int t = 0; t < detail::softmax_per_lane; ++t) {
            const index_t j = lane + 32 * t;
            v[t] = j < len ? z[j] : -INFINITY;
            mx = fmaxf(mx, v[t]);
        }
        mx = warp_max(mx);
        float sum = 0.0f;
#pragma unroll
        for (int t = 0; t < detail::softmax_per_lane; ++t) {
            const index_t j = lane + 32 * t;
            v[t] = j < len ? __expf(v[t] - mx) : 0.0f;
            sum += v[t];
        }
        sum = warp_sum(sum);
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        T* p = probs + r * seq;
#pragma unroll
        for (int t = 0; t < detail::softmax_per_lane; ++t) {
            const index_t j = lane + 32 * t;
            if (j < seq) p[j] = from_f32<T>(v[t] * inv);
        }
    }
}

// dS = P * (dP - sum_j P dP) * scale, one warp per row; P is zero on masked keys, so is dS.
template <class T>
__global__ void attention_softmax_backward_kernel(T* __restrict__ ds, const T* __restrict__ probs,
                                                  const float* __restrict__ dp, index_t rows, index_t seq,
                                                  float scale) {
    const int lane = threadIdx.x & 31;
    const index_t warps = static_cast<index_t>(gridDim.x) * (blockDim.x / 32);
    for (index_t r = global_thread() / 32; r < rows; r += warps) {
        const T* p = probs + r * seq;
        const float* g = dp + r * seq;
        float pv[detail::softmax_per_lane], gv[detail::softmax_per_lane];
        float dot = 0.0f;
#pragma unroll
        for (int t = 0; t < detail::softmax_per_lane; ++t) {
            const index_t j = lane + 32 * t;
            pv[t] = j < seq ? to_f32(p[j]) : 0.0f;
            gv[t] = j < seq ? g[j] : 0.0f;
            dot += pv[t] * gv[t];
        }
        dot = warp_sum(dot);
        T* o = ds + r * seq;
#pragma unroll
        for (int t = 0; t < detail::softmax_per_lane; ++t) {
            const index_t j = lane + 32 * t;
            if (j < seq) o[j] = from_f32<T>(pv[t] * (gv[t] - dot) * scale);
        }
    }
}

namespace detail {
template <class T>
void split_heads(context& ctx, T* dst, const T* src, index_t ld, index_t batch, index_t seq, index_t heads,
                 index_t head_dim) {
    const index_t n = batch * heads * seq * head_dim;
    split_heads_kernel<T><<<grid_for(ctx, n, 256), 256, 0, ctx.stream()>>>(dst, src, ld, batch, seq, heads, head_dim);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void merge_heads(context& ctx, T* dst, const T* src, index_t ld, index_t batch, index_t seq, index_t heads,
                 index_t head_dim) {
    const index_t n = batch * heads * seq * head_dim;
    merge_heads_kernel<T><<<grid_for(ctx, n, 256), 256, 0, ctx.stream()>>>(dst, src, ld, batch, seq, heads, head_dim);
    CRAM_CUDA_CHECK_LAUNCH();
}
inline unsigned warp_rows_grid(context& ctx, index_t rows) {
    const index_t blocks = (rows + 7) / 8;  // 8 warps per 256-thread block
    return static_cast<unsigned>(std::max<index_t>(1, std::min<index_t>(blocks, index_t(ctx.sm_count()) * 16)));
}
}  // namespace detail

// out[batch*seq, hidden] and probs[batch, heads, seq, seq] from the fused qkv[batch*seq, 3*hidden].
template <class T>
void attention_forward(context& ctx, T* out, T* probs, const T* qkv, const std::int32_t* lengths, index_t batch,
                       index_t seq, index_t heads, index_t head_dim) {
    CRAM_CHECK(seq > 0 && seq <= detail::attention_max_seq, "attention supports sequences of 1..",
               detail::attention_max_seq, " tokens, got ", seq);
    if (batch <= 0) return;
    const index_t hidden = heads * head_dim, n = batch * seq * hidden, bh = batch * heads, ss = seq * seq,
                  sd = seq * head_dim;
    using carve = detail::scratch_carver;
    const std::size_t need = 4 * carve::bytes<T>(n) + carve::bytes<float>(bh * ss);
    carve sc{static_cast<std::byte*>(ctx.scratch(need))};
    T* q = sc.take<T>(n);
    T* k = sc.take<T>(n);
    T* v = sc.take<T>(n);
    T* o = sc.take<T>(n);
    float* scores = sc.take<float>(bh * ss);
    detail::split_heads(ctx, q, qkv, 3 * hidden, batch, seq, heads, head_dim);
    detail::split_heads(ctx, k, qkv + hidden, 3 * hidden, batch, seq, heads, head_dim);
    detail::split_heads(ctx, v, qkv + 2 * hidden, 3 * hidden, batch, seq, heads, head_dim);
    const float scale = 1.0f / sqrtf(static_cast<float>(head_dim));
    gemm<T, float, float>(ctx, false, true, seq, seq, head_dim, scale, q, head_dim, sd, k, head_dim, sd, 0.0f, scores,
                          seq, ss, static_cast<int>(bh));
    attention_softmax_kernel<T><<<detail::warp_rows_grid(ctx, bh * seq), 256, 0, ctx.stream()>>>(probs, scores, lengths,
                                                                                               batch, heads, seq);
    CRAM_CUDA_CHECK_LAUNCH();
    gemm<T, T, T>(ctx, false, false, seq, head_dim, seq, 1.0f, probs, seq, ss, v, head_dim, sd, 0.0f, o, head_dim, sd,
                  static_cast<int>(bh));
    detail::merge_heads(ctx, out, o, hidden, batch, seq, heads, head_dim);
}

// dqkv (overwritten) from dout[batch*seq, hidden], qkv and the saved probs.
template <class T>
void attention_backward(context& ctx, T* dqkv, const T* dout, const T* qkv, const T* probs,
                        const std::int32_t* lengths, index_t batch, index_t seq, index_t heads, index_t head_dim) {
    CRAM_CHECK(seq > 0 && seq <= detail::attention_max_seq, "attention supports sequences of 1..",
               detail::attention_max_seq, " tokens, got ", seq);
    (void)lengths;  // masked keys have zero probability, which zeroes their gradients
    if (batch <= 0) return;
    const index_t hidden = heads * head_dim, n = batch * seq * hidden, bh = batch * heads, ss = seq * seq,
                  sd = seq * head_dim;
    using carve = detail::scratch_carver;
    const std::size_t need = 7 * carve::bytes<T>(n) + carve::bytes<float>(bh * ss) + carve::bytes<T>(bh * ss);
    carve sc{static_cast<std::byte*>(ctx.scratch(need))};
    T* q = sc.take<T>(n);
    T* k = sc.take<T>(n);
    T* v = sc.take<T>(n);
    T* dO = sc.take<T>(n);
    T* dq = sc.take<T>(n);
    T* dk = sc.take<T>(n);
    T* dv = sc.take<T>(n);
    float* dp = sc.take<float>(bh * ss);
    T* ds = sc.take<T>(bh * ss);
    detail::split_heads(ctx, q, qkv, 3 * hidden, batch, seq, heads, head_dim);
    detail::split_heads(ctx, k, qkv + hidden, 3 * hidden, batch, seq, heads, head_dim);
    detail::split_heads(ctx, v, qkv + 2 * hidden, 3 * hidden, batch, seq, heads, head_dim);
    detail::split_heads(ctx, dO, dout, hidden, batch, seq, heads, head_dim);
    const int nb = static_cast<int>(bh);
    // dV = P^T dO;  dP = dO V^T
    gemm<T, T, T>(ctx, true, false, seq, head_dim, seq, 1.0f, probs, seq, ss, dO, head_dim, sd, 0.0f, dv, head_dim, sd,
                  nb);
    gemm<T, float, float>(ctx, false, true, seq, seq, head_dim, 1.0f, dO, head_dim, sd, v, head_dim, sd, 0.0f, dp, seq,
                          ss, nb);
    const float scale = 1.0f / sqrtf(static_cast<float>(head_dim));
    attention_softmax_backward_kernel<T><<<detail::warp_rows_grid(ctx, bh * seq), 256, 0, ctx.stream()>>>(
        ds, probs, dp, bh * seq, seq, scale);
    CRAM_CUDA_CHECK_LAUNCH();
    // dQ = dS K;  dK = dS^T Q
    gemm<T, T, T>(ctx, false, false, seq, head_dim, seq, 1.0f, ds, seq, ss, k, head_dim, sd, 0.0f, dq, head_dim, sd, nb);
    gemm<T, T, T>(ctx, true, false, seq, head_dim, seq, 1.0f, ds, seq, ss, q, head_dim, sd, 0.0f, dk, head_dim, sd, nb);
    detail::merge_heads(ctx, dqkv, dq, 3 * hidden, batch, seq, heads, head_dim);
    detail::merge_heads(ctx, dqkv + hidden, dk, 3 * hidden, batch, seq, heads, head_dim);
    detail::merge_heads(ctx, dqkv + 2 * hidden, dv, 3 * hidden, batch, seq, heads, head_dim);
}

}  // namespace cram::cuda
