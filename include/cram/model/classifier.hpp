// The GLUE head of CRAMMING.md on top of an encoder: [CLS] row -> Linear(hidden, classifier_hidden)
// -> Tanh -> Dropout -> Linear(classifier_hidden, labels); cross-entropy, or squared error for a
// regression task (labels == 1). The head owns its own flat parameter and gradient buffers; the
// encoder's stay where they are, so the optimizer steps both.
#pragma once

#include <cstdint>
#include <vector>

#include "cram/model/bert.hpp"

namespace cram {

template <bert_config C, class Backend = cpu::backend<float>>
class bert_classifier {
public:
    using encoder_type = bert<C, Backend>;
    using param_t = typename Backend::param_t;
    using act_t = typename Backend::act_t;
    template <class U>
    using buffer = typename Backend::template buffer<U>;

    // labels == 1 makes it a regression head (STS-B); options give its width and init scale.
    bert_classifier(encoder_type& encoder, int labels, const model_options& options = {})
        : enc_(encoder), ctx_(encoder.ctx()), labels_(labels), options_(options),
          layout_(classifier_layout(C.hidden, options.classifier_hidden, labels)),
          params_(layout_.buffer_size()), grads_(layout_.buffer_size()),
          weights_(Backend::weights_alias_params ? 0 : layout_.buffer_size()) {
        CRAM_CHECK(labels >= 1, "a classifier needs at least one output, got ", labels);
        options.validate(C.vocab);
        p_ = bind_classifier(layout_, params_.data());
        g_ = bind_classifier(layout_, grads_.data());
        if constexpr (Backend::weights_alias_params)
            w_ = bind_classifier(layout_, reinterpret_cast<act_t*>(params_.data()));
        else
            w_ = bind_classifier(layout_, weights_.data());
        const std::size_t b = std::size_t(encoder.max_batch());
        cls_rows_ = buffer<std::int32_t>(b);
        cls_ = buffer<act_t>(b * C.hidden);
        dense_ = buffer<act_t>(b * options_.classifier_hidden);
        tanh_ = buffer<act_t>(b * options_.classifier_hidden);
        drop_ = buffer<act_t>(b * options_.classifier_hidden);
        logits_ = buffer<act_t>(b * labels);
        d_logits_ = buffer<act_t>(b * labels);
        d_inner_ = buffer<act_t>(b * options_.classifier_hidden);
        d_inner2_ = buffer<act_t>(b * options_.classifier_hidden);
        d_cls_ = buffer<act_t>(b * C.hidden);
        labels_dev_ = buffer<std::int32_t>(b);
        targets_dev_ = buffer<float>(b);
        zero_grads();
    }

    int labels() const { return labels_; }
    bool regression() const { return labels_ == 1; }
    const param_layout& layout() const { return layout_; }
    const model_options& options() const { return options_; }
    param_t* params() { return params_.data(); }
    param_t* grads() { return grads_.data(); }
    std::size_t buffer_size() const { return layout_.buffer_size(); }
    void zero_grads() { Backend::zero(ctx_, grads_.data(), index_t(layout_.buffer_size())); }
    void sync_weights() {
        if constexpr (!Backend::weights_alias_params)
            Backend::params_to_weights(ctx_, weights_.data(), params_.data(), index_t(layout_.buffer_size()));
    }
    void init(std::uint64_t seed) {
        std::vector<param_t> host(layout_.buffer_size(), param_t(0));
        init_parameters(host.data(), layout_, seed, options_.init_std, C.hidden);
        Backend::to_device(ctx_, params_.data(), host.data(), index_t(host.size()));
        sync_weights();
    }

