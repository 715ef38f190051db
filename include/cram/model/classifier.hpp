// The GLUE head of CRAMMING.md on top of an encoder: [CLS] row -> Linear(hidden, classifier_hidden)
// -> Tanh -> Dropout -> Linear(classifier_hidden, labels); cross-entropy, or mean squared error for a
// regression task (labels == 1). Like the encoder it owns activations only: its weights and gradients are
// views into the training state of whoever fine-tunes (bert_with_classifier_layout puts encoder and head in
// one layout, so one optimizer step, one norm and one weight refresh serve both).
#pragma once

#include <cstdint>
#include <vector>

#include "cram/model/bert.hpp"

namespace cram {

template <ops::backend Backend>
struct classifier_parameters {
    classifier_tensors<typename Backend::act_t> weights;
    classifier_tensors<typename Backend::param_t> grads;
};

// Views of the head's tensors [first, first + 4) of a training state's layout.
template <ops::backend Backend, class State>
classifier_parameters<Backend> bind_classifier_head(State& state, std::size_t first) {
    return {bind_classifier(state.layout(), state.weights(), first), bind_classifier(state.layout(), state.grads(), first)};
}

template <bert_config C, ops::backend Backend>
class bert_classifier {
public:
    using encoder_type = bert<C, Backend>;
    using memory_space = typename Backend::memory_space;
    using param_t = typename Backend::param_t;
    using act_t = typename Backend::act_t;
    using parameters = classifier_parameters<Backend>;
    template <class U>
    using buffer = typename Backend::template buffer<U>;

    // labels == 1 makes it a regression head (STS-B); options.classifier_hidden is its width, which the
    // bound parameters must have (bert_with_classifier_layout with the same width).
    bert_classifier(encoder_type& encoder, const parameters& p, int labels, const model_options& options = {})
        : enc_(encoder), ctx_(encoder.ctx()), labels_(labels), inner_(options.classifier_hidden), w_(p.weights),
          g_(p.grads) {
        CRAM_CHECK(labels >= 1, "a classifier needs at least one output, got ", labels);
        options.validate(C.vocab);
        CRAM_CHECK(w_.dense_w && g_.dense_w, "bert_classifier: unbound parameters (use bind_classifier_head)");
        const std::size_t b = std::size_t(encoder.max_batch());
        cls_rows_ = buffer<std::int32_t>(b);
        cls_ = buffer<act_t>(b * C.hidden);
        dense_ = buffer<act_t>(b * inner_);
        tanh_ = buffer<act_t>(b * inner_);
        drop_ = buffer<act_t>(b * inner_);
        logits_ = buffer<act_t>(b * labels);
        d_logits_ = buffer<act_t>(b * labels);
        d_inner_ = buffer<act_t>(b * inner_);
        d_inner2_ = buffer<act_t>(b * inner_);
        d_cls_ = buffer<act_t>(b * C.hidden);
    }

    int labels() const { return labels_; }
    bool regression() const { return labels_ == 1; }

