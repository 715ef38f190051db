// Non-causal multi-head self-attention over a fused QKV, forward and backward. The score scale and the
// softmax-backward element are CRAM_HOST_DEVICE rules shared with the CUDA kernels
// (cram/cuda/attention.hpp); then the CPU implementation.
//
// Contract: qkv[batch*seq, 3*hidden] rows are [q | k | v], head h owning columns h*head_dim.. of each
// part; out[batch*seq, hidden] = softmax(Q K^T * scale) V per head (overwritten); probs
// [batch, heads, seq, seq] is saved for backward. Keys at or beyond lengths[b] (when lengths is given) get
// zero weight; a sequence keeps at least one key. Backward overwrites dqkv.
//
// Attention-probability dropout (fine-tuning, as the original cramming GLUE runs do; off in pretraining):
// with dropout p > 0 the values are weighted by the dropped probabilities D = drop(P), so out = D V per
// head, while probs keeps P itself (the softmax backward needs P everywhere, dropped entries included).
// Element e of probs (its flat index in [batch, heads, seq, seq]) is kept by ops/dropout.hpp's rule for
// element e with (seed, stream): the mask dropout_forward would draw over the whole probs tensor, scaled
// by 1/(1-p). Backward regenerates the same mask from (p, seed, stream), which must be the forward's.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "cram/core/platform.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/ops/dropout.hpp"
#include "cram/ops/gemm.hpp"
#include "cram/ops/vector_math.hpp"

