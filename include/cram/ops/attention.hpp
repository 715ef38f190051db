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
}  // namespace detail

template <class T>
void attention_forward(T* out, T* probs, const T* qkv, const std::int32_t* lengths, index_t batch, index_t seq,
                       index_t heads, index_t head_dim, float dropout = 0.0f, std::uint64_t seed = 0,
                       std::uint32_t stream = 0) {
    const index_t hidden = heads * head_dim, row = 3 * hidden;
    const T scale = attention_scale<T>(head_dim);
    const bool drop = dropout > 0.0f;
    const std::uint32_t th = dropout_threshold(dropout);
    const T dscale = drop ? dropout_scale<T>(dropout) : T(1);
    cram::parallel_for(batch * heads, static_cast<double>(seq * seq * head_dim * 4), [&](index_t p0, index_t p1) {
        for (index_t p = p0; p < p1; ++p) {
            const index_t b = p / heads, h = p % heads;
            const index_t len = lengths ? lengths[b] : seq;
            const T* base = qkv + b * seq * row;
            T* pb = probs + (b * heads + h) * seq * seq;
            for (index_t i = 0; i < seq; ++i) {
                const T* q = base + i * row + h * head_dim;
                T* pr = pb + i * seq;
                T mx = -std::numeric_limits<T>::infinity();
                for (index_t j = 0; j < seq; ++j) {
                    if (j >= len) {
                        pr[j] = 0;
                        continue;
                    }
                    const T* kj = base + j * row + hidden + h * head_dim;
                    T s = 0;
                    for (index_t d = 0; d < head_dim; ++d) s += q[d] * kj[d];
                    pr[j] = s * scale;
                    mx = std::max(mx, pr[j]);
                }
                T sum = 0;
                for (index_t j = 0; j < len; ++j) {
                    pr[j] = std::exp(pr[j] - mx);
                    sum += pr[j];
                }
                for (index_t j = 0; j < len; ++j) pr[j] /= sum;
                T* o = out + (b * seq + i) * hidden + h * head_dim;
                std::fill(o, o + head_dim, T(0));
                const index_t e0 = ((b * heads + h) * seq + i) * seq;  // flat index of pr[0] in probs
                detail::attention_mask_row mask{seed, stream, th};
                for (index_t j = 0; j < len; ++j) {
                    const T w = drop ? dropout_apply(pr[j], mask.keep(e0 + j), dscale) : pr[j];
                    const T* vj = base + j * row + 2 * hidden + h * head_dim;
                    for (index_t d = 0; d < head_dim; ++d) o[d] += w * vj[d];
                }
            }
        }
    });
}

// dqkv[batch*seq, 3*hidden] (overwritten) from dout[batch*seq, hidden], the saved probs and the QKV input;
// (dropout, seed, stream) must be the forward's. With D = drop(P): dV = D^T dO, dD = dO V^T, dP = drop(dD)
// (the same mask and scale), then the softmax backward with P.
template <class T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* probs, const std::int32_t* lengths,
                        index_t batch, index_t seq, index_t heads, index_t head_dim, float dropout = 0.0f,
                        std::uint64_t seed = 0, std::uint32_t stream = 0) {
    const index_t hidden = heads * head_dim, row = 3 * hidden;
    const T scale = attention_scale<T>(head_dim);
    const bool drop = dropout > 0.0f;
    const std::uint32_t th = dropout_threshold(dropout);
    const T dscale = drop ? dropout_scale<T>(dropout) : T(1);
    cram::parallel_for(batch * heads, static_cast<double>(seq * seq * head_dim * 8), [&](index_t p0, index_t p1) {
        std::vector<T> dp(static_cast<std::size_t>(seq));
        for (index_t p = p0; p < p1; ++p) {
            const index_t b = p / heads, h = p % heads;
            const index_t len = lengths ? lengths[b] : seq;
            const T* base = qkv + b * seq * row;
            T* dbase = dqkv + b * seq * row;
            for (index_t i = 0; i < seq; ++i)
                for (index_t part = 0; part < 3; ++part)
                    std::fill_n(dbase + i * row + part * hidden + h * head_dim, head_dim, T(0));
            const T* pb = probs + (b * heads + h) * seq * seq;
            for (index_t i = 0; i < seq; ++i) {
                const T* pr = pb + i * seq;
                const T* go = dout + (b * seq + i) * hidden + h * head_dim;
                const index_t e0 = ((b * heads + h) * seq + i) * seq;  // flat index of pr[0] in probs
                detail::attention_mask_row mask{seed, stream, th};
                T dot = 0;
                for (index_t j = 0; j < len; ++j) {
                    const bool keep = !drop || mask.keep(e0 + j);
                    const T w = drop ? dropout_apply(pr[j], keep, dscale) : pr[j];  // the weight forward used
                    const T* vj = base + j * row + 2 * hidden + h * head_dim;
                    T* dvj = dbase + j * row + 2 * hidden + h * head_dim;
                    T s = 0;
                    for (index_t d = 0; d < head_dim; ++d) {
                        s += go[d] * vj[d];
                        dvj[d] += w * go[d];
                    }
                    if (drop) s = dropout_apply(s, keep, dscale);  // gradient of P from that of D
                    dp[static_cast<std::size_t>(j)] = s;
                    dot += pr[j] * s;
                }
                const T* q = base + i * row + h * head_dim;
                T* dq = dbase + i * row + h * head_dim;
                for (index_t j = 0; j < len; ++j) {
                    const T ds = softmax_backward(pr[j], dp[static_cast<std::size_t>(j)], dot, scale);
                    const T* kj = base + j * row + hidden + h * head_dim;
                    T* dkj = dbase + j * row + hidden + h * head_dim;
                    for (index_t d = 0; d < head_dim; ++d) {
                        dq[d] += ds * kj[d];
                        dkj[d] += ds * q[d];
                    }
                }
            }
        }
    });
}

}  // namespace cram::ops
