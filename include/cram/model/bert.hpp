// The BERT-style encoder with its MLM head, written once over a backend (cpu::backend<T> or
// cuda::backend). Everything structural comes from the config C at compile time; batch and sequence
// length are runtime values bounded at construction. The model owns its activations only: it reads
// weights from, and accumulates gradients into, views of a training state that whoever trains owns
// (bind_bert). encode() returns the forward state backward needs as a value (encoder_pass); parameter
// gradients accumulate, so gradient accumulation is just several forward_backward calls.
//
// The residual stream of pre-norm blocks (the embedding output, each block's two sums) and its gradient are kept in
// the backend's res_t: act_t, or wider (the CUDA backend's fp32 residual, as the PyTorch original keeps it under
// autocast). Every norm of the stream reads res_t and writes act_t, the matmuls' input; the backward of every norm
// of the stream also writes the stream's gradient narrowed to act_t, which the branch (or the embedding) before it
// reads. Post-norm blocks keep the stream in act_t (their stream is the norms' outputs, which the matmuls read).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/platform.hpp"
#include "cram/cpu/backend.hpp"
#include "cram/model/batch.hpp"
#include "cram/model/batch_upload.hpp"
#include "cram/model/config.hpp"
#include "cram/model/loss_meter.hpp"
#include "cram/model/parameters.hpp"
#include "cram/ops/backend.hpp"
#include "cram/ops/embedding.hpp"

namespace cram {

struct forward_options {
    float dropout = 0.0f;            // hidden dropout (embeddings, attention output, FFN output); 0 in pretraining
    std::uint64_t seed = 0;          // dropout masks derive from (seed, site); use a fresh seed per micro-step
    float attention_dropout = 0.0f;  // dropout on the attention probabilities; 0 in pretraining
};

// Where a model reads its weights and accumulates its gradients: views into buffers it does not own.
template <bert_config C, ops::backend Backend>
struct bert_parameters {
    bert_tensors<C, typename Backend::act_t> weights;   // what the matmuls read (bf16 on CUDA)
    bert_tensors<C, typename Backend::param_t> grads;   // accumulated by backward (+=)
};

// Views of the model's tensors in a training state (anything with layout(), weights() and grads(), such as
// train::training_state) whose tensors [first, ...) are bert_layout<C>()'s, in order.
template <bert_config C, ops::backend Backend, class State>
bert_parameters<C, Backend> bind_bert(State& state, std::size_t first = 0) {
    return {bind_tensors<C>(state.weights(), state.layout(), first),
            bind_tensors<C>(state.grads(), state.layout(), first)};
}

// What encode() hands to backward_encoder(): the batch and options of that forward pass and where its output is.
template <ops::backend Backend>
struct encoder_pass {
    token_batch<typename Backend::memory_space> batch;
    forward_options options;
    const typename Backend::act_t* hidden = nullptr;  // [batch*seq, hidden], valid until the next encode
};

// Whether bert<C, Backend> exists: a residual stream wider than the activations is built for pre-norm blocks only
// (post-norm blocks' stream is their norms' output, which the matmuls read in act_t).
template <bert_config C, class Backend>
inline constexpr bool bert_takes_residual_v =
    C.norm == norm_placement::pre || std::is_same_v<typename Backend::res_t, typename Backend::act_t>;

template <bert_config C, ops::backend Backend>
class bert {
    static_assert(validate_config<C>());
    static constexpr bool wide_residual = !std::is_same_v<typename Backend::res_t, typename Backend::act_t>;
    static_assert(bert_takes_residual_v<C, Backend>,
                  "a residual stream wider than the activations is built for pre-norm blocks only");

public:
    using backend = Backend;
    using context = typename Backend::context;
    using memory_space = typename Backend::memory_space;
    using param_t = typename Backend::param_t;
    using act_t = typename Backend::act_t;
    using stat_t = typename Backend::stat_t;
    using res_t = typename Backend::res_t;
    using parameters = bert_parameters<C, Backend>;
    using pass = encoder_pass<Backend>;
    template <class U>
    using buffer = typename Backend::template buffer<U>;
    static constexpr bert_config config = C;
    static constexpr int hidden = C.hidden;

