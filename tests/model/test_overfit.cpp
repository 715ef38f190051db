// The whole gradient path works end to end: a small crammed-style model trained with AdamW (the
// recipe's clipping included) on ONE fixed batch memorises it, for the MLM head, the GLUE
// classification head and the regression head. Also: the initial MLM loss is ln(vocab), and gradient
// accumulation over micro-steps equals one step on the whole.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cram/cram.hpp"
#include "test_support.hpp"

namespace {

constexpr cram::bert_config small{.vocab = 50, .hidden = 32, .heads = 2, .layers = 2, .intermediate = 64,
                                  .max_seq = 16};
constexpr cram::model_options options{.classifier_hidden = 32};
using backend = cram::cpu::backend<float>;
using model_t = cram::cpu_bert<small>;
using state_t = cram::train::training_state<backend>;

cram::host_mlm_batch fixed_mlm_batch(int batch, int seq) {
    std::vector<std::int32_t> tokens(std::size_t(batch) * seq);
    cram::philox_stream rng(17, 1, 0);
    for (auto& t : tokens) t = 5 + std::int32_t(rng.next_below(small.vocab - 5));
    cram::masking_options mo;
    mo.vocab = small.vocab;
    return cram::mask_batch(tokens.data(), batch, seq, mo, 5, 0);
}

// One AdamW update of the whole state, clipped by its global norm.
void update(state_t& state, const cram::train::adamw_options& o, long step) {
    state.adamw_step(o, o.lr, step, cram::train::clip_scale(state.grad_norm(), o.clip_norm));
}

}  // namespace

TEST_CASE("initial MLM loss is ln(vocab) and gradient accumulation equals one big step") {
    backend::context ctx;
    const auto batch = fixed_mlm_batch(4, 16);
    state_t state(ctx, model_t::layout());
    model_t m(ctx, cram::bind_bert<small, backend>(state), 4, 16);
    state.init(3, options.init_std, small.hidden, options.pad_id);
    m.mlm_forward(batch.view());
    CHECK(std::abs(m.take_mlm_loss() - std::log(double(small.vocab))) < 0.1);

    state.zero_grads();
    m.mlm_forward_backward(batch.view(), {}, 1.0f);
    const std::vector<float> once(state.grads(), state.grads() + state.size());
    state.zero_grads();
    m.mlm_forward_backward(batch.view(), {}, 0.5f);
    m.mlm_forward_backward(batch.view(), {}, 0.5f);
    const std::vector<float> twice(state.grads(), state.grads() + state.size());
    CRAM_CHECK_CLOSE(twice, once, 1e-7, 1e-5);
    CHECK(cram::ops::sum_squares(once.data(), cram::index_t(once.size())) > 0.0);
}

TEST_CASE("a small model memorises one fixed MLM batch (loss -> ~0)") {
    backend::context ctx;
    const auto batch = fixed_mlm_batch(4, 16);  // 64 tokens, 16 masked
    state_t state(ctx, model_t::layout());
    model_t m(ctx, cram::bind_bert<small, backend>(state), 4, 16);
    state.init(1, options.init_std, small.hidden, options.pad_id);
    cram::train::adamw_options o;  // recipe betas, eps, decay 0.01, clip 0.5
    o.lr = 3e-3f;
    double first = 0, loss = 0;
    int step = 1;
    for (; step <= 600; ++step) {
        state.zero_grads();
        m.mlm_forward_backward(batch.view());
        loss = m.take_mlm_loss();
        if (step == 1) first = loss;
        if (loss < 0.02) break;
        update(state, o, step);
    }
    MESSAGE("MLM overfit: loss " << first << " -> " << loss << " after " << step << " steps");
    CHECK(first > 3.0);
    CHECK(loss < 0.05);
    // evaluation agrees with the last training forward (no dropout anywhere)
    m.mlm_forward(batch.view());
    CHECK(m.take_mlm_loss() < 0.05);
}

TEST_CASE("the GLUE classification and regression heads memorise a few fixed examples") {
    const int n = 6, seq = 10;
    // padded sequences of different lengths, [CLS] = 2 first
    cram::host_token_batch tb;
    tb.batch = n;
    tb.seq = seq;
    tb.ids.assign(std::size_t(n) * seq, 0);
    tb.lengths = {10, 7, 4, 9, 5, 10};
    cram::philox_stream rng(23, 0, 0);
    for (int b = 0; b < n; ++b) {
        tb.ids[std::size_t(b * seq)] = 2;
        for (int s = 1; s < tb.lengths[std::size_t(b)]; ++s)
            tb.ids[std::size_t(b * seq + s)] = 5 + std::int32_t(rng.next_below(small.vocab - 5));
    }
    const std::vector<std::int32_t> labels = {0, 2, 1, 1, 0, 2};
    const std::vector<float> targets = {0.5f, 4.0f, 2.5f, 1.0f, 3.0f, 0.0f};
    cram::host_labeled_batch lb;
    lb.tokens = tb;

    for (const int outputs : {3, 1}) {
        CAPTURE(outputs);
        backend::context ctx;
        state_t state(ctx, cram::bert_with_classifier_layout<small>(outputs, options.classifier_hidden));
        model_t enc(ctx, cram::bind_bert<small, backend>(state), n, seq);
        cram::bert_classifier<small, backend> head(
            enc, cram::bind_classifier_head<backend>(state, model_t::layout().tensors().size()), outputs, options);
        state.init(4, options.init_std, small.hidden, options.pad_id);
        lb.labels = outputs > 1 ? labels : std::vector<std::int32_t>{};
        lb.targets = outputs > 1 ? std::vector<float>{} : targets;
        cram::train::adamw_options o;
        o.lr = 2e-3f;
        o.weight_decay = 0.0f;  // GLUE fine-tuning recipe: no decay
        o.clip_norm = 1.0f;
        double first = 0, loss = 0;
        int step = 1;
        for (; step <= 800; ++step) {
            state.zero_grads();
            head.forward_backward(lb.view(), {});
            loss = head.take_loss();
            if (step == 1) first = loss;
            if (loss < 0.01) break;
            update(state, o, step);
        }
        MESSAGE(std::string(outputs == 1 ? "regression" : "classification") << " overfit: loss " << first << " -> " << loss
                                                                  << " after " << step << " steps");
        CHECK(loss < 0.05);
        std::vector<float> pred(std::size_t(n) * outputs);
        head.predict(tb.view(), pred.data());
        for (int b = 0; b < n; ++b) {
            CAPTURE(b);
            if (outputs == 1) {
                CHECK(pred[std::size_t(b)] == doctest::Approx(targets[std::size_t(b)]).epsilon(0.1));
            } else {
                int best = 0;
                for (int c = 1; c < outputs; ++c)
                    if (pred[std::size_t(b * outputs + c)] > pred[std::size_t(b * outputs + best)]) best = c;
                CHECK(best == labels[std::size_t(b)]);
            }
        }
    }
}
