// The CUDA backend as a type, the twin of the CPU backend (cpu/backend.hpp); both satisfy ops::backend. It is a
// template over the 16-bit type of the activations and of the weight copy the matmuls read: cuda::backend
// (bf16, sm_80+, what every existing user gets) and cuda::fp16_backend (fp16, sm_70+: Turing's RTX 2080 Ti has
// no bf16; the trainer adds dynamic loss scaling, train/precision.hpp). Master parameters, gradients and AdamW
// state are fp32 in both, the weight copy is refreshed by params_to_weights after each optimizer step, and
// LayerNorm statistics, softmax, losses and every reduction are fp32. Every operation is enqueued on the
// context's stream: nothing here synchronises except to_host, sum_squares and synchronize. Each op is a
// phase_scope: with context::phases on (a profiler: bench_cuda_train), its GPU time is recorded per op.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include <cuda_runtime.h>

#include "cram/core/bf16.hpp"
#include "cram/core/error.hpp"
#include "cram/core/fp16.hpp"
#include "cram/cuda/activation.hpp"
#include "cram/cuda/adamw.hpp"
#include "cram/cuda/attention.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/dropout.hpp"
#include "cram/cuda/elementwise.hpp"
#include "cram/cuda/embedding.hpp"
#include "cram/cuda/error.hpp"
#include "cram/cuda/gemm.hpp"
#include "cram/cuda/layernorm.hpp"
#include "cram/cuda/loss.hpp"
#include "cram/cuda/masking.hpp"
#include "cram/cuda/memory.hpp"
#include "cram/ops/backend.hpp"

namespace cram::cuda {

template <class Act, class Res = Act>
struct basic_backend {
    static_assert(std::is_same_v<Act, cram::bf16> || std::is_same_v<Act, cram::fp16>,
                  "cram::cuda: activations are cram::bf16 (sm_80+) or cram::fp16 (sm_70+)");
    static_assert(std::is_same_v<Res, Act> || std::is_same_v<Res, float>,
                  "cram::cuda: the residual stream is the activations' type or fp32");
    using param_t = float;  // master parameters, gradients, optimizer state
    using act_t = Act;      // activations and the weights the matmuls read
    using stat_t = float;   // LayerNorm statistics
    using res_t = Res;      // the residual stream of pre-norm blocks and its gradient (fp32: the residual_fp32 ones)
    static constexpr bool weights_alias_params = false;  // a 16-bit copy of the fp32 master weights
    static constexpr const char* name = "cuda";

    // Throws, saying what to use instead, when the context's device cannot compute in act_t (bf16 below sm_80).
    static void require_device_support(const cuda::context& ctx) {
        device_probe p;
        p.name = ctx.props().name;
        p.major = ctx.props().major;
        p.minor = ctx.props().minor;
        const std::string problem = activation_type_problem<act_t>(p);
        if (!problem.empty()) CRAM_THROW(problem);
    }
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

    // ---- gemm.hpp ------------------------------------------------------------------------------
    static void linear_forward(context& ctx, act_t* out, const act_t* in, const act_t* w, const act_t* bias,
                               index_t rows, index_t in_f, index_t out_f) {
        const phase_scope timed(ctx.phases, ctx.stream(), "linear_forward", in_f, out_f);
        cuda::linear_forward(ctx, out, in, w, bias, rows, in_f, out_f);
    }
    static void linear_residual_forward(context& ctx, res_t* out, const act_t* in, const act_t* w, const act_t* bias,
                                        const res_t* residual, index_t rows, index_t in_f, index_t out_f) {
        const phase_scope timed(ctx.phases, ctx.stream(), "linear_residual_forward", in_f, out_f);
        cuda::linear_residual_forward(ctx, out, in, w, bias, residual, rows, in_f, out_f);
    }
    static void linear_backward(context& ctx, act_t* din, param_t* dw, param_t* dbias, const act_t* dout,
                                const act_t* in, const act_t* w, index_t rows, index_t in_f, index_t out_f) {
        const phase_scope timed(ctx.phases, ctx.stream(), "linear_backward", in_f, out_f);
        cuda::linear_backward(ctx, din, dw, dbias, dout, in, w, rows, in_f, out_f);
    }