    // pad_id: the word-embedding row that gets no gradient (the original's padding_idx; model_options::pad_id),
    // or -1 for none.
    bert(context& ctx, const parameters& p, int max_batch, int max_seq = C.max_seq, int pad_id = 0)
        : ctx_(ctx), max_batch_(max_batch), max_seq_(max_seq), pad_id_(pad_id), w_(p.weights), g_(p.grads) {
        CRAM_CHECK(pad_id >= -1 && pad_id < C.vocab, "pad_id ", pad_id, " is neither -1 nor a token id of a ",
                   C.vocab, "-token vocabulary");
        CRAM_CHECK(max_batch > 0, "max_batch must be positive, got ", max_batch);
        CRAM_CHECK(max_seq > 0 && max_seq <= C.max_seq, "max_seq ", max_seq, " outside [1, ", C.max_seq,
                   "] of this config");
        CRAM_CHECK(w_.word_emb && g_.word_emb, "bert: unbound parameters (use bind_bert)");
        acts_.layers.resize(C.layers);
        acts_.visit(std::size_t(max_batch) * std::size_t(max_seq), std::size_t(max_batch) * C.heads * max_seq * max_seq,
                    [](auto& buf, std::size_t count) { buf = std::remove_reference_t<decltype(buf)>(count); });
        upload_sinusoid();
    }
    bert(const bert&) = delete;
    bert& operator=(const bert&) = delete;

    static const param_layout& layout() { return bert_layout<C>(); }
    static std::size_t parameter_count() { return layout().parameter_count(); }

    // Activation bytes of a model built for `batch` sequences of `seq` tokens (what the constructor allocates
    // besides the fixed sinusoid table), from the same buffer list it allocates from.
    static std::size_t activation_bytes(int batch, int seq) {
        activations a;
        a.layers.resize(C.layers);
        std::size_t bytes = 0;
        a.visit(std::size_t(batch) * std::size_t(seq), std::size_t(batch) * C.heads * seq * seq,
                [&](auto& buf, std::size_t count) { bytes += count * sizeof(*buf.data()); });
        return bytes;
    }

    context& ctx() { return ctx_; }
    int max_batch() const { return max_batch_; }
    int max_seq() const { return max_seq_; }
    int pad_id() const { return pad_id_; }

    // ---- encoder --------------------------------------------------------------------------------
    // Runs embeddings, blocks and the final norm on a batch in the backend's memory (batch_upload gets it
    // there); the pass's hidden states [batch*seq, hidden] stay valid until the next encode. Saves every
    // activation backward_encoder needs.
    pass encode(const token_batch<memory_space>& b, const forward_options& opt = {}) {
        CRAM_CHECK(b.batch > 0 && b.batch <= max_batch_, "batch ", b.batch, " outside [1, ", max_batch_, "]");
        CRAM_CHECK(b.seq > 0 && b.seq <= max_seq_, "sequence length ", b.seq, " outside [1, ", max_seq_, "]");
        const index_t n = rows(b);
        auto& A = acts_;
        // embeddings
        const act_t* positions = C.positions == position_kind::learned ? w_.pos_emb : sinusoid_.data();
        Backend::embedding_forward(ctx_, A.emb.data(), b.ids, b.type_ids, w_.word_emb, positions, w_.pos_scale,
                                   w_.type_emb, index_t(b.batch), index_t(b.seq), index_t(hidden),
                                   index_t(C.vocab), index_t(C.token_types));
        act_t* x = embedding_output();
        if constexpr (C.embedding_norm)
            Backend::layernorm_forward(ctx_, x, A.emb_mean.data(), A.emb_rstd.data(), A.emb.data(), w_.emb_norm_w,
                                       w_.emb_norm_b, n, index_t(hidden), stat_t(C.norm_eps));
        if (opt.dropout > 0)
            Backend::dropout_forward(ctx_, x, x, n * hidden, opt.dropout, opt.seed, dropout_stream_embedding());
        if constexpr (wide_residual) Backend::to_residual(ctx_, A.stream_in.data(), x, n * hidden);
        for (int l = 0; l < C.layers; ++l) block_forward(b, opt, l);
        if constexpr (C.final_norm) {
            Backend::residual_layernorm_forward(ctx_, A.final_out.data(), A.final_mean.data(), A.final_rstd.data(),
                                                block_output(C.layers - 1), w_.final_norm_w, w_.final_norm_b, n,
                                                index_t(hidden), stat_t(C.norm_eps));
            return pass{b, opt, A.final_out.data()};
        } else {
            return pass{b, opt, block_output(C.layers - 1)};  // post-norm: the stream is act_t
        }
    }

