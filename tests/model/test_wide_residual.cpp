// A residual stream wider than the activations (the CUDA backend's fp32 residual under bf16 activations) as the
// model wires it, tested on the CPU: cpu::backend<float, double> keeps the stream in double and everything else in
// float. Its loss and every gradient must match the all-double model's (finite-difference checked in
// test_model_gradients.cpp) on the same float-representable parameters, to float precision; a stream op wired to
// the wrong buffer, a gradient not narrowed or not added back, would miss by orders of magnitude.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

#include "cram/cram.hpp"
#include "model/model_test_support.hpp"
#include "test_support.hpp"

namespace {

using cram::bert_config;
using cram::model_test::config_tag;
using cram::model_test::make_batch;
using cram::presets::with;

// the crammed test preset, and pre-norm variants with biases (the residual projections' bias), the head transform
// without an embedding norm, and dense prediction
constexpr bert_config v_crammed = cram::presets::test_pre_glu;
constexpr bert_config v_pre_biases = with(cram::presets::test_pre_glu, [](bert_config& c) {
    c.ffn = cram::ffn_kind::gelu;
    c.positions = cram::position_kind::learned;
    c.qkv_bias = c.attn_out_bias = c.ffn_bias = c.decoder_bias = true;
    c.token_types = 2;
});
constexpr bert_config v_pre_head = with(cram::presets::test_pre_glu, [](bert_config& c) {
    c.head_transform = true;
    c.embedding_norm = false;
    c.layers = 3;
});
constexpr bert_config v_pre_dense = with(cram::presets::test_pre_glu, [](bert_config& c) {
    c.sparse_prediction = false;  // every row through the decoder: the encoder's output gradient is copied, not scattered
    c.tied_decoder = false;
});
constexpr cram::model_options narrow_head{.classifier_hidden = 5};

using wide = cram::cpu::backend<float, double>;
using exact = cram::cpu::backend<double>;

// Both states hold the same parameters: the wide model's float initialisation (perturbed away from the norms'
// 1 / 0), and the double model's copy of exactly those values.
template <class Layout>
void init_pair(cram::train::training_state<wide>& w, cram::train::training_state<exact>& e, const Layout&,
               int hidden) {
    w.init(42, narrow_head.init_std, hidden, narrow_head.pad_id);
    cram::philox_stream rng(9, 1, 2);
    for (std::size_t i = 0; i < w.size(); ++i) w.params()[i] += float(0.1 * (rng.next_uniform() - 0.5));
    for (std::size_t i = 0; i < w.size(); ++i) e.params()[i] = double(w.params()[i]);
}

// Every tensor's gradient within float precision of the double model's: |wide - exact| <= 2e-4 of the tensor's
// largest exact entry (plus a floor for tensors the loss barely reaches), and the gradients not all zero.
void check_grads_match(const cram::param_layout& layout, const float* wide_g, const double* exact_g) {
    double total = 0;
    for (const auto& t : layout.tensors()) {
        double scale = 0, worst = 0;
        std::size_t worst_i = 0;
        for (std::size_t i = 0; i < t.size; ++i) scale = std::max(scale, std::abs(exact_g[t.offset + i]));
        for (std::size_t i = 0; i < t.size; ++i) {
            const double d = std::abs(double(wide_g[t.offset + i]) - exact_g[t.offset + i]);
            if (d > worst) {
                worst = d;
                worst_i = i;
            }
        }
        total += scale;
        INFO(t.name << "[" << worst_i << "]: wide " << wide_g[t.offset + worst_i] << ", double "
                    << exact_g[t.offset + worst_i] << ", tensor's largest |gradient| " << scale);
        CHECK(worst <= 2e-4 * scale + 1e-7);
    }
    CHECK(total > 1e-6);
}

}  // namespace

