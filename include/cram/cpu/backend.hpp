// The CPU backend as a type: what the model templates are instantiated with. It names the storage types
// and implements every op of cram::ops::backend by calling the CPU implementation in cram/ops/<family>.hpp.
// T = float for training, double for finite-difference gradient checks. R, the residual stream's type, is T
// unless asked otherwise: backend<float, double> keeps the stream wider than the rest, as the CUDA backend's fp32
// residual keeps it wider than bf16, so that the model's handling of a mixed stream is tested on any machine. Its
// mixed ops compute at the stream's width through temporaries and round what they write in T (as the GPU's norms
// read the fp32 stream and write bf16); they are for that test, not fast.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/memory_space.hpp"
#include "cram/core/platform.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/ops/activation.hpp"
#include "cram/ops/adamw.hpp"
#include "cram/ops/attention.hpp"
#include "cram/ops/backend.hpp"
#include "cram/ops/dropout.hpp"
#include "cram/ops/elementwise.hpp"
#include "cram/ops/embedding.hpp"
#include "cram/ops/gemm.hpp"
#include "cram/ops/layernorm.hpp"
#include "cram/ops/loss.hpp"
#include "cram/ops/masking.hpp"

namespace cram::cpu {

template <class T = float, class R = T>
struct backend {
    using param_t = T;  // master parameters, gradients, optimizer state
    using act_t = T;    // activations and the weights the matmuls read
    using stat_t = T;   // LayerNorm statistics
    using res_t = R;    // the residual stream of pre-norm blocks and its gradient
    static constexpr bool weights_alias_params = true;  // matmuls read the parameters themselves
    static constexpr const char* name = "cpu";
    static constexpr bool same_stream = std::is_same_v<R, T>;
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

    // ---- gemm.hpp ------------------------------------------------------------------------------
    static void linear_forward(context&, T* out, const T* in, const T* w, const T* bias, index_t rows, index_t in_f,
                               index_t out_f) {
        ops::linear_forward(out, in, w, bias, rows, in_f, out_f);
    }
    static void linear_residual_forward(context& ctx, R* out, const T* in, const T* w, const T* bias, const R* residual,
                                        index_t rows, index_t in_f, index_t out_f) {
        if constexpr (same_stream) {
            ops::linear_residual_forward(out, in, w, bias, residual, rows, in_f, out_f);
        } else {
            // the branch rounded to T before the add (the GPU adds its fp32 accumulator): within the test's tolerance
            std::vector<T> branch(std::size_t(rows) * std::size_t(out_f));
            ops::linear_forward(branch.data(), in, w, bias, rows, in_f, out_f);
            add_residual(ctx, out, residual, branch.data(), rows * out_f);
        }
    }
    static void linear_backward(context&, T* din, T* dw, T* dbias, const T* dout, const T* in, const T* w,
                                index_t rows, index_t in_f, index_t out_f) {
        ops::linear_backward(din, dw, dbias, dout, in, w, rows, in_f, out_f);
    }

    // ---- elementwise.hpp -----------------------------------------------------------------------
    static void add(context&, T* out, const T* a, const T* b, index_t n) { ops::add(out, a, b, n); }
    static void add_inplace(context&, T* acc, const T* x, index_t n) { ops::add_inplace(acc, x, n); }
    static void add_residual(context&, R* out, const R* residual, const T* branch, index_t n) {
        if constexpr (same_stream)
            ops::add(out, residual, branch, n);
        else
            for (index_t i = 0; i < n; ++i) out[i] = residual[i] + R(branch[i]);
    }
    static void to_residual(context&, R* out, const T* in, index_t n) { std::copy_n(in, n, out); }
    // whole gradient buffers: memory-bound, split over the pool
    static void add_params(context&, T* acc, const T* x, index_t n) {
        cram::parallel_for(n, 1.0, [&](std::ptrdiff_t b, std::ptrdiff_t e) { ops::add_inplace(acc + b, x + b, index_t(e - b)); });
    }
    // The weights the matmuls read are the parameters themselves here (weights_alias_params): nothing to do.
    static void params_to_weights(context&, act_t*, const param_t*, index_t) {}

    // ---- activation.hpp ------------------------------------------------------------------------
    static void gelu_forward(context&, T* out, const T* in, index_t n) { ops::gelu_forward(out, in, n); }
    static void gelu_backward(context&, T* din, const T* dout, const T* in, index_t n) {
        ops::gelu_backward(din, dout, in, n);
    }
    static void glu_forward(context&, T* out, const T* in, index_t rows, index_t inner) {
        ops::glu_forward(out, in, rows, inner);
    }
    static void glu_backward(context&, T* din, const T* dout, const T* in, index_t rows, index_t inner) {
        ops::glu_backward(din, dout, in, rows, inner);
    }
    static void tanh_forward(context&, T* out, const T* in, index_t n) { ops::tanh_forward(out, in, n); }
    static void tanh_backward(context&, T* din, const T* dout, const T* out, index_t n) {
        ops::tanh_backward(din, dout, out, n);
    }