    // Gradient with respect to a pass's hidden states, [batch*seq, hidden]: the caller writes (or
    // accumulates into) it, then calls backward_encoder(pass), which consumes it.
    act_t* d_hidden() { return acts_.d_top.data(); }

    // Backpropagates d_hidden() through the encoder of `p` (the last encode); parameter gradients accumulate.
    void backward_encoder(const pass& p) {
        auto& A = acts_;
        const token_batch<memory_space>& b = p.batch;
        const forward_options& opt = p.options;
        const index_t n = rows(b);
        if constexpr (C.final_norm) {
            Backend::zero(ctx_, A.d_res.data(), n * hidden);
            Backend::residual_layernorm_backward(ctx_, A.d_res.data(), narrowed_gradient(), g_.final_norm_w,
                                                 g_.final_norm_b, A.d_top.data(), block_output(C.layers - 1),
                                                 A.final_mean.data(), A.final_rstd.data(), w_.final_norm_w, n,
                                                 index_t(hidden));
        } else {
            Backend::copy(ctx_, A.d_res.data(), A.d_top.data(), n * hidden);  // post-norm: the stream is act_t
        }
        for (int l = C.layers - 1; l >= 0; --l) block_backward(b, opt, l);
        // embeddings
        act_t* d_x = narrow_gradient(A.d_res.data());
        if (opt.dropout > 0)
            Backend::dropout_backward(ctx_, d_x, d_x, n * hidden, opt.dropout, opt.seed, dropout_stream_embedding());
        act_t* d_emb = d_x;
        if constexpr (C.embedding_norm) {
            d_emb = A.d_scratch_h.data();
            Backend::zero(ctx_, d_emb, n * hidden);
            Backend::layernorm_backward(ctx_, d_emb, g_.emb_norm_w, g_.emb_norm_b, d_x, A.emb.data(),
                                        A.emb_mean.data(), A.emb_rstd.data(), w_.emb_norm_w, n, index_t(hidden));
        }
        const act_t* positions = C.positions == position_kind::learned ? w_.pos_emb : sinusoid_.data();
        Backend::embedding_backward(ctx_, g_.word_emb, g_.pos_emb, g_.pos_scale, g_.type_emb, d_emb, b.ids,
                                    b.type_ids, positions, w_.pos_scale, index_t(b.batch), index_t(b.seq),
                                    index_t(hidden), index_t(C.vocab), std::int32_t(pad_id_));
    }

    // ---- MLM ------------------------------------------------------------------------------------
    // One training micro-step: forward, loss and backward; gradients accumulate scaled by loss_scale
    // (1 / accumulation count), so the loss is the mean over the micro-batch's masked tokens.
    void mlm_forward_backward(const mlm_batch<memory_space>& b, const forward_options& opt = {},
                              float loss_scale = 1.0f) {
        backward_encoder(mlm_head(b, opt, true, loss_scale));
    }
    // Evaluation: loss only, no gradients.
    void mlm_forward(const mlm_batch<memory_space>& b) { mlm_head(b, {}, false, 1.0f); }

