// Finite-difference gradient checks, in double, of whole small models of every architectural variant:
// the analytic gradient of the MLM loss (and of the GLUE head's loss) with respect to every parameter
// must match central differences of the same loss.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "cram/cram.hpp"
#include "model/model_test_support.hpp"
#include "test_support.hpp"

namespace {

using cram::bert_config;
using cram::ffn_kind;
using cram::norm_placement;
using cram::position_kind;
using cram::model_test::config_tag;
using cram::model_test::make_batch;
using cram::presets::with;

constexpr bert_config base{.vocab = 19, .hidden = 8, .heads = 2, .layers = 2, .intermediate = 12, .max_seq = 6};
// a narrow GLUE head keeps the finite differences cheap
constexpr cram::model_options narrow_head{.classifier_hidden = 5};

// Each variant flips a different set of switches, so every switch is covered on and off.
constexpr bert_config v_crammed = cram::presets::test_pre_glu;
constexpr bert_config v_bert = cram::presets::test_post_biases;
constexpr bert_config v_pre_gelu_learned = with(base, [](bert_config& c) {
    c.ffn = ffn_kind::gelu;
    c.positions = position_kind::learned;
    c.tied_decoder = false;
    c.qkv_bias = true;
    c.ffn_bias = true;
});
constexpr bert_config v_post_glu_dense = with(base, [](bert_config& c) {
    c.norm = norm_placement::post;
    c.final_norm = true;
    c.embedding_norm = false;
    c.sparse_prediction = false;
    c.attn_out_bias = true;
    c.decoder_bias = true;
    c.token_types = 3;
});
constexpr bert_config v_pre_head_transform = with(base, [](bert_config& c) {
    c.head_transform = true;
    c.sparse_prediction = true;
    c.layers = 1;
});

// Compares analytic gradients with central differences for every real parameter element. Elements in the
// flat range [frozen_begin, frozen_end) (the padding token's word row) must instead get exactly zero
// gradient although the loss depends on them (some finite difference there is non-zero): PyTorch's
// padding_idx, which the original cramming embedding uses.
template <class Loss>
void check_gradients(const cram::param_layout& layout, double* params, const double* grads, Loss&& loss,
                     double eps = 1e-5, std::size_t frozen_begin = 0, std::size_t frozen_end = 0) {
    int checked = 0;
    double grad_norm = 0, frozen_fd = 0;
    for (const auto& t : layout.tensors()) {
        for (std::size_t i = 0; i < t.size; ++i) {
            double& p = params[t.offset + i];
            const double saved = p;
            p = saved + eps;
            const double up = loss();
            p = saved - eps;
            const double down = loss();
            p = saved;
            const double fd = (up - down) / (2 * eps);
            const double an = grads[t.offset + i];
            grad_norm += an * an;
            INFO("parameter " << t.name << "[" << i << "]: analytic " << an << " finite difference " << fd);
            if (t.offset + i >= frozen_begin && t.offset + i < frozen_end) {
                CHECK(an == 0.0);
                frozen_fd = std::max(frozen_fd, std::abs(fd));
            } else {
                CHECK(std::abs(an - fd) <= 1e-7 + 1e-5 * std::abs(fd));
            }
            ++checked;
        }
    }
    CHECK(checked == int(layout.parameter_count()));
    CHECK(grad_norm > 1e-8);  // never pass on all-zero gradients
    if (frozen_end > frozen_begin) CHECK(frozen_fd > 1e-6);  // the frozen row does reach the loss
}

}  // namespace