    // ---- elementwise.hpp -----------------------------------------------------------------------
    static void add(context& ctx, act_t* out, const act_t* a, const act_t* b, index_t n) {
        const phase_scope timed(ctx.phases, ctx.stream(), "add");
        cuda::add(ctx, out, a, b, n);
    }
    static void add_inplace(context& ctx, act_t* acc, const act_t* x, index_t n) {
        const phase_scope timed(ctx.phases, ctx.stream(), "add_inplace");
        cuda::add_inplace(ctx, acc, x, n);
    }
    static void add_residual(context& ctx, res_t* out, const res_t* residual, const act_t* branch, index_t n) {
        const phase_scope timed(ctx.phases, ctx.stream(), "add_residual");
        cuda::add_residual(ctx, out, residual, branch, n);
    }
    static void to_residual(context& ctx, res_t* out, const act_t* in, index_t n) {
        const phase_scope timed(ctx.phases, ctx.stream(), "to_residual");
        cuda::convert(ctx, out, in, n);
    }
    static void add_params(context& ctx, param_t* acc, const param_t* x, index_t n) {
        const phase_scope timed(ctx.phases, ctx.stream(), "add_params");
        cuda::add_inplace(ctx, acc, x, n);
    }
    // The 16-bit weights the matmuls read, from the fp32 master parameters (rounded to nearest even; fp16 keeps
    // weights up to 65504, far above any this model holds).
    static void params_to_weights(context& ctx, act_t* w, const param_t* p, index_t n) {
        const phase_scope timed(ctx.phases, ctx.stream(), "params_to_weights");
        cuda::convert(ctx, w, p, n);
    }

    // ---- activation.hpp ------------------------------------------------------------------------
    static void gelu_forward(context& ctx, act_t* out, const act_t* in, index_t n) {
        const phase_scope timed(ctx.phases, ctx.stream(), "gelu_forward");
        cuda::gelu_forward(ctx, out, in, n);
    }
    static void gelu_backward(context& ctx, act_t* din, const act_t* dout, const act_t* in, index_t n) {
        const phase_scope timed(ctx.phases, ctx.stream(), "gelu_backward");
        cuda::gelu_backward(ctx, din, dout, in, n);
    }
    static void glu_forward(context& ctx, act_t* out, const act_t* in, index_t rows, index_t inner) {
        const phase_scope timed(ctx.phases, ctx.stream(), "glu_forward");
        cuda::glu_forward(ctx, out, in, rows, inner);
    }
    static void glu_backward(context& ctx, act_t* din, const act_t* dout, const act_t* in, index_t rows,
                             index_t inner) {
        const phase_scope timed(ctx.phases, ctx.stream(), "glu_backward");
        cuda::glu_backward(ctx, din, dout, in, rows, inner);
    }
    static void tanh_forward(context& ctx, act_t* out, const act_t* in, index_t n) {
        const phase_scope timed(ctx.phases, ctx.stream(), "tanh_forward");
        cuda::tanh_forward(ctx, out, in, n);
    }
    static void tanh_backward(context& ctx, act_t* din, const act_t* dout, const act_t* out, index_t n) {
        const phase_scope timed(ctx.phases, ctx.stream(), "tanh_backward");
        cuda::tanh_backward(ctx, din, dout, out, n);
    }

    // ---- dropout.hpp ---------------------------------------------------------------------------
    static void dropout_forward(context& ctx, act_t* out, const act_t* in, index_t n, float p, std::uint64_t seed,
                                std::uint32_t stream) {
        const phase_scope timed(ctx.phases, ctx.stream(), "dropout_forward");
        cuda::dropout_forward(ctx, out, in, n, p, seed, stream);
    }
    static void dropout_backward(context& ctx, act_t* din, const act_t* dout, index_t n, float p, std::uint64_t seed,
                                 std::uint32_t stream) {
        const phase_scope timed(ctx.phases, ctx.stream(), "dropout_backward");
        cuda::dropout_backward(ctx, din, dout, n, p, seed, stream);
    }