    // Mean MLM loss per masked token over the calls since the last take (synchronises a device backend).
    double take_mlm_loss() { return loss_.take(ctx_); }
    typename loss_meter<Backend>::loss_total take_mlm_loss_total() { return loss_.take_total(ctx_); }

private:
    struct layer_acts {
        buffer<act_t> ln1, qkv, probs, att, ln2, ffn_pre, ffn_act;
        buffer<res_t> sum1, sum2;  // pre-norm: the residual stream; post-norm: the sums its norms read
        buffer<stat_t> mean1, rstd1, mean2, rstd2;
    };
    // Every buffer whose size grows with the micro-batch. Forward buffers hold activations backward needs
    // (plus `branch`, the forward scratch of a block's two branches); d_* buffers hold gradients only.
    struct activations {
        buffer<act_t> emb, emb_ln, final_out, branch;
        buffer<stat_t> emb_mean, emb_rstd, final_mean, final_rstd;
        std::vector<layer_acts> layers;
        buffer<act_t> head_in, head_t, head_g, head_ln;  // head input rows (dense prediction: all) and transform
        buffer<stat_t> head_mean, head_rstd;
        buffer<std::int32_t> dense_labels;
        buffer<res_t> stream_in;  // the embedding output in res_t, when that is wider than act_t
        buffer<act_t> d_top, d_scratch_h, d_branch, d_ln, d_att, d_qkv, d_ffn_act, d_ffn_pre;
        buffer<res_t> d_res;  // the gradient of the residual stream

        // f(buffer, elements) for every buffer, sized for n = batch*seq tokens and `probs` attention weights:
        // the one list both the allocation and activation_bytes() read.
        template <class F>
        void visit(std::size_t n, std::size_t probs, F&& f) {
            const std::size_t h = hidden;
            f(emb, n * h);
            if constexpr (C.embedding_norm) {
                f(emb_ln, n * h);
                f(emb_mean, n);
                f(emb_rstd, n);
            }
            if constexpr (wide_residual) f(stream_in, n * h);
            f(branch, n * h);
            for (auto& a : layers) {
                f(a.ln1, n * h);
                f(a.qkv, n * 3 * h);
                f(a.probs, probs);
                f(a.att, n * h);
                f(a.sum1, n * h);
                f(a.ln2, n * h);
                f(a.ffn_pre, n * C.intermediate);
                f(a.ffn_act, n * C.ffn_inner());
                f(a.sum2, n * h);
                f(a.mean1, n);
                f(a.rstd1, n);
                f(a.mean2, n);
                f(a.rstd2, n);
            }
            if constexpr (C.final_norm) {
                f(final_out, n * h);
                f(final_mean, n);
                f(final_rstd, n);
            }
            f(head_in, n * h);
            if constexpr (C.head_transform) {
                f(head_t, n * h);
                f(head_g, n * h);
                f(head_ln, n * h);
                f(head_mean, n);
                f(head_rstd, n);
            }
            if constexpr (!C.sparse_prediction) f(dense_labels, n);
            for (auto* d : {&d_top, &d_scratch_h, &d_branch, &d_ln, &d_att}) f(*d, n * h);
            f(d_res, n * h);
            f(d_qkv, n * 3 * h);
            f(d_ffn_act, n * C.ffn_inner());
            f(d_ffn_pre, n * C.intermediate);
        }
    };

    static index_t rows(const token_batch<memory_space>& b) { return index_t(b.batch) * b.seq; }
    static constexpr std::uint32_t dropout_stream_embedding() { return 2u * C.layers; }
    static constexpr std::uint32_t dropout_stream_attention(int l) { return 2u * C.layers + 1u + std::uint32_t(l); }

    // Where each stage's output lives (fixed by the structure, so backward finds it without saved pointers).
    act_t* embedding_output() { return C.embedding_norm ? acts_.emb_ln.data() : acts_.emb.data(); }
    const res_t* block_output(int l) {
        if (l < 0) {
            if constexpr (wide_residual)
                return acts_.stream_in.data();
            else
                return embedding_output();
        }
        auto& a = acts_.layers[std::size_t(l)];
        if constexpr (C.norm == norm_placement::pre)
            return a.sum2.data();
        else
            return a.ln2.data();
    }
    // Where the backward of a norm of the stream writes the stream's gradient narrowed to act_t: the d_branch
    // scratch when the stream is wider, else nowhere (d_res is act_t already). Every branch's backward, and the
    // embedding's, follows such a norm (pre-norm blocks, then the final norm), so that copy is always current.
    act_t* narrowed_gradient() {
        if constexpr (wide_residual)
            return acts_.d_branch.data();
        else
            return nullptr;
    }
    // The residual stream's gradient d as act_t, for the embedding's ops: d itself, or its narrowed copy.
    act_t* narrow_gradient(res_t* d) {
        if constexpr (wide_residual)
            return narrowed_gradient();
        else
            return d;
    }

