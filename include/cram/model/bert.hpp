// The BERT-style encoder with its MLM head, written once over a backend (cpu::backend<T> or
// cuda::backend). Everything structural comes from the config C at compile time; batch and sequence
// length are runtime values bounded at construction. The model owns one flat parameter buffer, one
// flat gradient buffer (same layout) and its activations; forward saves what backward needs, and
// parameter gradients accumulate, so gradient accumulation is just several forward_backward calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/platform.hpp"
#include "cram/cpu/backend.hpp"
#include "cram/model/batch.hpp"
#include "cram/model/config.hpp"
#include "cram/model/loss_meter.hpp"
#include "cram/model/parameters.hpp"
#include "cram/ops/embedding.hpp"

namespace cram {

struct forward_options {
    float dropout = 0.0f;     // hidden dropout (embeddings, attention output, FFN output); 0 in pretraining
    std::uint64_t seed = 0;   // dropout masks derive from (seed, site); use a fresh seed per micro-step
};

template <bert_config C, class Backend = cpu::backend<float>>
class bert {
    static_assert(validate_config<C>());

public:
    using backend = Backend;
    using context = typename Backend::context;
    using param_t = typename Backend::param_t;
    using act_t = typename Backend::act_t;
    using stat_t = typename Backend::stat_t;
    template <class U>
    using buffer = typename Backend::template buffer<U>;
    static constexpr bert_config config = C;
    static constexpr int hidden = C.hidden;

    bert(context& ctx, int max_batch, int max_seq = C.max_seq)
        : ctx_(ctx), max_batch_(max_batch), max_seq_(max_seq),
          params_(layout().buffer_size()), grads_(layout().buffer_size()),
          weights_(Backend::weights_alias_params ? 0 : layout().buffer_size()) {
        CRAM_CHECK(max_batch > 0, "max_batch must be positive, got ", max_batch);
        CRAM_CHECK(max_seq > 0 && max_seq <= C.max_seq, "max_seq ", max_seq, " outside [1, ", C.max_seq,
                   "] of this config");
        p_ = bind_tensors<C, param_t>(params_.data());
        g_ = bind_tensors<C, param_t>(grads_.data());
        if constexpr (Backend::weights_alias_params)
            w_ = bind_tensors<C, act_t>(reinterpret_cast<act_t*>(params_.data()));
        else
            w_ = bind_tensors<C, act_t>(weights_.data());
        allocate_activations();
        zero_grads();
    }
    bert(const bert&) = delete;
    bert& operator=(const bert&) = delete;

    static const param_layout& layout() { return bert_layout<C>(); }
    static std::size_t parameter_count() { return layout().parameter_count(); }

    // normal(0, init_std) matrices and embeddings (pad row zero), LayerNorm 1/0, position scale 1/sqrt(hidden).
    void init(std::uint64_t seed) {
        std::vector<param_t> host(layout().buffer_size(), param_t(0));
        init_parameters(host.data(), layout(), seed, C.init_std, C.hidden, C.pad_id);
        load_parameters(host.data());
    }
    // Copies a host buffer in this layout into the model (checkpoint load) and refreshes the weights.
    void load_parameters(const param_t* host) {
        Backend::to_device(ctx_, params_.data(), host, n_params());
        sync_weights();
    }
    void store_parameters(param_t* host) { Backend::to_host(ctx_, host, params_.data(), n_params()); }

    param_t* params() { return params_.data(); }
    param_t* grads() { return grads_.data(); }
    std::size_t buffer_size() const { return layout().buffer_size(); }
    const bert_tensors<C, param_t>& param_tensors() const { return p_; }
    const bert_tensors<C, param_t>& grad_tensors() const { return g_; }
    context& ctx() { return ctx_; }
    int max_batch() const { return max_batch_; }
    int max_seq() const { return max_seq_; }

    void zero_grads() { Backend::zero(ctx_, grads_.data(), n_params()); }
    // After the optimizer changed the master parameters: refresh the copy the matmuls read.
    void sync_weights() {
        if constexpr (!Backend::weights_alias_params)
            Backend::params_to_weights(ctx_, weights_.data(), params_.data(), n_params());
    }

