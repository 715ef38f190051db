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
                                  .max_seq = 16, .classifier_hidden = 32};
using backend = cram::cpu::backend<float>;
using model_t = cram::bert<small>;

cram::host_mlm_batch fixed_mlm_batch(int batch, int seq) {
    std::vector<std::int32_t> tokens(std::size_t(batch) * seq);
    cram::philox_stream rng(17, 1, 0);
    for (auto& t : tokens) t = 5 + std::int32_t(rng.next_below(small.vocab - 5));
    cram::masking_options mo;
    mo.vocab = small.vocab;
    return cram::mask_batch(tokens.data(), batch, seq, mo, 5, 0);
}

// One AdamW update of a flat buffer, clipped by its own global norm.
template <class State>
void update(backend::context& ctx, State& opt, float* params, const float* grads, std::size_t n,
            const cram::adamw_options& o, long step) {
    const double norm = std::sqrt(backend::sum_squares(ctx, grads, cram::index_t(n)));
    opt.step(ctx, params, grads, o, o.lr, step, cram::clip_scale(norm, o.clip_norm));
}

}  // namespace

TEST_CASE("initial MLM loss is ln(vocab) and gradient accumulation equals one big step") {
    backend::context ctx;
    const auto batch = fixed_mlm_batch(4, 16);
    model_t m(ctx, 4, 16);
    m.init(3);
    m.mlm_forward(batch.view());
    CHECK(std::abs(m.take_mlm_loss() - std::log(double(small.vocab))) < 0.1);

    m.zero_grads();
    m.mlm_forward_backward(batch.view(), {}, 1.0f);
    const std::vector<float> once(m.grads(), m.grads() + m.buffer_size());
    m.zero_grads();
    m.mlm_forward_backward(batch.view(), {}, 0.5f);
    m.mlm_forward_backward(batch.view(), {}, 0.5f);
    const std::vector<float> twice(m.grads(), m.grads() + m.buffer_size());
    CRAM_CHECK_CLOSE(twice, once, 1e-7, 1e-5);
    CHECK(cram::ops::sum_squares(once.data(), cram::index_t(once.size())) > 0.0);
}

TEST_CASE("a small model memorises one fixed MLM batch (loss -> ~0)") {
    backend::context ctx;
    const auto batch = fixed_mlm_batch(4, 16);  // 64 tokens, 16 masked
    model_t m(ctx, 4, 16);
    m.init(1);
    cram::adamw_state<backend> opt(ctx, model_t::layout());
    cram::adamw_options o;  // recipe betas, eps, decay 0.01, clip 0.5
    o.lr = 3e-3f;
    double first = 0, loss = 0;
    int step = 1;
    for (; step <= 600; ++step) {
        m.zero_grads();
        m.mlm_forward_backward(batch.view());
        loss = m.take_mlm_loss();
        if (step == 1) first = loss;
        if (loss < 0.02) break;
        update(ctx, opt, m.params(), m.grads(), m.buffer_size(), o, step);
        m.sync_weights();
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

    for (const int outputs : {3, 1}) {
        CAPTURE(outputs);
        backend::context ctx;
        model_t enc(ctx, n, seq);
        enc.init(4);
        cram::bert_classifier<small> head(enc, outputs);
        head.init(5);
        cram::adamw_state<backend> opt_enc(ctx, model_t::layout()), opt_head(ctx, head.layout());
        cram::adamw_options o;
        o.lr = 2e-3f;
        o.weight_decay = 0.0f;  // GLUE fine-tuning recipe: no decay
        o.clip_norm = 1.0f;
        double first = 0, loss = 0;
        int step = 1;
        for (; step <= 800; ++step) {
            enc.zero_grads();
            head.zero_grads();
            head.forward_backward(tb.view(), labels.data(), targets.data(), {});
            loss = head.take_loss();
            if (step == 1) first = loss;
            if (loss < 0.01) break;
            update(ctx, opt_enc, enc.params(), enc.grads(), enc.buffer_size(), o, step);
            update(ctx, opt_head, head.params(), head.grads(), head.buffer_size(), o, step);
            enc.sync_weights();
            head.sync_weights();
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