    void upload_sinusoid() {
        if constexpr (C.positions == position_kind::scaled_sinusoidal) {
            const std::size_t h = hidden;
            std::vector<act_t> table(std::size_t(C.max_seq) * h);
            std::vector<double> exact(table.size());
            ops::sinusoidal_table(exact.data(), C.max_seq, hidden);
            for (std::size_t i = 0; i < table.size(); ++i) {
                if constexpr (std::is_floating_point_v<act_t>)
                    table[i] = act_t(exact[i]);
                else
                    table[i] = act_t(static_cast<float>(exact[i]));  // bf16 converts from float
            }
            sinusoid_ = buffer<act_t>(table.size());
            Backend::to_device(ctx_, sinusoid_.data(), table.data(), index_t(table.size()));
        }
    }

    // Where a LayerNorm's output and statistics go, for a residual add that a norm follows.
    struct norm_into {
        act_t* out;
        stat_t* mean;
        stat_t* rstd;
        const act_t* w;
        const act_t* b;
    };

    // out = residual + dropout(linear(in)), a branch's output projection and its residual add, then `norm` of out
    // when given. Without dropout the add is the projection's (on a GPU the residual is the GEMM's C operand);
    // with dropout the projection is dropped (mask stream `stream`) in the `branch` scratch, then added, fused
    // with the norm when one follows.
    void project_add_residual(const forward_options& opt, res_t* out, const act_t* in, const act_t* w,
                              const act_t* bias, const res_t* residual, index_t n, index_t in_f, std::uint32_t stream,
                              const norm_into* norm = nullptr) {
        const index_t h = hidden;
        const stat_t eps = stat_t(C.norm_eps);
        if (opt.dropout > 0) {
            act_t* branch = acts_.branch.data();
            Backend::linear_forward(ctx_, branch, in, w, bias, n, in_f, h);
            Backend::dropout_forward(ctx_, branch, branch, n * h, opt.dropout, opt.seed, stream);
            if (norm) {
                Backend::add_layernorm_forward(ctx_, out, norm->out, norm->mean, norm->rstd, residual, branch,
                                               norm->w, norm->b, n, h, eps);
                return;
            }
            Backend::add_residual(ctx_, out, residual, branch, n * h);
        } else {
            Backend::linear_residual_forward(ctx_, out, in, w, bias, residual, n, in_f, h);
        }
        if (norm)
            Backend::residual_layernorm_forward(ctx_, norm->out, norm->mean, norm->rstd, out, norm->w, norm->b, n, h,
                                                eps);
    }