namespace cram::ops {

using cram::index_t;

// ---- shared scalar rules ----------------------------------------------------------------------------
// Scores are scaled by 1/sqrt(head_dim).
template <class T>
CRAM_HOST_DEVICE T attention_scale(index_t head_dim) {
    return T(1) / std::sqrt(T(head_dim));
}
// d score = p * (dp - sum_j p_j dp_j) * scale: the softmax Jacobian applied to dp, then the score scale.
template <class T>
CRAM_HOST_DEVICE T softmax_backward(T p, T dp, T dot, T scale) {
    return p * (dp - dot) * scale;
}

// Whether element e (flat index into probs) survives attention dropout: ops/dropout.hpp's rule for element e.
CRAM_HOST_DEVICE bool attention_keep(std::uint64_t seed, std::uint32_t stream, index_t e, std::uint32_t threshold) {
    return dropout_keep(dropout_bits(seed, stream, e >> 2), e, threshold);
}

// ---- CPU implementation -----------------------------------------------------------------------------
namespace detail {
// attention_keep along a row of probs, drawing each Philox block once for its four elements.
struct attention_mask_row {
    std::uint64_t seed;
    std::uint32_t stream, threshold;
    index_t group = -1;
    philox_result bits{};
    bool keep(index_t e) {
        if ((e >> 2) != group) {
            group = e >> 2;
            bits = dropout_bits(seed, stream, group);
        }
        return dropout_keep(bits, e, threshold);
    }
};

// The weights the values are summed with: probs itself, or its dropped copy (drop(P), the forward's mask).
template <class T>
const T* attention_weights(T* dropped, const T* pb, index_t seq, index_t len, index_t e0, std::uint64_t seed,
                           std::uint32_t stream, std::uint32_t threshold, T dscale) {
    for (index_t i = 0; i < seq; ++i) {
        attention_mask_row mask{seed, stream, threshold};
        for (index_t j = 0; j < len; ++j)
            dropped[i * seq + j] = dropout_apply(pb[i * seq + j], mask.keep(e0 + i * seq + j), dscale);
    }
    return dropped;
}
}  // namespace detail

// One pass per (sequence, head), in cache: scores S = scale Q K^T, a row softmax, O = P V. The two products
// are GEMMs on the head's slices of the fused QKV rows (leading dimension 3 * hidden), on the calling
// thread (gemm_serial), while the pairs are spread over threads.
template <class T>
void attention_forward(T* out, T* probs, const T* qkv, const std::int32_t* lengths, index_t batch, index_t seq,
                       index_t heads, index_t head_dim, float dropout = 0.0f, std::uint64_t seed = 0,
                       std::uint32_t stream = 0) {
    const index_t hidden = heads * head_dim, row = 3 * hidden;
    const T scale = attention_scale<T>(head_dim);
    const bool drop = dropout > 0.0f;
    const std::uint32_t th = dropout_threshold(dropout);
    const T dscale = drop ? dropout_scale<T>(dropout) : T(1);
    T* dropped_all = drop ? detail::per_thread_scratch<T, 0>(seq * seq) : nullptr;
    cram::parallel_for(batch * heads, static_cast<double>(seq * seq * head_dim * 4), [&](index_t p0, index_t p1) {
        T* dropped = drop ? detail::part_scratch(dropped_all, seq * seq) : nullptr;
        for (index_t p = p0; p < p1; ++p) {
            const index_t b = p / heads, h = p % heads;
            const index_t len = lengths ? lengths[b] : seq;
            const T* q = qkv + b * seq * row + h * head_dim;
            const T* k = q + hidden;
            const T* v = q + 2 * hidden;
            T* pb = probs + (b * heads + h) * seq * seq;
            gemm_serial<T>(false, true, seq, len, head_dim, scale, q, row, k, row, T(0), pb, seq);
            for (index_t i = 0; i < seq; ++i) {
                T* pr = pb + i * seq;
                if (len > 0) {
                    const T inv = T(1) / exp_row(pr, pr, len, max_of(pr, len));
                    for (index_t j = 0; j < len; ++j) pr[j] *= inv;
                }
                std::fill(pr + len, pr + seq, T(0));
            }
            const T* w = drop ? detail::attention_weights(dropped, pb, seq, len, (b * heads + h) * seq * seq, seed,
                                                          stream, th, dscale)
                              : pb;
            gemm_serial<T>(false, false, seq, head_dim, len, T(1), w, seq, v, row, T(0), out + b * seq * hidden +
                           h * head_dim, hidden);
        }
    });
}

// dqkv[batch*seq, 3*hidden] (overwritten) from dout[batch*seq, hidden], the saved probs and the QKV input;
// (dropout, seed, stream) must be the forward's. With D = drop(P): dV = D^T dO, dD = dO V^T, dP = drop(dD)
// (the same mask and scale), dS = P (dP - rowsum(P dP)) scale, dQ = dS K, dK = dS^T Q.
template <class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* probs, const std::int32_t* lengths,
                        index_t batch, index_t seq, index_t heads, index_t head_dim, float dropout = 0.0f,
                        std::uint64_t seed = 0, std::uint32_t stream = 0) {
    const index_t hidden = heads * head_dim, row = 3 * hidden;
    const T scale = attention_scale<T>(head_dim);
    const bool drop = dropout > 0.0f;
    const std::uint32_t th = dropout_threshold(dropout);
    const T dscale = drop ? dropout_scale<T>(dropout) : T(1);
    T* ds_all = detail::per_thread_scratch<T, 1>(seq * seq);
    T* dropped_all = drop ? detail::per_thread_scratch<T, 0>(seq * seq) : nullptr;
    cram::parallel_for(batch * heads, static_cast<double>(seq * seq * head_dim * 8), [&](index_t p0, index_t p1) {
        T* ds = detail::part_scratch(ds_all, seq * seq);
        T* dropped = drop ? detail::part_scratch(dropped_all, seq * seq) : nullptr;
        for (index_t p = p0; p < p1; ++p) {
            const index_t b = p / heads, h = p % heads;
            const index_t len = lengths ? lengths[b] : seq;
            const index_t e0 = (b * heads + h) * seq * seq;  // flat index of this pair's probs
            const T* q = qkv + b * seq * row + h * head_dim;
            const T* k = q + hidden;
            const T* v = q + 2 * hidden;
            const T* go = dout + b * seq * hidden + h * head_dim;
            T* dq = dqkv + b * seq * row + h * head_dim;
            T* dk = dq + hidden;
            T* dv = dq + 2 * hidden;
            const T* pb = probs + e0;
            const T* w = drop ? detail::attention_weights(dropped, pb, seq, len, e0, seed, stream, th, dscale) : pb;
            gemm_serial<T>(true, false, len, head_dim, seq, T(1), w, seq, go, hidden, T(0), dv, row);
            gemm_serial<T>(false, true, seq, len, head_dim, T(1), go, hidden, v, row, T(0), ds, seq);
            for (index_t i = 0; i < seq; ++i) {
                const T* pr = pb + i * seq;
                T* dr = ds + i * seq;
                if (drop) {  // the gradient of P from that of D
                    detail::attention_mask_row mask{seed, stream, th};
                    for (index_t j = 0; j < len; ++j) dr[j] = dropout_apply(dr[j], mask.keep(e0 + i * seq + j), dscale);
                }
                const T dot = dot_of(pr, dr, len);
                for (index_t j = 0; j < len; ++j) dr[j] = softmax_backward(pr[j], dr[j], dot, scale);
            }
            gemm_serial<T>(false, false, seq, head_dim, len, T(1), ds, seq, k, row, T(0), dq, row);
            gemm_serial<T>(true, false, len, head_dim, seq, T(1), ds, seq, q, row, T(0), dk, row);
            for (index_t j = len; j < seq; ++j) {  // keys past the length had no weight
                std::fill_n(dk + j * row, head_dim, T(0));
                std::fill_n(dv + j * row, head_dim, T(0));
            }
        }
    });
}

}  // namespace cram::ops