    // ---- dropout.hpp ---------------------------------------------------------------------------
    static void dropout_forward(context&, T* out, const T* in, index_t n, float p, std::uint64_t seed,
                                std::uint32_t stream) {
        ops::dropout_forward(out, in, n, p, seed, stream);
    }
    static void dropout_backward(context&, T* din, const T* dout, index_t n, float p, std::uint64_t seed,
                                 std::uint32_t stream) {
        ops::dropout_backward(din, dout, n, p, seed, stream);
    }

    // ---- layernorm.hpp -------------------------------------------------------------------------
    static void layernorm_forward(context&, T* out, T* mean, T* rstd, const T* in, const T* w, const T* b,
                                  index_t rows, index_t cols, T eps) {
        ops::layernorm_forward(out, mean, rstd, in, w, b, rows, cols, eps);
    }
    static void add_layernorm_forward(context& ctx, R* sum, T* out, T* mean, T* rstd, const R* a, const T* b,
                                      const T* w, const T* bias, index_t rows, index_t cols, T eps) {
        if constexpr (same_stream) {
            ops::add_layernorm_forward(sum, out, mean, rstd, a, b, w, bias, rows, cols, eps);
        } else {
            add_residual(ctx, sum, a, b, rows * cols);
            residual_layernorm_forward(ctx, out, mean, rstd, sum, w, bias, rows, cols, eps);
        }
    }
    static void layernorm_backward(context&, T* din, T* dw, T* db, const T* dout, const T* in, const T* mean,
                                   const T* rstd, const T* w, index_t rows, index_t cols) {
        ops::layernorm_backward(din, dw, db, dout, in, mean, rstd, w, rows, cols);
    }
    static void residual_layernorm_forward(context&, T* out, T* mean, T* rstd, const R* in, const T* w, const T* b,
                                           index_t rows, index_t cols, T eps) {
        if constexpr (same_stream) {
            ops::layernorm_forward(out, mean, rstd, in, w, b, rows, cols, eps);
        } else {
            const std::vector<R> wr(w, w + cols), br(b, b + cols);
            std::vector<R> o(static_cast<std::size_t>(rows * cols)), mr(static_cast<std::size_t>(rows)), rr(mr.size());
            ops::layernorm_forward(o.data(), mr.data(), rr.data(), in, wr.data(), br.data(), rows, cols, R(eps));
            std::copy(o.begin(), o.end(), out);  // rounded to T, as the stream's norms write act_t
            std::copy(mr.begin(), mr.end(), mean);
            std::copy(rr.begin(), rr.end(), rstd);
        }
    }
    static void residual_layernorm_backward(context&, R* din, T* din_narrow, T* dw, T* db, const T* dout, const R* in,
                                            const T* mean, const T* rstd, const T* w, index_t rows, index_t cols) {
        CRAM_CHECK(!din_narrow || static_cast<const void*>(din_narrow) != static_cast<const void*>(din),
                   "residual_layernorm_backward: the narrowed copy must not alias din");
        if constexpr (same_stream) {
            ops::layernorm_backward(din, dw, db, dout, in, mean, rstd, w, rows, cols);
        } else {
            // din accumulates at the stream's width; the statistics are the forward's (in T, as on the GPU)
            const std::size_t n = std::size_t(rows * cols);
            const std::vector<R> dy(dout, dout + n), wr(w, w + cols), mr(mean, mean + rows), rr(rstd, rstd + rows);
            std::vector<R> dwr(static_cast<std::size_t>(cols), R(0)), dbr(dwr.size(), R(0));
            ops::layernorm_backward(din, dwr.data(), dbr.data(), dy.data(), in, mr.data(), rr.data(), wr.data(), rows,
                                    cols);
            for (index_t i = 0; i < cols; ++i) {
                dw[i] += T(dwr[std::size_t(i)]);
                db[i] += T(dbr[std::size_t(i)]);
            }
        }
        if (din_narrow)
            for (index_t i = 0; i < rows * cols; ++i) din_narrow[i] = T(din[i]);
    }

    // ---- attention.hpp -------------------------------------------------------------------------
    static void attention_forward(context&, T* out, T* probs, const T* qkv, const std::int32_t* lengths,
                                  index_t batch, index_t seq, index_t heads, index_t head_dim, float dropout,
                                  std::uint64_t seed, std::uint32_t stream) {
        ops::attention_forward(out, probs, qkv, lengths, batch, seq, heads, head_dim, dropout, seed, stream);
    }
    static std::string attention_kernels(const context&, index_t, index_t, index_t) {
        return "per (sequence, head) GEMMs in cache (cram/ops/attention.hpp)";
    }
    static void attention_backward(context&, T* dqkv, const T* dout, const T* qkv, const T* /*out*/,
                                   const T* probs, const std::int32_t* lengths, index_t batch, index_t seq, index_t heads,
                                   index_t head_dim, float dropout, std::uint64_t seed, std::uint32_t stream) {
        ops::attention_backward(dqkv, dout, qkv, probs, lengths, batch, seq, heads, head_dim, dropout, seed, stream);
    }