    // x + f(LN(x)) (pre) or LN(x + f(x)) (post), for attention then FFN; the output is block_output(l).
    void block_forward(const token_batch<memory_space>& b, const forward_options& opt, int l) {
        auto& a = acts_.layers[std::size_t(l)];
        const auto& w = w_.layers[std::size_t(l)];
        const index_t n = rows(b), h = hidden;
        const res_t* input = block_output(l - 1);
        // attention
        const act_t* attn_in = nullptr;
        if constexpr (C.norm == norm_placement::pre) {
            Backend::residual_layernorm_forward(ctx_, a.ln1.data(), a.mean1.data(), a.rstd1.data(), input, w.norm1_w,
                                                w.norm1_b, n, h, stat_t(C.norm_eps));
            attn_in = a.ln1.data();
        } else {
            attn_in = input;  // post-norm: the stream is act_t
        }
        Backend::linear_forward(ctx_, a.qkv.data(), attn_in, w.qkv_w, w.qkv_b, n, h, 3 * h);
        Backend::attention_forward(ctx_, a.att.data(), a.probs.data(), a.qkv.data(), b.lengths, index_t(b.batch),
                                   index_t(b.seq), index_t(C.heads), index_t(C.head_dim()), opt.attention_dropout,
                                   opt.seed, dropout_stream_attention(l));
        // the norm after the attention's residual add: the FFN's input norm (pre) or the block's first (post)
        const norm_into ffn_norm =
            C.norm == norm_placement::pre
                ? norm_into{a.ln2.data(), a.mean2.data(), a.rstd2.data(), w.norm2_w, w.norm2_b}
                : norm_into{a.ln1.data(), a.mean1.data(), a.rstd1.data(), w.norm1_w, w.norm1_b};
        project_add_residual(opt, a.sum1.data(), a.att.data(), w.out_w, w.out_b, input, n, h, std::uint32_t(2 * l),
                             &ffn_norm);
        // FFN
        const act_t* ffn_in = ffn_norm.out;
        Backend::linear_forward(ctx_, a.ffn_pre.data(), ffn_in, w.ffn_in_w, w.ffn_in_b, n, h,
                                index_t(C.intermediate));
        if constexpr (C.ffn == ffn_kind::gelu_glu)
            Backend::glu_forward(ctx_, a.ffn_act.data(), a.ffn_pre.data(), n, index_t(C.ffn_inner()));
        else
            Backend::gelu_forward(ctx_, a.ffn_act.data(), a.ffn_pre.data(), n * C.intermediate);
        // the FFN's residual is its un-normalised input (pre) or the normalised one (post); post-norm ends the
        // block with LN2 of the sum
        const res_t* ffn_residual = nullptr;
        if constexpr (C.norm == norm_placement::pre)
            ffn_residual = a.sum1.data();
        else
            ffn_residual = a.ln1.data();
        const norm_into out_norm{a.ln2.data(), a.mean2.data(), a.rstd2.data(), w.norm2_w, w.norm2_b};
        project_add_residual(opt, a.sum2.data(), a.ffn_act.data(), w.ffn_out_w, w.ffn_out_b, ffn_residual, n,
                             index_t(C.ffn_inner()), std::uint32_t(2 * l + 1),
                             C.norm == norm_placement::post ? &out_norm : nullptr);
    }

    // The gradient a branch's output projection reads: the stream's gradient d as act_t (d, or the narrowed copy
    // the norm backward before wrote into d_branch), passed back through the branch's dropout (mask stream
    // `stream`) into d_branch. d itself is left alone: the norm's backward adds into it afterwards.
    const act_t* branch_gradient(const res_t* d, const forward_options& opt, std::uint32_t stream, index_t count) {
        act_t* scratch = acts_.d_branch.data();
        const act_t* g = nullptr;
        if constexpr (wide_residual)
            g = narrowed_gradient();
        else
            g = d;
        if (opt.dropout > 0) {
            Backend::dropout_backward(ctx_, scratch, g, count, opt.dropout, opt.seed, stream);
            g = scratch;
        }
        return g;
    }

    // FFN branch backward: from the gradient of its output to d_ln (gradient of its input).
    void ffn_backward(const token_batch<memory_space>& b, const forward_options& opt, int l, const res_t* d_stream,
                      const act_t* ffn_in) {
        auto& A = acts_;
        auto& a = A.layers[std::size_t(l)];
        const auto& w = w_.layers[std::size_t(l)];
        auto& g = g_.layers[std::size_t(l)];
        const index_t n = rows(b), h = hidden;
        const act_t* d_out = branch_gradient(d_stream, opt, std::uint32_t(2 * l + 1), n * h);
        Backend::linear_backward(ctx_, A.d_ffn_act.data(), g.ffn_out_w, g.ffn_out_b, d_out, a.ffn_act.data(),
                                 w.ffn_out_w, n, index_t(C.ffn_inner()), h);
        if constexpr (C.ffn == ffn_kind::gelu_glu)
            Backend::glu_backward(ctx_, A.d_ffn_pre.data(), A.d_ffn_act.data(), a.ffn_pre.data(), n,
                                  index_t(C.ffn_inner()));
        else
            Backend::gelu_backward(ctx_, A.d_ffn_pre.data(), A.d_ffn_act.data(), a.ffn_pre.data(),
                                   n * C.intermediate);
        Backend::linear_backward(ctx_, A.d_ln.data(), g.ffn_in_w, g.ffn_in_b, A.d_ffn_pre.data(), ffn_in,
                                 w.ffn_in_w, n, h, index_t(C.intermediate));
    }