    // ---- layernorm.hpp -------------------------------------------------------------------------
    static void layernorm_forward(context& ctx, act_t* out, stat_t* mean, stat_t* rstd, const act_t* in,
                                  const act_t* w, const act_t* b, index_t rows, index_t cols, stat_t eps) {
        const phase_scope timed(ctx.phases, ctx.stream(), "layernorm_forward");
        cuda::layernorm_forward(ctx, out, mean, rstd, in, w, b, rows, cols, eps);
    }
    static void add_layernorm_forward(context& ctx, res_t* sum, act_t* out, stat_t* mean, stat_t* rstd,
                                      const res_t* a, const act_t* b, const act_t* w, const act_t* bias,
                                      index_t rows, index_t cols, stat_t eps) {
        const phase_scope timed(ctx.phases, ctx.stream(), "add_layernorm_forward");
        cuda::add_layernorm_forward(ctx, sum, out, mean, rstd, a, b, w, bias, rows, cols, eps);
    }
    static void layernorm_backward(context& ctx, act_t* din, param_t* dw, param_t* db, const act_t* dout,
                                   const act_t* in, const stat_t* mean, const stat_t* rstd, const act_t* w,
                                   index_t rows, index_t cols) {
        const phase_scope timed(ctx.phases, ctx.stream(), "layernorm_backward");
        cuda::layernorm_backward(ctx, din, dw, db, dout, in, mean, rstd, w, rows, cols);
    }
    static void residual_layernorm_forward(context& ctx, act_t* out, stat_t* mean, stat_t* rstd, const res_t* in,
                                           const act_t* w, const act_t* b, index_t rows, index_t cols, stat_t eps) {
        const phase_scope timed(ctx.phases, ctx.stream(), "layernorm_forward");
        cuda::layernorm_forward(ctx, out, mean, rstd, in, w, b, rows, cols, eps);
    }
    static void residual_layernorm_backward(context& ctx, res_t* din, act_t* din_narrow, param_t* dw, param_t* db,
                                            const act_t* dout, const res_t* in, const stat_t* mean,
                                            const stat_t* rstd, const act_t* w, index_t rows, index_t cols) {
        const phase_scope timed(ctx.phases, ctx.stream(), "layernorm_backward");
        cuda::layernorm_backward(ctx, din, dw, db, dout, in, mean, rstd, w, rows, cols, din_narrow);
    }

    // ---- attention.hpp -------------------------------------------------------------------------
    static void attention_forward(context& ctx, act_t* out, act_t* probs, const act_t* qkv,
                                  const std::int32_t* lengths, index_t batch, index_t seq, index_t heads,
                                  index_t head_dim, float dropout, std::uint64_t seed, std::uint32_t stream) {
        const phase_scope timed(ctx.phases, ctx.stream(), "attention_forward");
        cuda::attention_forward(ctx, out, probs, qkv, lengths, batch, seq, heads, head_dim, dropout, seed, stream);
    }
    static std::string attention_kernels(const context& ctx, index_t seq, index_t heads, index_t head_dim) {
        const attention_route r = attention_route_for<act_t>(ctx, seq, heads, head_dim);
        return r.flash ? std::string("flash kernels (cram/cuda/flash_attention.hpp)")
                       : std::string("GEMM path (") + r.why + ")";
    }
    static void attention_backward(context& ctx, act_t* dqkv, const act_t* dout, const act_t* qkv,
                                   const act_t* out, const act_t* probs, const std::int32_t* lengths, index_t batch,
                                   index_t seq, index_t heads, index_t head_dim, float dropout, std::uint64_t seed,
                                   std::uint32_t stream) {
        const phase_scope timed(ctx.phases, ctx.stream(), "attention_backward");
        cuda::attention_backward(ctx, dqkv, dout, qkv, out, probs, lengths, batch, seq, heads, head_dim, dropout, seed,
                                 stream);
    }

