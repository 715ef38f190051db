// Losses with their gradients: softmax cross-entropy, the sparse MLM decoder fused with it, squared error
// (GLUE regression) and dense MLM labels. ignore_label and the label/gradient rules are shared with the
// CUDA kernels (cram/cuda/loss.hpp); then the CPU implementation.
//
// Contract: the CPU functions return the summed loss (the backends add it to a loss accumulator in their
// own memory); gradients are scaled by dscale; dlogits, dpred and dhidden are overwritten (zero on ignored
// rows); the decoder's dw and dbias accumulate (+=).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/platform.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/ops/gemm.hpp"
#include "cram/ops/vector_math.hpp"

namespace cram::ops {

using cram::index_t;

// ---- shared scalar rules ----------------------------------------------------------------------------
// A label that takes no part in the loss (PyTorch's default ignore_index): unmasked MLM rows.
inline constexpr std::int32_t ignore_label = -100;

// A label the loss can use: inside [0, classes). ignore_label is not one; anything else is an error.
CRAM_HOST_DEVICE bool label_in_range(std::int32_t y, index_t classes) {
    return y >= 0 && y < classes;
}
// d loss / d logit = dscale * (softmax probability - [class is the label]).
template <class T>
CRAM_HOST_DEVICE T cross_entropy_grad(T prob, bool is_label, T dscale) {
    return dscale * (prob - (is_label ? T(1) : T(0)));
}

// ---- cross-entropy ----------------------------------------------------------------------------------------
// Softmax cross-entropy of logits[n, classes] against labels[n] (ignore_label rows skipped). Returns the
// summed loss; dlogits (when given) = dscale * (softmax - onehot). dlogits may be logits (in place). Rows go
// over threads; the loss is summed over rows in order afterwards, so it does not depend on the thread count.
template <class T>
double cross_entropy(T* dlogits, const T* logits, const std::int32_t* labels, index_t n, index_t classes, T dscale) {
    for (index_t r = 0; r < n; ++r)
        CRAM_CHECK(labels[r] == ignore_label || label_in_range(labels[r], classes), "label ", labels[r], " at row ", r,
                   " outside [0, ", classes, ")");
    double* row_loss = detail::thread_scratch<double, 3>(n);
    T* exps_all = dlogits ? nullptr : detail::per_thread_scratch<T, 4>(classes);  // e^(z - max) when no gradient
    cram::parallel_for(n, 12.0 * static_cast<double>(classes), [&](index_t r0, index_t r1) {
        T* exps = dlogits ? nullptr : detail::part_scratch(exps_all, classes);
        for (index_t r = r0; r < r1; ++r) {
            const T* z = logits + r * classes;
            const std::int32_t y = labels[r];
            T* d = dlogits ? dlogits + r * classes : exps;
            if (y == ignore_label) {
                if (dlogits) std::fill_n(d, classes, T(0));
                row_loss[r] = 0;
                continue;
            }
            const T zy = z[y], mx = max_of(z, classes);  // read before d (maybe z itself) is overwritten
            const T sum = exp_row(d, z, classes, mx);
            row_loss[r] = static_cast<double>(mx + std::log(sum) - zy);
            if (dlogits) {
                const T inv = T(1) / sum, prob_y = d[y] * inv;
                for (index_t c = 0; c < classes; ++c) d[c] = cross_entropy_grad(d[c] * inv, false, dscale);
                d[y] = cross_entropy_grad(prob_y, true, dscale);
            }
        }
    });
    double total = 0;
    for (index_t r = 0; r < n; ++r) total += row_loss[r];
    return total;
}

// ---- squared error ----------------------------------------------------------------------------------------
// sum (pred - target)^2 over n; dpred (when given) = dscale * 2 (pred - target). With dscale = 1/n the loss
// is PyTorch's MSELoss (mean reduction), the original cramming code's STS-B loss, and so is its gradient.
template <class T>
CRAM_HOST_DEVICE T squared_error_grad(T pred, T target, T dscale) {
    return dscale * T(2) * (pred - target);
}
template <class T>
double squared_error(T* dpred, const T* pred, const float* target, index_t n, T dscale) {
    double total = 0;
    for (index_t i = 0; i < n; ++i) {
        const T d = pred[i] - T(target[i]);
        total += static_cast<double>(d * d);
        if (dpred) dpred[i] = squared_error_grad(pred[i], T(target[i]), dscale);
    }
    return total;
}

// ---- the fused MLM decoder ----------------------------------------------------------------------------------
// logits = hidden[n, h] * w[vocab, h]^T (+ bias), cross-entropy against targets[n]. Rows go through in
// chunks, so the full [n, vocab] logits never exist at once. With dhidden given, also the backward:
// dhidden (overwritten), dw and dbias (accumulate), all scaled by dscale. Returns the summed loss.
// Rows of logits the CPU decoder holds at once: up to 64 MiB (at least 128 rows), large enough for efficient
// GEMMs. The chunk depends on the shapes alone, so dw sums its chunks in the same order on any thread count.
template <class T>
index_t cpu_decoder_chunk_rows(index_t vocab) {
    return std::max<index_t>(128, (index_t{64} << 20) / (vocab * static_cast<index_t>(sizeof(T))));
}

template <class T>
double decoder_cross_entropy(T* dhidden, T* dw, T* dbias, const T* hidden, const T* w, const T* bias,
                             const std::int32_t* targets, index_t n, index_t h, index_t vocab, T dscale) {
    const index_t chunk = cpu_decoder_chunk_rows<T>(vocab);
    T* logits = detail::thread_scratch<T, 2>(std::min(n, chunk) * vocab);
    double total = 0;
    for (index_t r0 = 0; r0 < n; r0 += chunk) {
        const index_t rows = std::min(chunk, n - r0);
        const T* hid = hidden + r0 * h;
        linear_forward(logits, hid, w, bias, rows, h, vocab);
        total += cross_entropy(dhidden ? logits : static_cast<T*>(nullptr), logits, targets + r0, rows, vocab, dscale);
        if (dhidden) linear_backward(dhidden + r0 * h, dw, dbias, logits, hid, w, rows, h, vocab);
    }
    return total;
}

// ---- dense labels -------------------------------------------------------------------------------------------
// labels[rows] = ignore_label everywhere except labels[positions[i]] = targets[i] (i < n): the MLM labels
// for a model that predicts every row (no sparse prediction).
inline void dense_labels(std::int32_t* labels, index_t rows, const std::int32_t* positions,
                         const std::int32_t* targets, index_t n) {
    std::fill_n(labels, rows, ignore_label);
    for (index_t i = 0; i < n; ++i) labels[positions[i]] = targets[i];
}

}  // namespace cram::ops