    // Attention branch backward: from the gradient of its output to d_ln (gradient of its input).
    void attention_backward(const token_batch<memory_space>& b, const forward_options& opt, int l,
                            const res_t* d_stream, const act_t* attn_in) {
        auto& A = acts_;
        auto& a = A.layers[std::size_t(l)];
        const auto& w = w_.layers[std::size_t(l)];
        auto& g = g_.layers[std::size_t(l)];
        const index_t n = rows(b), h = hidden;
        const act_t* d_out = branch_gradient(d_stream, opt, std::uint32_t(2 * l), n * h);
        Backend::linear_backward(ctx_, A.d_att.data(), g.out_w, g.out_b, d_out, a.att.data(), w.out_w, n, h, h);
        Backend::attention_backward(ctx_, A.d_qkv.data(), A.d_att.data(), a.qkv.data(), a.att.data(), a.probs.data(),
                                    b.lengths, index_t(b.batch), index_t(b.seq), index_t(C.heads),
                                    index_t(C.head_dim()), opt.attention_dropout, opt.seed, dropout_stream_attention(l));
        Backend::linear_backward(ctx_, A.d_ln.data(), g.qkv_w, g.qkv_b, A.d_qkv.data(), attn_in, w.qkv_w, n, h,
                                 3 * h);
    }

    // d_res holds the gradient of the block output on entry and of the block input on exit.
    void block_backward(const token_batch<memory_space>& b, const forward_options& opt, int l) {
        auto& A = acts_;
        auto& a = A.layers[std::size_t(l)];
        const auto& w = w_.layers[std::size_t(l)];
        auto& g = g_.layers[std::size_t(l)];
        const index_t n = rows(b), h = hidden;
        const res_t* input = block_output(l - 1);
        res_t* d_res = A.d_res.data();
        if constexpr (C.norm == norm_placement::pre) {
            // sum2 = sum1 + ffn(LN2(sum1));  sum1 = input + attn(LN1(input))
            ffn_backward(b, opt, l, d_res, a.ln2.data());
            Backend::residual_layernorm_backward(ctx_, d_res, narrowed_gradient(), g.norm2_w, g.norm2_b,
                                                 A.d_ln.data(), a.sum1.data(), a.mean2.data(), a.rstd2.data(),
                                                 w.norm2_w, n, h);
            attention_backward(b, opt, l, d_res, a.ln1.data());
            Backend::residual_layernorm_backward(ctx_, d_res, narrowed_gradient(), g.norm1_w, g.norm1_b,
                                                 A.d_ln.data(), input, a.mean1.data(), a.rstd1.data(), w.norm1_w, n,
                                                 h);
        } else {
            // out = LN2(y1 + ffn(y1));  y1 = LN1(input + attn(input))
            act_t* d_s = A.d_scratch_h.data();
            Backend::zero(ctx_, d_s, n * h);
            Backend::layernorm_backward(ctx_, d_s, g.norm2_w, g.norm2_b, d_res, a.sum2.data(), a.mean2.data(),
                                        a.rstd2.data(), w.norm2_w, n, h);
            ffn_backward(b, opt, l, d_s, a.ln1.data());
            Backend::add_inplace(ctx_, d_s, A.d_ln.data(), n * h);
            Backend::zero(ctx_, d_res, n * h);
            Backend::layernorm_backward(ctx_, d_res, g.norm1_w, g.norm1_b, d_s, a.sum1.data(), a.mean1.data(),
                                        a.rstd1.data(), w.norm1_w, n, h);
            attention_backward(b, opt, l, d_res, input);
            Backend::add_inplace(ctx_, d_res, A.d_ln.data(), n * h);
        }
    }