TEST_CASE_TEMPLATE("MLM gradients match finite differences", Tag, config_tag<v_crammed>, config_tag<v_bert>,
                   config_tag<v_pre_gelu_learned>, config_tag<v_post_glu_dense>, config_tag<v_pre_head_transform>) {
    constexpr bert_config C = Tag::value;
    using backend = cram::cpu::backend<double>;
    using model_t = cram::bert<C, backend>;
    backend::context ctx;
    cram::train::training_state<backend> state(ctx, model_t::layout());
    model_t model(ctx, cram::bind_bert<C, backend>(state), 3, C.max_seq);
    state.init(42, narrow_head.init_std, C.hidden, narrow_head.pad_id);
    // non-trivial norm parameters and biases so their gradients are exercised away from 1/0
    {
        cram::philox_stream rng(9, 1, 2);
        for (const auto& t : model_t::layout().tensors())
            for (std::size_t i = 0; i < t.size; ++i) state.params()[t.offset + i] += 0.1 * (rng.next_uniform() - 0.5);
    }
    const auto batch = make_batch<C>(3, C.max_seq, 123);
    // hidden dropout alone, then with dropout on the attention probabilities too (as fine-tuning runs)
    for (const auto& [dropout, attention_dropout] : {std::pair{0.0f, 0.0f}, {0.25f, 0.0f}, {0.25f, 0.3f}}) {
        CAPTURE(dropout);
        CAPTURE(attention_dropout);
        const cram::forward_options opt{dropout, 77, attention_dropout};
        state.zero_grads();
        model.mlm_forward_backward(batch.view(), opt, 1.0f);
        (void)model.take_mlm_loss();
        const std::vector<double> grads(state.grads(), state.grads() + state.size());
        auto loss = [&] {
            // same forward as training (dropout masks are fixed by the seed), no gradient needed
            model.mlm_forward_backward(batch.view(), opt, 1.0f);
            return model.take_mlm_loss();
        };
        check_gradients(model_t::layout(), state.params(), grads.data(), loss);
    }
}

TEST_CASE_TEMPLATE("classifier gradients match finite differences", Tag, config_tag<v_crammed>, config_tag<v_bert>) {
    constexpr bert_config C = Tag::value;
    using backend = cram::cpu::backend<double>;
    backend::context ctx;
    for (const int labels : {3, 1}) {
        CAPTURE(labels);
        // encoder and head in one training state, as fine-tuning holds them
        cram::train::training_state<backend> state(ctx,
                                                   cram::bert_with_classifier_layout<C>(labels, narrow_head.classifier_hidden));
        cram::bert<C, backend> encoder(ctx, cram::bind_bert<C, backend>(state), 3, C.max_seq);
        cram::bert_classifier<C, backend> head(
            encoder, cram::bind_classifier_head<backend>(state, cram::bert_layout<C>().tensors().size()), labels,
            narrow_head);
        state.init(5, narrow_head.init_std, C.hidden, narrow_head.pad_id);
        cram::host_labeled_batch lb;
        auto& tb = lb.tokens;
        tb.batch = 3;
        tb.seq = C.max_seq;
        for (int i = 0; i < tb.batch * tb.seq; ++i) tb.ids.push_back(1 + i % (C.vocab - 1));
        tb.lengths = {C.max_seq, C.max_seq - 2, 2};  // padded keys are masked out of attention
        // the padding id 0 past each length (as GLUE batches are padded), and once inside the first sequence,
        // where it does reach the loss: its word row must still get no gradient (padding_idx)
        for (int b = 0; b < tb.batch; ++b)
            for (int i = tb.lengths[std::size_t(b)]; i < tb.seq; ++i) tb.ids[std::size_t(b * tb.seq + i)] = 0;
        tb.ids[1] = 0;
        if (labels > 1)
            lb.labels = {2, 0, 1};
        else
            lb.targets = {0.5f, -1.0f, 2.0f};
        // fine-tuning's dropout: hidden and head 0.2, attention probabilities 0.1
        const cram::forward_options opt{0.2f, 11, 0.1f};
        auto run = [&] {
            head.forward_backward(lb.view(), opt, 1.0f);
            return head.take_loss();
        };
        state.zero_grads();
        run();
        const std::vector<double> grads(state.grads(), state.grads() + state.size());
        const auto* word = state.layout().find("embeddings.word.weight");
        REQUIRE(word);
        REQUIRE(encoder.pad_id() == 0);
        check_gradients(state.layout(), state.params(), grads.data(), run, 1e-5, word->offset,
                        word->offset + std::size_t(C.hidden));
    }
}