    // ---- embedding.hpp -------------------------------------------------------------------------
    static void embedding_forward(context& ctx, act_t* out, const std::int32_t* ids, const std::int32_t* type_ids,
                                  const act_t* word, const act_t* positions, const act_t* pos_scale,
                                  const act_t* type_table, index_t batch, index_t seq, index_t hidden, index_t vocab,
                                  index_t types) {
        const phase_scope timed(ctx.phases, ctx.stream(), "embedding_forward");
        cuda::embedding_forward(ctx, out, ids, type_ids, word, positions, pos_scale, type_table, batch, seq, hidden,
                                vocab, types);
    }
    static void embedding_backward(context& ctx, param_t* dword, param_t* dpositions, param_t* dpos_scale,
                                   param_t* dtype_table, const act_t* dout, const std::int32_t* ids,
                                   const std::int32_t* type_ids, const act_t* positions, const act_t* pos_scale,
                                   index_t batch, index_t seq, index_t hidden, index_t vocab, std::int32_t pad_id) {
        const phase_scope timed(ctx.phases, ctx.stream(), "embedding_backward");
        cuda::embedding_backward(ctx, dword, dpositions, dpos_scale, dtype_table, dout, ids, type_ids, positions,
                                 pos_scale, batch, seq, hidden, vocab, pad_id);
    }
    static void gather_rows(context& ctx, act_t* out, const act_t* in, const std::int32_t* rows, index_t n,
                            index_t cols) {
        const phase_scope timed(ctx.phases, ctx.stream(), "gather_rows");
        cuda::gather_rows(ctx, out, in, rows, n, cols);
    }
    static void scatter_add_rows(context& ctx, act_t* dst, const act_t* src, const std::int32_t* rows, index_t n,
                                 index_t cols) {
        const phase_scope timed(ctx.phases, ctx.stream(), "scatter_add_rows");
        cuda::scatter_add_rows(ctx, dst, src, rows, n, cols);
    }

    // ---- loss.hpp ------------------------------------------------------------------------------
    static void cross_entropy(context& ctx, param_t* loss_sum, act_t* dlogits, const act_t* logits,
                              const std::int32_t* labels, index_t n, index_t classes, param_t dscale) {
        const phase_scope timed(ctx.phases, ctx.stream(), "cross_entropy");
        cuda::cross_entropy(ctx, loss_sum, dlogits, logits, labels, n, classes, dscale);
    }
    static void squared_error(context& ctx, param_t* loss_sum, act_t* dpred, const act_t* pred, const float* target,
                              index_t n, param_t dscale) {
        const phase_scope timed(ctx.phases, ctx.stream(), "squared_error");
        cuda::squared_error(ctx, loss_sum, dpred, pred, target, n, dscale);
    }
    static void decoder_cross_entropy(context& ctx, param_t* loss_sum, act_t* dhidden, param_t* dw, param_t* dbias,
                                      const act_t* hidden, const act_t* w, const act_t* bias,
                                      const std::int32_t* targets, index_t n, index_t h, index_t vocab,
                                      param_t dscale) {
        const phase_scope timed(ctx.phases, ctx.stream(), "decoder_cross_entropy");
        cuda::decoder_cross_entropy(ctx, loss_sum, dhidden, dw, dbias, hidden, w, bias, targets, n, h, vocab, dscale);
    }
    static std::string decoder_kernels(const context& ctx, index_t vocab) {
        const decoder_route r = decoder_route_for(ctx, vocab);
        return r.fused ? std::string("fused: 16-bit logits, loss and gradient in one pass, every masked row in one "
                                     "chunk where memory allows (cram/cuda/loss.hpp)")
                       : std::string("chunked: fp32 logits, 192 MiB of rows at a time (") + r.why + ")";
    }
    static void dense_labels(context& ctx, std::int32_t* labels, index_t rows, const std::int32_t* positions,
                             const std::int32_t* targets, index_t n) {
        const phase_scope timed(ctx.phases, ctx.stream(), "dense_labels");
        cuda::dense_labels(ctx, labels, rows, positions, targets, n);
    }

