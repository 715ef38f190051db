// The CUDA backend as a type, the twin of cram::cpu::backend<T>: what cram::bert and bert_classifier are
// instantiated with on the GPU. Master parameters, gradients and AdamW state are fp32; activations and the
// weight copy the matmuls read are bf16 (refreshed by params_to_weights after each optimizer step); LayerNorm
// statistics and every reduction are fp32. Every operation is enqueued on the context's stream: nothing
// here synchronises except to_host, sum_squares and synchronize.
#pragma once

#include <cstdint>
#include <limits>
#include <utility>

#include <cuda_runtime.h>

#include "cram/core/bf16.hpp"
#include "cram/core/error.hpp"
#include "cram/cuda/attention.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/elementwise.hpp"
#include "cram/cuda/embedding.hpp"
#include "cram/cuda/error.hpp"
#include "cram/cuda/gemm.hpp"
#include "cram/cuda/layernorm.hpp"
#include "cram/cuda/loss.hpp"
#include "cram/cuda/masking.hpp"
#include "cram/cuda/memory.hpp"
#include "cram/cuda/optimizer.hpp"

namespace cram::cuda {

struct backend {
    using param_t = float;      // master parameters, gradients, optimizer state
    using act_t = cram::bf16;   // activations and the weights the matmuls read
    using stat_t = float;       // LayerNorm statistics
    static constexpr bool weights_alias_params = false;  // a bf16 copy of the fp32 master weights
    static constexpr const char* name = "cuda";
    using memory_space = device_memory;  // batches arrive through batch_upload, staged in pinned memory
    using staging_buffer = cuda::staging_buffer;

    using context = cuda::context;
    template <class U>
    using buffer = device_buffer<U>;

    // ---- memory --------------------------------------------------------------------------------
    template <class U>
    static void zero(context& ctx, U* p, index_t n) {
        if (n > 0) CRAM_CUDA_CHECK(cudaMemsetAsync(p, 0, std::size_t(n) * sizeof(U), ctx.stream()));
    }
    template <class U>
    static void copy(context& ctx, U* dst, const U* src, index_t n) {
        if (n > 0 && dst != src)
            CRAM_CUDA_CHECK(
                cudaMemcpyAsync(dst, src, std::size_t(n) * sizeof(U), cudaMemcpyDeviceToDevice, ctx.stream()));
    }
    // Device -> host; returns when the data is there (ordered after all queued work).
    template <class U>
    static void to_host(context& ctx, U* host, const U* dev, index_t n) {
        if (n <= 0) return;
        CRAM_CUDA_CHECK(cudaMemcpyAsync(host, dev, std::size_t(n) * sizeof(U), cudaMemcpyDeviceToHost, ctx.stream()));
        CRAM_CUDA_CHECK(cudaStreamSynchronize(ctx.stream()));
    }
    // Host -> device; the host buffer may be reused as soon as this returns (pageable memory is staged).
    template <class U>
    static void to_device(context& ctx, U* dev, const U* host, index_t n) {
        if (n <= 0) return;
        CRAM_CUDA_CHECK(cudaMemcpyAsync(dev, host, std::size_t(n) * sizeof(U), cudaMemcpyHostToDevice, ctx.stream()));
    }
    // Waits for all queued work and reports errors kernels recorded (invalid token ids, labels).
    static void synchronize(context& ctx) { ctx.synchronize(); }