    // One training micro-step on host labels (classification) or host targets (regression): forward
    // through encoder and head, loss, backward into both; gradients accumulate scaled by loss_scale.
    void forward_backward(const token_batch& b, const std::int32_t* host_labels, const float* host_targets,
                          const forward_options& opt, float loss_scale = 1.0f) {
        head_forward(b, opt);
        const index_t nb = b.batch;
        const param_t dscale = param_t(loss_scale / static_cast<float>(nb));
        if (regression()) {
            CRAM_CHECK(host_targets, "a regression head needs float targets");
            Backend::to_device(ctx_, targets_dev_.data(), host_targets, nb);
            Backend::squared_error(ctx_, loss_.sum(), d_logits_.data(), logits_.data(), targets_dev_.data(), nb,
                                   dscale);
        } else {
            CRAM_CHECK(host_labels, "a classification head needs integer labels");
            Backend::to_device(ctx_, labels_dev_.data(), host_labels, nb);
            Backend::cross_entropy(ctx_, loss_.sum(), d_logits_.data(), logits_.data(), labels_dev_.data(), nb,
                                   index_t(labels_), dscale);
        }
        loss_.count(nb);
        const index_t inner = options_.classifier_hidden, h = C.hidden;
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
        Backend::zero(ctx_, enc_.d_hidden(), nb * b.seq * h);
        Backend::scatter_add_rows(ctx_, enc_.d_hidden(), d_cls_.data(), cls_rows_.data(), nb, h);
        enc_.backward_encoder();
    }

    // Logits [batch, labels] (regression: the prediction) into host memory, no dropout.
    void predict(const token_batch& b, float* host_out) {
        head_forward(b, {});
        std::vector<act_t> tmp(std::size_t(b.batch) * labels_);
        Backend::to_host(ctx_, tmp.data(), logits_.data(), index_t(tmp.size()));
        for (std::size_t i = 0; i < tmp.size(); ++i) host_out[i] = static_cast<float>(tmp[i]);
    }

    // Mean loss per example since the last take (synchronises a device backend).
    double take_loss() { return loss_.take(ctx_); }

private:
    static constexpr std::uint32_t dropout_stream = 0xC1A5u;  // distinct from the encoder's streams

    void head_forward(const token_batch& b, const forward_options& opt) {
        const act_t* hid = enc_.encode(b, opt);
        const index_t nb = b.batch, h = C.hidden, inner = options_.classifier_hidden;
        std::vector<std::int32_t> rows(std::size_t(b.batch));
        for (int i = 0; i < b.batch; ++i) rows[std::size_t(i)] = i * b.seq;  // [CLS] is each sequence's first token
        Backend::to_device(ctx_, cls_rows_.data(), rows.data(), nb);
        Backend::gather_rows(ctx_, cls_.data(), hid, cls_rows_.data(), nb, h);
        Backend::linear_forward(ctx_, dense_.data(), cls_.data(), w_.dense_w, w_.dense_b, nb, h, inner);
        Backend::tanh_forward(ctx_, tanh_.data(), dense_.data(), nb * inner);
        if (opt.dropout > 0)
            Backend::dropout_forward(ctx_, drop_.data(), tanh_.data(), nb * inner, opt.dropout, opt.seed,
                                     dropout_stream);
        else
            Backend::copy(ctx_, drop_.data(), tanh_.data(), nb * inner);
        Backend::linear_forward(ctx_, logits_.data(), drop_.data(), w_.out_w, w_.out_b, nb, inner, index_t(labels_));
    }

    encoder_type& enc_;
    typename Backend::context& ctx_;
    int labels_;
    model_options options_;
    param_layout layout_;
    buffer<param_t> params_, grads_;
    buffer<act_t> weights_;
    classifier_tensors<param_t> p_, g_;
    classifier_tensors<act_t> w_;
    buffer<std::int32_t> cls_rows_, labels_dev_;
    buffer<float> targets_dev_;
    buffer<act_t> cls_, dense_, tanh_, drop_, logits_, d_logits_, d_inner_, d_inner2_, d_cls_;
    loss_meter<Backend> loss_{ctx_};
};

}  // namespace cram