TEST_CASE_TEMPLATE("a double residual stream under float activations matches the double model (MLM)", Tag,
                   config_tag<v_crammed>, config_tag<v_pre_biases>, config_tag<v_pre_head>, config_tag<v_pre_dense>) {
    constexpr bert_config C = Tag::value;
    wide::context wctx;
    exact::context ectx;
    cram::train::training_state<wide> ws(wctx, cram::bert_layout<C>());
    cram::train::training_state<exact> es(ectx, cram::bert_layout<C>());
    cram::bert<C, wide> wm(wctx, cram::bind_bert<C, wide>(ws), 3, C.max_seq);
    cram::bert<C, exact> em(ectx, cram::bind_bert<C, exact>(es), 3, C.max_seq);
    init_pair(ws, es, cram::bert_layout<C>(), C.hidden);
    const auto batch = make_batch<C>(3, C.max_seq, 123);
    // pretraining (no dropout: the residual is the projection's), then fine-tuning's dropout (the add kernels)
    for (const auto& [dropout, attention_dropout] : {std::pair{0.0f, 0.0f}, {0.25f, 0.3f}}) {
        CAPTURE(dropout);
        const cram::forward_options opt{dropout, 77, attention_dropout};
        ws.zero_grads();
        es.zero_grads();
        wm.mlm_forward_backward(batch.view(), opt, 1.0f);
        em.mlm_forward_backward(batch.view(), opt, 1.0f);
        const double wl = wm.take_mlm_loss(), el = em.take_mlm_loss();
        CHECK(wl == doctest::Approx(el).epsilon(1e-5));
        check_grads_match(cram::bert_layout<C>(), ws.grads(), es.grads());
    }
}

TEST_CASE("a double residual stream under float activations matches the double model (classifier)") {
    constexpr bert_config C = v_pre_biases;
    wide::context wctx;
    exact::context ectx;
    const auto layout = cram::bert_with_classifier_layout<C>(3, narrow_head.classifier_hidden);
    cram::train::training_state<wide> ws(wctx, layout);
    cram::train::training_state<exact> es(ectx, layout);
    cram::bert<C, wide> wenc(wctx, cram::bind_bert<C, wide>(ws), 3, C.max_seq);
    cram::bert<C, exact> eenc(ectx, cram::bind_bert<C, exact>(es), 3, C.max_seq);
    const std::size_t head_first = cram::bert_layout<C>().tensors().size();
    cram::bert_classifier<C, wide> whead(wenc, cram::bind_classifier_head<wide>(ws, head_first), 3, narrow_head);
    cram::bert_classifier<C, exact> ehead(eenc, cram::bind_classifier_head<exact>(es, head_first), 3, narrow_head);
    init_pair(ws, es, layout, C.hidden);
    cram::host_labeled_batch lb;
    lb.tokens.batch = 3;
    lb.tokens.seq = C.max_seq;
    for (int i = 0; i < lb.tokens.batch * lb.tokens.seq; ++i) lb.tokens.ids.push_back(1 + i % (C.vocab - 1));
    lb.tokens.type_ids.assign(lb.tokens.ids.size(), 1);
    lb.tokens.lengths = {C.max_seq, C.max_seq - 2, 2};
    for (int b = 0; b < lb.tokens.batch; ++b)
        for (int i = lb.tokens.lengths[std::size_t(b)]; i < lb.tokens.seq; ++i)
            lb.tokens.ids[std::size_t(b * lb.tokens.seq + i)] = 0;
    lb.labels = {2, 0, 1};
    const cram::forward_options opt{0.2f, 11, 0.1f};  // fine-tuning's dropout
    ws.zero_grads();
    es.zero_grads();
    whead.forward_backward(lb.view(), opt, 1.0f);
    ehead.forward_backward(lb.view(), opt, 1.0f);
    CHECK(whead.take_loss() == doctest::Approx(ehead.take_loss()).epsilon(1e-5));
    check_grads_match(layout, ws.grads(), es.grads());
}

TEST_CASE("a wide residual stream takes exactly its extra bytes: the stream's buffers and its gradient") {
    // per token: two sums per layer, the embedding output's copy in the stream, and the stream's gradient, each
    // `hidden` wide, 8 bytes instead of 4
    constexpr bert_config C = v_crammed;
    for (const auto& [batch, seq] : {std::pair{3, 8}, {5, 6}}) {
        const std::size_t tokens = std::size_t(batch) * std::size_t(seq);
        const std::size_t extra_elements = tokens * C.hidden * (2 * C.layers + 1);
        const std::size_t narrow = cram::bert<C, cram::cpu::backend<float>>::activation_bytes(batch, seq);
        const std::size_t wide_bytes = cram::bert<C, wide>::activation_bytes(batch, seq);
        CHECK(wide_bytes - narrow == extra_elements * 4 + tokens * C.hidden * 8);
    }
}