    // ---- operations (same names and argument order as cram::cpu::backend) -----------------------
#define CRAM_CUDA_FORWARD(op)                                                   \
    template <class... A>                                                       \
    static void op(context& ctx, A&&... a) {                                    \
        cuda::op(ctx, std::forward<A>(a)...);                                   \
    }
    CRAM_CUDA_FORWARD(linear_forward)
    CRAM_CUDA_FORWARD(linear_backward)
    CRAM_CUDA_FORWARD(add)
    CRAM_CUDA_FORWARD(add_inplace)
    CRAM_CUDA_FORWARD(gelu_forward)
    CRAM_CUDA_FORWARD(gelu_backward)
    CRAM_CUDA_FORWARD(glu_forward)
    CRAM_CUDA_FORWARD(glu_backward)
    CRAM_CUDA_FORWARD(tanh_forward)
    CRAM_CUDA_FORWARD(tanh_backward)
    CRAM_CUDA_FORWARD(dropout_forward)
    CRAM_CUDA_FORWARD(dropout_backward)
    CRAM_CUDA_FORWARD(layernorm_forward)
    CRAM_CUDA_FORWARD(layernorm_backward)
    CRAM_CUDA_FORWARD(attention_forward)
    CRAM_CUDA_FORWARD(attention_backward)
    CRAM_CUDA_FORWARD(embedding_forward)
    CRAM_CUDA_FORWARD(gather_rows)
    CRAM_CUDA_FORWARD(scatter_add_rows)
    CRAM_CUDA_FORWARD(adamw_step)
    CRAM_CUDA_FORWARD(decoder_cross_entropy)
    CRAM_CUDA_FORWARD(cross_entropy)
    CRAM_CUDA_FORWARD(squared_error)
    CRAM_CUDA_FORWARD(dense_labels)
#undef CRAM_CUDA_FORWARD

    // The scatter's bound is the vocabulary the forward pass checked ids against.
    template <class T, class G>
    static void embedding_backward(context& ctx, G* dword, opt_ptr<G> dpositions, opt_ptr<G> dpos_scale,
                                   opt_ptr<G> dtype_table, const T* dout, const std::int32_t* ids,
                                   const std::int32_t* type_ids, const T* positions, opt_ptr<const T> pos_scale, index_t batch, index_t seq, index_t hidden) {
        const index_t vocab =
            ctx.embedding_vocab > 0 ? index_t(ctx.embedding_vocab) : index_t(std::numeric_limits<std::int32_t>::max());
        cuda::embedding_backward(ctx, dword, dpositions, dpos_scale, dtype_table, dout, ids, type_ids, positions,
                                 pos_scale, batch, seq, hidden, vocab);
    }

    // The bf16 weights the matmuls read, from the fp32 master parameters.
    static void params_to_weights(context& ctx, act_t* w, const param_t* p, index_t n) { convert(ctx, w, p, n); }
    // sum(x^2) as a host double (synchronises: the clip decision is made on the host).
    static double sum_squares(context& ctx, const param_t* x, index_t n) { return cuda::sum_squares(ctx, x, n); }
    static void scale_inplace(context& ctx, param_t* x, param_t s, index_t n) { cuda::scale_inplace(ctx, x, s, n); }

    // Device memory the operations take beyond the model's buffers (for the micro-batch planner,
    // model/memory_plan.hpp): the largest per-sequence scratch (attention backward: Q, K, V, dO, dQ, dK, dV
    // in bf16 and the probabilities in fp32 and bf16), and fixed workspaces (cuBLASLt, the decoder's logits
    // chunk, and a reserve for the CUDA context and allocator slack).
    static std::size_t scratch_bytes_per_sequence(index_t seq, index_t hidden, index_t heads) {
        const std::size_t per_token = 7 * std::size_t(hidden) * sizeof(act_t) +
                                      std::size_t(heads) * std::size_t(seq) * (sizeof(float) + sizeof(act_t));
        return per_token * std::size_t(seq);
    }
    static std::size_t fixed_scratch_bytes(index_t vocab) {
        const std::size_t decoder =
            std::size_t(decoder_chunk_rows(1 << 20, vocab)) * std::size_t(vocab) * (sizeof(float) + sizeof(act_t));
        return (std::size_t(32) << 20) + decoder + (std::size_t(768) << 20);
    }

    // MLM masking on the device with the CPU's exact draws (see masking.hpp).
    static void mask_batch(context& ctx, const std::int32_t* tokens, int batch, int seq, const masking_options& opt,
                           std::uint64_t seed, std::uint64_t first_sequence, std::int32_t* ids,
                           std::int32_t* positions, std::int32_t* targets) {
        cuda::mask_batch(ctx, tokens, batch, seq, opt, seed, first_sequence, ids, positions, targets);
    }
};

}  // namespace cram::cuda