    // ---- adamw.hpp -----------------------------------------------------------------------------
    static void adamw_step(context& ctx, param_t* params, const param_t* grads, param_t* m, param_t* v, index_t n,
                           const ops::adamw_hparams& hp, param_t grad_scale) {
        const phase_scope timed(ctx.phases, ctx.stream(), "adamw_step");
        cuda::adamw_step(ctx, params, grads, m, v, n, hp, grad_scale);
    }
    // sum(x^2) as a host double (synchronises: the clip decision is made on the host).
    static double sum_squares(context& ctx, const param_t* x, index_t n) { return cuda::sum_squares(ctx, x, n); }
    static void scale_inplace(context& ctx, param_t* x, param_t s, index_t n) {
        const phase_scope timed(ctx.phases, ctx.stream(), "scale_inplace");
        cuda::scale_inplace(ctx, x, s, n);
    }

    // Device memory the operations take beyond the model's buffers (for the micro-batch planner,
    // model/memory_plan.hpp): the largest per-sequence scratch of one op (ops share the arena one at a time):
    // attention backward's (Q, K, V, dO, dQ, dK, dV in act_t, the probabilities in fp32 and act_t, and with
    // attention dropout their dropped copy in act_t) or the fused decoder's 16-bit logits of the sequence's
    // decoder_rows (so the planner leaves room for one chunk per micro-step); and fixed workspaces (cuBLASLt,
    // the chunked decoder's logits, and a reserve for the CUDA context and allocator slack).
    static std::size_t scratch_bytes_per_sequence(index_t seq, index_t hidden, index_t heads, index_t vocab,
                                                  index_t decoder_rows) {
        const std::size_t per_token = 7 * std::size_t(hidden) * sizeof(act_t) +
                                      std::size_t(heads) * std::size_t(seq) * (sizeof(float) + 2 * sizeof(act_t));
        const std::size_t decoder = std::size_t(decoder_rows) * std::size_t(vocab) * sizeof(act_t);
        return std::max(per_token * std::size_t(seq), decoder);
    }
    static std::size_t fixed_scratch_bytes(index_t vocab) {
        const std::size_t decoder =
            std::size_t(decoder_chunk_rows(1 << 20, vocab)) * std::size_t(vocab) * (sizeof(float) + sizeof(act_t));
        return (std::size_t(32) << 20) + decoder + (std::size_t(768) << 20);
    }

    // ---- masking.hpp ---------------------------------------------------------------------------
    // MLM masking on the device with the CPU's exact draws.
    static void mask_batch(context& ctx, const std::int32_t* tokens, int batch, int seq,
                           const ops::masking_options& opt, std::uint64_t seed, std::uint64_t first_sequence,
                           std::int32_t* ids, std::int32_t* positions, std::int32_t* targets) {
        const phase_scope timed(ctx.phases, ctx.stream(), "mask_batch");
        cuda::mask_batch(ctx, tokens, batch, seq, opt, seed, first_sequence, ids, positions, targets);
    }
};

// The bf16 backend (sm_80+), unchanged for every existing user, and the fp16 one (sm_70+, with loss scaling).
using backend = basic_backend<cram::bf16>;
using fp16_backend = basic_backend<cram::fp16>;
// bf16 (or fp16) activations with the residual stream of pre-norm blocks and its gradient in fp32, as the PyTorch
// original keeps them under autocast (train --residual fp32). Not yet run on a GPU (docs/cuda.md).
using residual_fp32_backend = basic_backend<cram::bf16, float>;
using fp16_residual_fp32_backend = basic_backend<cram::fp16, float>;

static_assert(ops::backend<backend>, "cuda::backend must implement every op of ops/backend.hpp");
static_assert(ops::backend<fp16_backend>, "cuda::fp16_backend must implement every op of ops/backend.hpp");
static_assert(ops::backend<residual_fp32_backend>,
              "cuda::residual_fp32_backend must implement every op of ops/backend.hpp");
static_assert(ops::backend<fp16_residual_fp32_backend>,
              "cuda::fp16_residual_fp32_backend must implement every op of ops/backend.hpp");

}  // namespace cram::cuda