    // ---- encoder --------------------------------------------------------------------------------
    // Runs embeddings, blocks and the final norm; returns the hidden states [batch*seq, hidden] (valid
    // until the next forward). Saves every activation backward_encoder needs.
    const act_t* encode(const token_batch& b, const forward_options& opt = {}) {
        CRAM_CHECK(b.batch > 0 && b.batch <= max_batch_, "batch ", b.batch, " outside [1, ", max_batch_, "]");
        CRAM_CHECK(b.seq > 0 && b.seq <= max_seq_, "sequence length ", b.seq, " outside [1, ", max_seq_, "]");
        cur_ = b;
        opt_ = opt;
        const index_t n = rows();
        // embeddings
        const act_t* positions = C.positions == position_kind::learned ? w_.pos_emb : sinusoid_.data();
        Backend::embedding_forward(ctx_, emb_.data(), b.ids, b.type_ids, w_.word_emb, positions, w_.pos_scale,
                                   w_.type_emb, index_t(b.batch), index_t(b.seq), index_t(hidden),
                                   index_t(C.vocab), index_t(C.token_types));
        act_t* x = emb_.data();
        if constexpr (C.embedding_norm) {
            Backend::layernorm_forward(ctx_, emb_ln_.data(), emb_mean_.data(), emb_rstd_.data(), emb_.data(),
                                       w_.emb_norm_w, w_.emb_norm_b, n, index_t(hidden), stat_t(C.norm_eps));
            x = emb_ln_.data();
        }
        if (opt.dropout > 0)
            Backend::dropout_forward(ctx_, x, x, n * hidden, opt.dropout, opt.seed, dropout_stream_embedding());
        const act_t* input = x;
        for (int l = 0; l < C.layers; ++l) input = block_forward(l, input);
        block_out_ = input;
        if constexpr (C.final_norm) {
            Backend::layernorm_forward(ctx_, final_.data(), final_mean_.data(), final_rstd_.data(), input,
                                       w_.final_norm_w, w_.final_norm_b, n, index_t(hidden), stat_t(C.norm_eps));
            return final_.data();
        } else {
            return input;
        }
    }

    // Gradient with respect to the hidden states encode() returned, [batch*seq, hidden]: the caller
    // writes (or accumulates into) it, then calls backward_encoder(), which consumes it.
    act_t* d_hidden() { return d_top_.data(); }

    // Backpropagates d_hidden() through the encoder; parameter gradients accumulate.
    void backward_encoder() {
        const index_t n = rows();
        if constexpr (C.final_norm) {
            Backend::zero(ctx_, d_res_.data(), n * hidden);
            Backend::layernorm_backward(ctx_, d_res_.data(), g_.final_norm_w, g_.final_norm_b, d_top_.data(),
                                        block_out_, final_mean_.data(), final_rstd_.data(), w_.final_norm_w, n,
                                        index_t(hidden));
        } else {
            Backend::copy(ctx_, d_res_.data(), d_top_.data(), n * hidden);
        }
        for (int l = C.layers - 1; l >= 0; --l) block_backward(l);
        // embeddings
        act_t* d_x = d_res_.data();
        if (opt_.dropout > 0)
            Backend::dropout_backward(ctx_, d_x, d_x, n * hidden, opt_.dropout, opt_.seed, dropout_stream_embedding());
        act_t* d_emb = d_x;
        if constexpr (C.embedding_norm) {
            d_emb = d_scratch_h_.data();
            Backend::zero(ctx_, d_emb, n * hidden);
            Backend::layernorm_backward(ctx_, d_emb, g_.emb_norm_w, g_.emb_norm_b, d_x, emb_.data(),
                                        emb_mean_.data(), emb_rstd_.data(), w_.emb_norm_w, n, index_t(hidden));
        }
        const act_t* positions = C.positions == position_kind::learned ? w_.pos_emb : sinusoid_.data();
        Backend::embedding_backward(ctx_, g_.word_emb, g_.pos_emb, g_.pos_scale, g_.type_emb, d_emb, cur_.ids,
                                    cur_.type_ids, positions, w_.pos_scale, index_t(cur_.batch), index_t(cur_.seq),
                                    index_t(hidden), index_t(C.vocab));
    }

