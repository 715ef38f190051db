// The CPU backend as a type: what the model templates are instantiated with. It names the storage
// types and forwards each operation (same names and argument order as cram::cuda::backend) to the
// plain functions in ops.hpp. T = float for training, double for finite-difference gradient checks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cram/cpu/ops.hpp"
#include "cram/core/memory_space.hpp"

namespace cram::cpu {

template <class T = float>
struct backend {
    using param_t = T;  // master parameters, gradients, optimizer state
    using act_t = T;    // activations and the weights the matmuls read
    using stat_t = T;   // LayerNorm statistics
    static constexpr bool weights_alias_params = true;  // matmuls read the parameters themselves
    static constexpr const char* name = "cpu";
    using memory_space = host_memory;  // host batches reach the model as they are (batch_upload copies nothing)

    struct context {
        int threads = 0;  // 0: all cores
    };
    template <class U>
    using buffer = std::vector<U>;

    // ---- memory --------------------------------------------------------------------------------
    template <class U>
    static void zero(context&, U* p, index_t n) { std::fill_n(p, n, U(0)); }
    template <class U>
    static void copy(context&, U* dst, const U* src, index_t n) { std::copy_n(src, n, dst); }
    template <class U>
    static void to_host(context&, U* host, const U* dev, index_t n) { std::copy_n(dev, n, host); }
    template <class U>
    static void to_device(context&, U* dev, const U* host, index_t n) { std::copy_n(host, n, dev); }
    static void synchronize(context&) {}

    // ---- operations ----------------------------------------------------------------------------
#define CRAM_CPU_FORWARD(op) \
    template <class... A>    \
    static auto op(context&, A&&... a) { return cpu::op(std::forward<A>(a)...); }
    CRAM_CPU_FORWARD(linear_forward)
    CRAM_CPU_FORWARD(linear_backward)
    CRAM_CPU_FORWARD(add)
    CRAM_CPU_FORWARD(add_inplace)
    CRAM_CPU_FORWARD(gelu_forward)
    CRAM_CPU_FORWARD(gelu_backward)
    CRAM_CPU_FORWARD(glu_forward)
    CRAM_CPU_FORWARD(glu_backward)
    CRAM_CPU_FORWARD(tanh_forward)
    CRAM_CPU_FORWARD(tanh_backward)
    CRAM_CPU_FORWARD(dropout_forward)
    CRAM_CPU_FORWARD(dropout_backward)
    CRAM_CPU_FORWARD(layernorm_forward)
    CRAM_CPU_FORWARD(layernorm_backward)
    CRAM_CPU_FORWARD(attention_forward)
    CRAM_CPU_FORWARD(attention_backward)
    CRAM_CPU_FORWARD(embedding_forward)
    CRAM_CPU_FORWARD(embedding_backward)
    CRAM_CPU_FORWARD(gather_rows)
    CRAM_CPU_FORWARD(scatter_add_rows)
    CRAM_CPU_FORWARD(adamw_step)
#undef CRAM_CPU_FORWARD

    // Losses accumulate their sum into a scalar in backend memory, so a device backend needs no host
    // synchronisation per micro-step; the caller reads it when it logs.
    static void decoder_cross_entropy(context&, T* loss_sum, T* dhidden, T* dw, T* dbias, const T* hidden, const T* w,
                                      const T* bias, const std::int32_t* targets, index_t n, index_t h, index_t vocab,
                                      T dscale) {
        *loss_sum += T(cpu::decoder_cross_entropy(dhidden, dw, dbias, hidden, w, bias, targets, n, h, vocab, dscale));
    }
    static void cross_entropy(context&, T* loss_sum, T* dlogits, const T* logits, const std::int32_t* labels, index_t n,
                              index_t classes, T dscale) {
        *loss_sum += T(cpu::cross_entropy(dlogits, logits, labels, n, classes, dscale));
    }
    static void squared_error(context&, T* loss_sum, T* dpred, const T* pred, const float* target, index_t n,
                              T dscale) {
        *loss_sum += T(cpu::squared_error(dpred, pred, target, n, dscale));
    }
    // Labels for dense prediction: ignore everywhere but the masked rows.
    static void dense_labels(context&, std::int32_t* labels, index_t rows, const std::int32_t* positions,
                             const std::int32_t* targets, index_t n) {
        std::fill_n(labels, rows, ignore_label);
        for (index_t i = 0; i < n; ++i) labels[positions[i]] = targets[i];
    }
    // Weights the matmuls read, from the master parameters (identity here: they alias).
    static void params_to_weights(context&, act_t*, const param_t*, index_t) {}
    // Global L2 norm of a buffer, as a host double (the clip decision needs it on the host).
    static double sum_squares(context&, const T* x, index_t n) { return cpu::sum_squares(x, n); }
    static void scale_inplace(context&, T* x, T s, index_t n) { cpu::scale_inplace(x, s, n); }
};

}  // namespace cram::cpu