    // One training micro-step on a batch in the backend's memory (batch_upload gets it there): forward
    // through encoder and head, loss, backward into both; gradients accumulate scaled by loss_scale.
    void forward_backward(const labeled_batch<memory_space>& b, const forward_options& opt, float loss_scale = 1.0f) {
        const auto pass = head_forward(b.tokens, opt);
        const index_t nb = b.tokens.batch;
        const param_t dscale = param_t(loss_scale / static_cast<float>(nb));
        if (regression()) {
            CRAM_CHECK(b.targets, "a regression head needs float targets");
            Backend::squared_error(ctx_, loss_.sum(), d_logits_.data(), logits_.data(), b.targets, nb, dscale);
        } else {
            CRAM_CHECK(b.labels, "a classification head needs integer labels");
            Backend::cross_entropy(ctx_, loss_.sum(), d_logits_.data(), logits_.data(), b.labels, nb,
                                   index_t(labels_), dscale);
        }
        loss_.count(nb);
        const index_t inner = inner_, h = C.hidden;
        Backend::linear_backward(ctx_, d_inner_.data(), g_.out_w, g_.out_b, d_logits_.data(), drop_.data(), w_.out_w,
                                 nb, inner, index_t(labels_));
        // d_inner_ holds d(dropout output); the gradient ping-pongs between the two inner buffers
        act_t* d_tanh_out = d_inner_.data();
        act_t* d_dense = d_inner2_.data();
        if (opt.dropout > 0) {
            Backend::dropout_backward(ctx_, d_inner2_.data(), d_inner_.data(), nb * inner, opt.dropout, opt.seed,
                                      dropout_stream);
            d_tanh_out = d_inner2_.data();
            d_dense = d_inner_.data();
        }
        Backend::tanh_backward(ctx_, d_dense, d_tanh_out, tanh_.data(), nb * inner);
        Backend::linear_backward(ctx_, d_cls_.data(), g_.dense_w, g_.dense_b, d_dense, cls_.data(), w_.dense_w, nb, h,
                                 inner);
        Backend::zero(ctx_, enc_.d_hidden(), nb * b.tokens.seq * h);
        Backend::scatter_add_rows(ctx_, enc_.d_hidden(), d_cls_.data(), cls_rows_.data(), nb, h);
        enc_.backward_encoder(pass);
    }

    // Logits [batch, labels] (regression: the prediction) into host memory, no dropout.
    void predict(const token_batch<memory_space>& b, float* host_out) {
        head_forward(b, {});
        std::vector<act_t> tmp(std::size_t(b.batch) * labels_);
        Backend::to_host(ctx_, tmp.data(), logits_.data(), index_t(tmp.size()));
        for (std::size_t i = 0; i < tmp.size(); ++i) host_out[i] = static_cast<float>(tmp[i]);
    }

    // Mean loss per example since the last take (synchronises a device backend).
    double take_loss() { return loss_.take(ctx_); }

private:
    static constexpr std::uint32_t dropout_stream = 0xC1A5u;  // distinct from the encoder's streams

    typename encoder_type::pass head_forward(const token_batch<memory_space>& b, const forward_options& opt) {
        const auto pass = enc_.encode(b, opt);
        const index_t nb = b.batch, h = C.hidden, inner = inner_;
        if (b.batch != cls_batch_ || b.seq != cls_seq_) {
            // [CLS] is each sequence's first token: rows 0, seq, 2 seq, ... (uploaded when the shape changes)
            cls_host_.resize(std::size_t(b.batch));
            for (int i = 0; i < b.batch; ++i) cls_host_[std::size_t(i)] = i * b.seq;
            Backend::to_device(ctx_, cls_rows_.data(), cls_host_.data(), nb);
            cls_batch_ = b.batch;
            cls_seq_ = b.seq;
        }
        Backend::gather_rows(ctx_, cls_.data(), pass.hidden, cls_rows_.data(), nb, h);
        Backend::linear_forward(ctx_, dense_.data(), cls_.data(), w_.dense_w, w_.dense_b, nb, h, inner);
        Backend::tanh_forward(ctx_, tanh_.data(), dense_.data(), nb * inner);
        if (opt.dropout > 0)
            Backend::dropout_forward(ctx_, drop_.data(), tanh_.data(), nb * inner, opt.dropout, opt.seed,
                                     dropout_stream);
        else
            Backend::copy(ctx_, drop_.data(), tanh_.data(), nb * inner);
        Backend::linear_forward(ctx_, logits_.data(), drop_.data(), w_.out_w, w_.out_b, nb, inner, index_t(labels_));
        return pass;
    }

    encoder_type& enc_;
    typename Backend::context& ctx_;
    int labels_;
    int inner_;  // classifier_hidden
    classifier_tensors<act_t> w_;
    classifier_tensors<param_t> g_;
    std::vector<std::int32_t> cls_host_;  // kept alive: a device backend may still be copying from it
    int cls_batch_ = 0, cls_seq_ = 0;
    buffer<std::int32_t> cls_rows_;
    buffer<act_t> cls_, dense_, tanh_, drop_, logits_, d_logits_, d_inner_, d_inner2_, d_cls_;
    loss_meter<Backend> loss_{ctx_};
};

}  // namespace cram