    // ---- embedding.hpp -------------------------------------------------------------------------
    static void embedding_forward(context&, T* out, const std::int32_t* ids, const std::int32_t* type_ids,
                                  const T* word, const T* positions, const T* pos_scale, const T* type_table,
                                  index_t batch, index_t seq, index_t hidden, index_t vocab, index_t types) {
        ops::embedding_forward(out, ids, type_ids, word, positions, pos_scale, type_table, batch, seq, hidden, vocab,
                               types);
    }
    static void embedding_backward(context&, T* dword, T* dpositions, T* dpos_scale, T* dtype_table, const T* dout,
                                   const std::int32_t* ids, const std::int32_t* type_ids, const T* positions,
                                   const T* pos_scale, index_t batch, index_t seq, index_t hidden, index_t vocab,
                                   std::int32_t pad_id) {
        ops::embedding_backward(dword, dpositions, dpos_scale, dtype_table, dout, ids, type_ids, positions, pos_scale,
                                batch, seq, hidden, vocab, pad_id);
    }
    static void gather_rows(context&, T* out, const T* in, const std::int32_t* rows, index_t n, index_t cols) {
        ops::gather_rows(out, in, rows, n, cols);
    }
    static void scatter_add_rows(context&, T* dst, const T* src, const std::int32_t* rows, index_t n, index_t cols) {
        ops::scatter_add_rows(dst, src, rows, n, cols);
    }

    // ---- loss.hpp ------------------------------------------------------------------------------
    // Losses accumulate their sum into a scalar in backend memory, so a device backend needs no host
    // synchronisation per micro-step; the caller reads it when it logs.
    static void cross_entropy(context&, T* loss_sum, T* dlogits, const T* logits, const std::int32_t* labels,
                              index_t n, index_t classes, T dscale) {
        *loss_sum += T(ops::cross_entropy(dlogits, logits, labels, n, classes, dscale));
    }
    static void squared_error(context&, T* loss_sum, T* dpred, const T* pred, const float* target, index_t n,
                              T dscale) {
        *loss_sum += T(ops::squared_error(dpred, pred, target, n, dscale));
    }
    static void decoder_cross_entropy(context&, T* loss_sum, T* dhidden, T* dw, T* dbias, const T* hidden, const T* w,
                                      const T* bias, const std::int32_t* targets, index_t n, index_t h, index_t vocab,
                                      T dscale) {
        *loss_sum += T(ops::decoder_cross_entropy(dhidden, dw, dbias, hidden, w, bias, targets, n, h, vocab, dscale));
    }
    static std::string decoder_kernels(const context&, index_t) {
        return "row chunks of up to 64 MiB of logits (cram/ops/loss.hpp)";
    }
    static void dense_labels(context&, std::int32_t* labels, index_t rows, const std::int32_t* positions,
                             const std::int32_t* targets, index_t n) {
        ops::dense_labels(labels, rows, positions, targets, n);
    }

    // ---- adamw.hpp -----------------------------------------------------------------------------
    static void adamw_step(context&, T* params, const T* grads, T* m, T* v, index_t n, const ops::adamw_hparams& hp,
                           T grad_scale) {
        ops::adamw_step(params, grads, m, v, n, hp, grad_scale);
    }
    static double sum_squares(context&, const T* x, index_t n) { return ops::sum_squares(x, n); }
    static void scale_inplace(context&, T* x, T s, index_t n) { ops::scale_inplace(x, s, n); }

    // ---- masking.hpp ---------------------------------------------------------------------------
    static void mask_batch(context&, const std::int32_t* tokens, int batch, int seq, const ops::masking_options& opt,
                           std::uint64_t seed, std::uint64_t first_sequence, std::int32_t* ids,
                           std::int32_t* positions, std::int32_t* targets) {
        ops::mask_batch(tokens, batch, seq, opt, seed, first_sequence, ids, positions, targets);
    }

    // Memory the operations take beyond the model's buffers (the micro-batch planner's question): the
    // decoder's chunk of logits (kept between steps, as every CPU op's per-thread scratch) and 16 MiB for the
    // rest of that scratch (attention's per-thread score tiles, LayerNorm's partial sums, the BLAS's buffers).
    static std::size_t scratch_bytes_per_sequence(index_t, index_t, index_t, index_t, index_t) { return 0; }
    static std::size_t fixed_scratch_bytes(index_t vocab) {
        return std::size_t(ops::cpu_decoder_chunk_rows<T>(vocab)) * std::size_t(vocab) * sizeof(T) +
               (std::size_t(16) << 20);
    }
};

static_assert(ops::backend<backend<float>>, "cpu::backend<float> must implement every op of ops/backend.hpp");
static_assert(ops::backend<backend<double>>, "cpu::backend<double> must implement every op of ops/backend.hpp");
static_assert(ops::backend<backend<float, double>>,
              "cpu::backend<float, double> must implement every op of ops/backend.hpp");

}  // namespace cram::cpu