    // Encoder, MLM head and (when training) the whole head backward, leaving d_top for the encoder.
    pass mlm_head(const mlm_batch<memory_space>& b, const forward_options& opt, bool train, float loss_scale) {
        CRAM_CHECK(b.num_masked > 0, "an MLM batch needs at least one masked position");
        auto& A = acts_;
        const pass p = encode(token_batch<memory_space>{b.batch, b.seq, b.ids, b.type_ids, nullptr}, opt);
        const index_t n = rows(p.batch), h = hidden;
        index_t r = b.num_masked;  // rows through the decoder
        const act_t* dec_in = p.hidden;
        const std::int32_t* targets = b.masked_targets;
        if constexpr (C.sparse_prediction) {
            Backend::gather_rows(ctx_, A.head_in.data(), p.hidden, b.masked_positions, r, h);
            dec_in = A.head_in.data();
        } else {
            r = n;
            Backend::dense_labels(ctx_, A.dense_labels.data(), n, b.masked_positions, b.masked_targets,
                                  index_t(b.num_masked));
            targets = A.dense_labels.data();
        }
        const act_t* hs = dec_in;  // head input, kept for the transform's backward
        if constexpr (C.head_transform) {
            Backend::linear_forward(ctx_, A.head_t.data(), hs, w_.head_w, w_.head_b, r, h, h);
            Backend::gelu_forward(ctx_, A.head_g.data(), A.head_t.data(), r * h);
            Backend::layernorm_forward(ctx_, A.head_ln.data(), A.head_mean.data(), A.head_rstd.data(),
                                       A.head_g.data(), w_.head_norm_w, w_.head_norm_b, r, h, stat_t(C.norm_eps));
            dec_in = A.head_ln.data();
        }
        loss_.count(b.num_masked);
        const param_t dscale = param_t(loss_scale / static_cast<float>(b.num_masked));
        act_t* d_dec = train ? A.d_scratch_h.data() : nullptr;
        Backend::decoder_cross_entropy(ctx_, loss_.sum(), d_dec, train ? g_.decoder_w : nullptr,
                                       train ? g_.decoder_b : nullptr, dec_in, w_.decoder_w, w_.decoder_b, targets, r,
                                       h, index_t(C.vocab), dscale);
        if (!train) return p;
        act_t* d_hs = d_dec;
        if constexpr (C.head_transform) {
            Backend::zero(ctx_, A.d_ln.data(), r * h);
            Backend::layernorm_backward(ctx_, A.d_ln.data(), g_.head_norm_w, g_.head_norm_b, d_dec, A.head_g.data(),
                                        A.head_mean.data(), A.head_rstd.data(), w_.head_norm_w, r, h);
            Backend::gelu_backward(ctx_, A.d_att.data(), A.d_ln.data(), A.head_t.data(), r * h);
            Backend::linear_backward(ctx_, A.d_branch.data(), g_.head_w, g_.head_b, A.d_att.data(), hs, w_.head_w,
                                     r, h, h);
            d_hs = A.d_branch.data();
        }
        if constexpr (C.sparse_prediction) {
            Backend::zero(ctx_, A.d_top.data(), n * h);
            Backend::scatter_add_rows(ctx_, A.d_top.data(), d_hs, b.masked_positions, r, h);
        } else {
            Backend::copy(ctx_, A.d_top.data(), d_hs, n * h);
        }
        return p;
    }

    context& ctx_;
    int max_batch_, max_seq_;
    int pad_id_;
    bert_tensors<C, act_t> w_;
    bert_tensors<C, param_t> g_;
    activations acts_;
    buffer<act_t> sinusoid_;  // the fixed sin/cos table of scaled sinusoidal positions
    loss_meter<Backend> loss_{ctx_};
};

// The CPU model in float, the common case of tests and CPU runs.
template <bert_config C>
using cpu_bert = bert<C, cpu::backend<float>>;

}  // namespace cram