    // ---- MLM ------------------------------------------------------------------------------------
    // One training micro-step: forward, loss and backward; gradients accumulate scaled by loss_scale
    // (1 / accumulation count), so the loss is the mean over the micro-batch's masked tokens.
    void mlm_forward_backward(const mlm_batch& b, const forward_options& opt = {}, float loss_scale = 1.0f) {
        mlm_head(b, opt, true, loss_scale);
        backward_encoder();
    }
    // Evaluation: loss only, no gradients.
    void mlm_forward(const mlm_batch& b) { mlm_head(b, {}, false, 1.0f); }

    // Mean MLM loss per masked token over the calls since the last take (synchronises a device backend).
    double take_mlm_loss() { return loss_.take(ctx_); }

private:
    struct layer_acts {
        const act_t* input = nullptr;  // the previous block's output (not owned)
        buffer<act_t> ln1, qkv, probs, att, sum1, ln2, ffn_pre, ffn_act, sum2;
        buffer<stat_t> mean1, rstd1, mean2, rstd2;
    };

    index_t n_params() const { return static_cast<index_t>(layout().buffer_size()); }
    index_t rows() const { return index_t(cur_.batch) * cur_.seq; }
    static constexpr std::uint32_t dropout_stream_embedding() { return 2u * C.layers; }

    void allocate_activations() {
        const std::size_t n = std::size_t(max_batch_) * max_seq_, h = hidden;
        const std::size_t probs = std::size_t(max_batch_) * C.heads * max_seq_ * max_seq_;
        emb_ = buffer<act_t>(n * h);
        if constexpr (C.embedding_norm) {
            emb_ln_ = buffer<act_t>(n * h);
            emb_mean_ = buffer<stat_t>(n);
            emb_rstd_ = buffer<stat_t>(n);
        }
        acts_.resize(C.layers);
        for (auto& a : acts_) {
            a.ln1 = buffer<act_t>(n * h);
            a.qkv = buffer<act_t>(n * 3 * h);
            a.probs = buffer<act_t>(probs);
            a.att = buffer<act_t>(n * h);
            a.sum1 = buffer<act_t>(n * h);
            a.ln2 = buffer<act_t>(n * h);
            a.ffn_pre = buffer<act_t>(n * C.intermediate);
            a.ffn_act = buffer<act_t>(n * C.ffn_inner());
            a.sum2 = buffer<act_t>(n * h);
            a.mean1 = buffer<stat_t>(n);
            a.rstd1 = buffer<stat_t>(n);
            a.mean2 = buffer<stat_t>(n);
            a.rstd2 = buffer<stat_t>(n);
        }
        if constexpr (C.final_norm) {
            final_ = buffer<act_t>(n * h);
            final_mean_ = buffer<stat_t>(n);
            final_rstd_ = buffer<stat_t>(n);
        }
        if constexpr (C.positions == position_kind::scaled_sinusoidal) {
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
        // head: dense prediction can send every row through the decoder
        head_in_ = buffer<act_t>(n * h);
        if constexpr (C.head_transform) {
            head_t_ = buffer<act_t>(n * h);
            head_g_ = buffer<act_t>(n * h);
            head_ln_ = buffer<act_t>(n * h);
            head_mean_ = buffer<stat_t>(n);
            head_rstd_ = buffer<stat_t>(n);
        }
        dense_labels_ = buffer<std::int32_t>(C.sparse_prediction ? 0 : n);
        // backward scratch, shared by all layers
        d_top_ = buffer<act_t>(n * h);
        d_res_ = buffer<act_t>(n * h);
        d_scratch_h_ = buffer<act_t>(n * h);
        d_branch_ = buffer<act_t>(n * h);
        d_ln_ = buffer<act_t>(n * h);
        d_att_ = buffer<act_t>(n * h);
        d_qkv_ = buffer<act_t>(n * 3 * h);
        d_ffn_act_ = buffer<act_t>(n * C.ffn_inner());
        d_ffn_pre_ = buffer<act_t>(n * C.intermediate);
    }

    // x + f(LN(x)) (pre) or LN(x + f(x)) (post), for attention then FFN. Returns the block output.
    const act_t* block_forward(int l, const act_t* input) {
        auto& a = acts_[std::size_t(l)];
        const auto& w = w_.layers[std::size_t(l)];
        const index_t n = rows(), h = hidden;
        const stat_t eps = stat_t(C.norm_eps);
        a.input = input;
        // attention
        const act_t* attn_in = input;
        if constexpr (C.norm == norm_placement::pre) {
            Backend::layernorm_forward(ctx_, a.ln1.data(), a.mean1.data(), a.rstd1.data(), input, w.norm1_w,
                                       w.norm1_b, n, h, eps);
            attn_in = a.ln1.data();
        }
        Backend::linear_forward(ctx_, a.qkv.data(), attn_in, w.qkv_w, w.qkv_b, n, h, 3 * h);
        Backend::attention_forward(ctx_, a.att.data(), a.probs.data(), a.qkv.data(), cur_.lengths,
                                   index_t(cur_.batch), index_t(cur_.seq), index_t(C.heads), index_t(C.head_dim()));
        act_t* branch = d_branch_.data();  // forward scratch: the projected attention output
        Backend::linear_forward(ctx_, branch, a.att.data(), w.out_w, w.out_b, n, h, h);
        if (opt_.dropout > 0)
            Backend::dropout_forward(ctx_, branch, branch, n * h, opt_.dropout, opt_.seed, std::uint32_t(2 * l));
        Backend::add(ctx_, a.sum1.data(), input, branch, n * h);
        // FFN
        const act_t* ffn_in = a.sum1.data();
        if constexpr (C.norm == norm_placement::pre) {
            Backend::layernorm_forward(ctx_, a.ln2.data(), a.mean2.data(), a.rstd2.data(), a.sum1.data(), w.norm2_w,
                                       w.norm2_b, n, h, eps);
            ffn_in = a.ln2.data();
        } else {
            Backend::layernorm_forward(ctx_, a.ln1.data(), a.mean1.data(), a.rstd1.data(), a.sum1.data(),
                                       w.norm1_w, w.norm1_b, n, h, eps);
            ffn_in = a.ln1.data();
        }
        Backend::linear_forward(ctx_, a.ffn_pre.data(), ffn_in, w.ffn_in_w, w.ffn_in_b, n, h,
                                index_t(C.intermediate));
        if constexpr (C.ffn == ffn_kind::gelu_glu)
            Backend::glu_forward(ctx_, a.ffn_act.data(), a.ffn_pre.data(), n, index_t(C.ffn_inner()));
        else
            Backend::gelu_forward(ctx_, a.ffn_act.data(), a.ffn_pre.data(), n * C.intermediate);
        Backend::linear_forward(ctx_, branch, a.ffn_act.data(), w.ffn_out_w, w.ffn_out_b, n,
                                index_t(C.ffn_inner()), h);
        if (opt_.dropout > 0)
            Backend::dropout_forward(ctx_, branch, branch, n * h, opt_.dropout, opt_.seed, std::uint32_t(2 * l + 1));
        // the FFN's residual is its un-normalised input (pre) or the normalised one (post)
        const act_t* ffn_residual = C.norm == norm_placement::pre ? a.sum1.data() : a.ln1.data();
        Backend::add(ctx_, a.sum2.data(), ffn_residual, branch, n * h);
        if constexpr (C.norm == norm_placement::pre) {
            return a.sum2.data();
        } else {
            Backend::layernorm_forward(ctx_, a.ln2.data(), a.mean2.data(), a.rstd2.data(), a.sum2.data(), w.norm2_w,
                                       w.norm2_b, n, h, eps);
            return a.ln2.data();
        }
    }

    // FFN branch backward: from the gradient of its output to d_ln_ (gradient of its input).
    void ffn_backward(int l, const act_t* d_out, const act_t* ffn_in) {
        auto& a = acts_[std::size_t(l)];
        const auto& w = w_.layers[std::size_t(l)];
        auto& g = g_.layers[std::size_t(l)];
        const index_t n = rows(), h = hidden;
        if (opt_.dropout > 0) {
            Backend::dropout_backward(ctx_, d_branch_.data(), d_out, n * h, opt_.dropout, opt_.seed,
                                      std::uint32_t(2 * l + 1));
            d_out = d_branch_.data();
        }
        Backend::linear_backward(ctx_, d_ffn_act_.data(), g.ffn_out_w, g.ffn_out_b, d_out, a.ffn_act.data(),
                                 w.ffn_out_w, n, index_t(C.ffn_inner()), h);
        if constexpr (C.ffn == ffn_kind::gelu_glu)
            Backend::glu_backward(ctx_, d_ffn_pre_.data(), d_ffn_act_.data(), a.ffn_pre.data(), n,
                                  index_t(C.ffn_inner()));
        else
            Backend::gelu_backward(ctx_, d_ffn_pre_.data(), d_ffn_act_.data(), a.ffn_pre.data(),
                                   n * C.intermediate);
        Backend::linear_backward(ctx_, d_ln_.data(), g.ffn_in_w, g.ffn_in_b, d_ffn_pre_.data(), ffn_in, w.ffn_in_w,
                                 n, h, index_t(C.intermediate));
    }

    // Attention branch backward: from the gradient of its output to d_ln_ (gradient of its input).
    void attention_backward(int l, const act_t* d_out, const act_t* attn_in) {
        auto& a = acts_[std::size_t(l)];
        const auto& w = w_.layers[std::size_t(l)];
        auto& g = g_.layers[std::size_t(l)];
        const index_t n = rows(), h = hidden;
        if (opt_.dropout > 0) {
            Backend::dropout_backward(ctx_, d_branch_.data(), d_out, n * h, opt_.dropout, opt_.seed,
                                      std::uint32_t(2 * l));
            d_out = d_branch_.data();
        }
        Backend::linear_backward(ctx_, d_att_.data(), g.out_w, g.out_b, d_out, a.att.data(), w.out_w, n, h, h);
        Backend::attention_backward(ctx_, d_qkv_.data(), d_att_.data(), a.qkv.data(), a.probs.data(), cur_.lengths,
                                    index_t(cur_.batch), index_t(cur_.seq), index_t(C.heads),
                                    index_t(C.head_dim()));
        Backend::linear_backward(ctx_, d_ln_.data(), g.qkv_w, g.qkv_b, d_qkv_.data(), attn_in, w.qkv_w, n, h,
                                 3 * h);
    }

    // d_res_ holds the gradient of the block output on entry and of the block input on exit.
    void block_backward(int l) {
        auto& a = acts_[std::size_t(l)];
        const auto& w = w_.layers[std::size_t(l)];
        auto& g = g_.layers[std::size_t(l)];
        const index_t n = rows(), h = hidden;
        act_t* d_res = d_res_.data();
        if constexpr (C.norm == norm_placement::pre) {
            // sum2 = sum1 + ffn(LN2(sum1));  sum1 = input + attn(LN1(input))
            ffn_backward(l, d_res, a.ln2.data());
            Backend::layernorm_backward(ctx_, d_res, g.norm2_w, g.norm2_b, d_ln_.data(), a.sum1.data(),
                                        a.mean2.data(), a.rstd2.data(), w.norm2_w, n, h);
            attention_backward(l, d_res, a.ln1.data());
            Backend::layernorm_backward(ctx_, d_res, g.norm1_w, g.norm1_b, d_ln_.data(), a.input, a.mean1.data(),
                                        a.rstd1.data(), w.norm1_w, n, h);
        } else {
            // out = LN2(y1 + ffn(y1));  y1 = LN1(input + attn(input))
            act_t* d_s = d_scratch_h_.data();
            Backend::zero(ctx_, d_s, n * h);
            Backend::layernorm_backward(ctx_, d_s, g.norm2_w, g.norm2_b, d_res, a.sum2.data(), a.mean2.data(),
                                        a.rstd2.data(), w.norm2_w, n, h);
            ffn_backward(l, d_s, a.ln1.data());
            Backend::add_inplace(ctx_, d_s, d_ln_.data(), n * h);
            Backend::zero(ctx_, d_res, n * h);
            Backend::layernorm_backward(ctx_, d_res, g.norm1_w, g.norm1_b, d_s, a.sum1.data(), a.mean1.data(),
                                        a.rstd1.data(), w.norm1_w, n, h);
            attention_backward(l, d_res, a.input);
            Backend::add_inplace(ctx_, d_res, d_ln_.data(), n * h);
        }
    }

    // Encoder, MLM head and (when training) the whole head backward, leaving d_top_ for the encoder.
    void mlm_head(const mlm_batch& b, const forward_options& opt, bool train, float loss_scale) {
        CRAM_CHECK(b.num_masked > 0, "an MLM batch needs at least one masked position");
        const act_t* hid = encode(token_batch{b.batch, b.seq, b.ids, b.type_ids, nullptr}, opt);
        const index_t n = rows(), h = hidden;
        index_t r = b.num_masked;  // rows through the decoder
        const act_t* dec_in = hid;
        const std::int32_t* targets = b.masked_targets;
        if constexpr (C.sparse_prediction) {
            Backend::gather_rows(ctx_, head_in_.data(), hid, b.masked_positions, r, h);
            dec_in = head_in_.data();
        } else {
            r = n;
            Backend::dense_labels(ctx_, dense_labels_.data(), n, b.masked_positions, b.masked_targets,
                                  index_t(b.num_masked));
            targets = dense_labels_.data();
        }
        const act_t* hs = dec_in;  // head input, kept for the transform's backward
        if constexpr (C.head_transform) {
            Backend::linear_forward(ctx_, head_t_.data(), hs, w_.head_w, w_.head_b, r, h, h);
            Backend::gelu_forward(ctx_, head_g_.data(), head_t_.data(), r * h);
            Backend::layernorm_forward(ctx_, head_ln_.data(), head_mean_.data(), head_rstd_.data(), head_g_.data(),
                                       w_.head_norm_w, w_.head_norm_b, r, h, stat_t(C.norm_eps));
            dec_in = head_ln_.data();
        }
        loss_.count(b.num_masked);
        const param_t dscale = param_t(loss_scale / static_cast<float>(b.num_masked));
        act_t* d_dec = train ? d_scratch_h_.data() : nullptr;
        Backend::decoder_cross_entropy(ctx_, loss_.sum(), d_dec, train ? g_.decoder_w : nullptr,
                                       train ? g_.decoder_b : nullptr, dec_in, w_.decoder_w, w_.decoder_b, targets, r,
                                       h, index_t(C.vocab), dscale);
        if (!train) return;
        act_t* d_hs = d_dec;
        if constexpr (C.head_transform) {
            Backend::zero(ctx_, d_ln_.data(), r * h);
            Backend::layernorm_backward(ctx_, d_ln_.data(), g_.head_norm_w, g_.head_norm_b, d_dec, head_g_.data(),
                                        head_mean_.data(), head_rstd_.data(), w_.head_norm_w, r, h);
            Backend::gelu_backward(ctx_, d_att_.data(), d_ln_.data(), head_t_.data(), r * h);
            Backend::linear_backward(ctx_, d_branch_.data(), g_.head_w, g_.head_b, d_att_.data(), hs, w_.head_w, r,
                                     h, h);
            d_hs = d_branch_.data();
        }
        if constexpr (C.sparse_prediction) {
            Backend::zero(ctx_, d_top_.data(), n * h);
            Backend::scatter_add_rows(ctx_, d_top_.data(), d_hs, b.masked_positions, r, h);
        } else {
            Backend::copy(ctx_, d_top_.data(), d_hs, n * h);
        }
    }

    context& ctx_;
    int max_batch_, max_seq_;
    buffer<param_t> params_, grads_;
    buffer<act_t> weights_;  // empty when the matmuls read params_ directly
    bert_tensors<C, param_t> p_, g_;
    bert_tensors<C, act_t> w_;

    token_batch cur_{};
    forward_options opt_{};
    const act_t* block_out_ = nullptr;
    buffer<act_t> emb_, emb_ln_, sinusoid_, final_;
    buffer<stat_t> emb_mean_, emb_rstd_, final_mean_, final_rstd_;
    std::vector<layer_acts> acts_;
    buffer<act_t> head_in_, head_t_, head_g_, head_ln_;
    buffer<stat_t> head_mean_, head_rstd_;
    buffer<std::int32_t> dense_labels_;
    loss_meter<Backend> loss_{ctx_};
    buffer<act_t> d_top_, d_res_, d_scratch_h_, d_branch_, d_ln_, d_att_, d_qkv_, d_ffn_act_, d_ffn_pre_;
};

}  // namespace cram
