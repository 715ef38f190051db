// Parameter counts computed independently (formulas from CRAMMING.md's architecture table and the
// original BERT-base, written out here, not read from our layout), and the layout's invariants for
// every preset: contiguous, aligned, decayed tensors first, unique names, tied decoder.
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "cram/cram.hpp"
#include "test_support.hpp"

namespace {

template <cram::bert_config C>
void check_layout_invariants() {
    const auto& l = cram::bert_layout<C>();
    const std::size_t align = cram::param_layout::alignment;
    std::set<std::string> names;
    std::vector<std::pair<std::size_t, std::size_t>> ranges;  // [offset, offset + size)
    std::size_t real = 0;
    for (const auto& t : l.tensors()) {
        CAPTURE(t.name);
        CHECK(names.insert(t.name).second);  // unique
        CHECK(t.offset % align == 0);        // aligned for vector loads
        std::size_t n = 1;
        for (auto d : t.shape) n *= std::size_t(d);
        CHECK(n == t.size);
        real += t.size;
        // decayed (matrices, embeddings, the position scale) first; biases and norms after decay_end
        const bool decays = t.role == cram::param_role::matrix || t.role == cram::param_role::embedding ||
                            t.role == cram::param_role::position_scale;
        CHECK(cram::decays(t.role) == decays);
        CHECK((t.offset + t.size <= l.decay_end()) == decays);
        CHECK((t.offset >= l.decay_end()) == !decays);
        // the original cramming code's grouping on the name (limited_decay_keys [bias, LayerNorm.bias,
        // LayerNorm.weight, norm]: no decay when the name contains "bias" or "norm") says what the role says
        const bool by_name = t.name.find("bias") == std::string::npos && t.name.find("norm") == std::string::npos;
        CHECK(by_name == decays);
        CHECK(cram::decays_by_name(t.name) == decays);
        ranges.emplace_back(t.offset, t.offset + t.size);
    }
    CHECK(real == l.parameter_count());
    // contiguous: sorted by offset, no overlap, each gap only the padding to the next aligned offset
    std::sort(ranges.begin(), ranges.end());
    std::size_t end = 0;
    for (const auto& [b, e] : ranges) {
        CHECK(b >= end);
        CHECK(b - end < align);
        end = e;
    }
    CHECK(ranges.front().first == 0);
    CHECK(l.buffer_size() >= end);
    CHECK(l.buffer_size() - end < align);
    CHECK(l.decay_end() % align == 0);
    // a tied decoder has no weight of its own
    CHECK((l.find("head.decoder.weight") == nullptr) == C.tied_decoder);
}

}  // namespace

TEST_CASE("crammed_bert has CRAMMING.md's 119,589,889 parameters") {
    // CRAMMING.md: vocab 32768, hidden 768, 16 pre-norm layers, fused QKV 768->2304 without bias, attention
    // output 768->768 without bias, GELU-GLU FFN 768->3072 then 1536->768 without biases, LayerNorms with
    // weight and bias, scaled sinusoidal positions (one learnable scalar), embedding LN, final LN, tied
    // decoder without bias, no head transform.
    const std::int64_t V = 32768, H = 768, L = 16;
    const std::int64_t ln = 2 * H;
    const std::int64_t embedding = V * H + 1 + ln;  // tokens, position scale, embedding LN
    const std::int64_t layer = ln + H * 3 * H + H * H + ln + H * 3072 + 1536 * H;
    const std::int64_t total = embedding + L * layer + ln;
    CHECK(embedding == 25'167'361);  // CRAMMING.md: "25.17M embedding"
    CHECK(layer == 5'901'312);       // "16 x 5.90M"
    CHECK(total == 119'589'889);     // "~119.6M"
    CHECK(cram::bert_layout<cram::presets::crammed_bert>().parameter_count() == std::size_t(total));
    CHECK(cram::cpu_bert<cram::presets::crammed_bert>::parameter_count() == std::size_t(total));
}

TEST_CASE("bert_base has the original BERT-base MLM parameter count (109,514,298)") {
    // Devlin et al.: vocab 30522, 512 learned positions, 2 token types, embedding LN; 12 post-norm layers
    // with biases everywhere (QKV, output, FFN 768->3072->768), two LNs each; MLM head transform
    // Dense(768->768)+GELU+LN, decoder tied to the word embedding with its own bias. No pooler (MLM only).
    const std::int64_t V = 30522, H = 768, I = 3072, L = 12;
    const std::int64_t ln = 2 * H;
    const std::int64_t embeddings = V * H + 512 * H + 2 * H + ln;
    const std::int64_t layer = (H * 3 * H + 3 * H) + (H * H + H) + ln + (H * I + I) + (I * H + H) + ln;
    const std::int64_t head = (H * H + H) + ln + V;
    const std::int64_t total = embeddings + L * layer + head;
    CHECK(layer == 7'087'872);
    CHECK(embeddings + L * layer == 108'891'648);  // BertModel without pooler
    CHECK(total == 109'514'298);                   // BertForMaskedLM
    CHECK(cram::bert_layout<cram::presets::bert_base>().parameter_count() == std::size_t(total));
}

TEST_CASE("bert_large_izsak counts as BERT-large's encoder, pre-norm, on the 32768-token vocabulary") {
    // Izsak et al.'s model as the cramming config gives it: 24 layers of 1024 with 16 heads and a 4096-wide
    // GELU FFN, biases on every linear; 128 learned positions, no token types, an embedding LN, a final LN
    // (cram's pre-norm blocks need it), the MLM head transform (Dense + GELU + LN), a tied decoder with a bias.
    const std::int64_t V = 32768, H = 1024, I = 4096, L = 24, P = 128;
    const std::int64_t ln = 2 * H;
    const std::int64_t embeddings = V * H + P * H + ln;
    const std::int64_t layer = (H * 3 * H + 3 * H) + (H * H + H) + ln + (H * I + I) + (I * H + H) + ln;
    const std::int64_t head = (H * H + H) + ln + V;
    const std::int64_t total = embeddings + L * layer + ln + head;
    CHECK(layer == 12'596'224);  // BERT-large's per-layer count
    CHECK(total == 337'083'392);
    CHECK(cram::bert_layout<cram::presets::bert_large_izsak>().parameter_count() == std::size_t(total));
}

TEST_CASE("small presets count as their formulas say") {
    {
        constexpr auto C = cram::presets::crammed_tiny;  // 8192 x 128, 2 layers, GLU 512
        const std::int64_t H = C.hidden;
        const std::int64_t layer = 2 * H + 3 * H * H + H * H + 2 * H + H * C.intermediate + (C.intermediate / 2) * H;
        CHECK(cram::bert_layout<C>().parameter_count() ==
              std::size_t(C.vocab * H + 1 + 2 * H + C.layers * layer + 2 * H));
    }
    {
        constexpr auto C = cram::presets::test_post_biases;  // untied decoder, head transform, biases, types
        const std::int64_t H = C.hidden, I = C.intermediate, V = C.vocab;
        const std::int64_t emb = V * H + C.max_seq * H + C.token_types * H + 2 * H;  // final_norm off
        const std::int64_t layer = 3 * H * H + 3 * H + H * H + H + 2 * H + H * I + I + I * H + H + 2 * H;
        const std::int64_t head = H * H + H + 2 * H + V * H + V;  // transform, LN, own decoder weight + bias
        CHECK(cram::bert_layout<C>().parameter_count() == std::size_t(emb + C.layers * layer + head));
    }
    // the GLUE head: Linear(768 -> 1024) + Tanh + Linear(1024 -> labels), with biases
    const auto cls = cram::classifier_layout(768, 1024, 3);
    CHECK(cls.parameter_count() == std::size_t(768 * 1024 + 1024 + 1024 * 3 + 3));
    CHECK(cls.decay_end() >= 768 * 1024 + 1024 * 3);
}

TEST_CASE("layouts are contiguous, aligned, decayed-first, uniquely named") {
    check_layout_invariants<cram::presets::crammed_bert>();
    check_layout_invariants<cram::presets::bert_base>();
    check_layout_invariants<cram::presets::crammed_mini>();
    check_layout_invariants<cram::presets::crammed_tiny>();
    check_layout_invariants<cram::presets::test_pre_glu>();
    check_layout_invariants<cram::presets::test_post_biases>();
    const auto& l = cram::bert_layout<cram::presets::crammed_bert>();
    REQUIRE(l.find("layers.3.attn.qkv.weight"));
    CHECK(l.find("layers.3.attn.qkv.weight")->shape == std::vector<std::int64_t>{2304, 768});
    CHECK(l.find("layers.15.ffn.out.weight")->shape == std::vector<std::int64_t>{768, 1536});
    CHECK(l.find("layers.16.norm1.weight") == nullptr);
    CHECK(l.find("layers.0.attn.qkv.bias") == nullptr);
}

TEST_CASE("init: normal(0, init_std) matrices and embeddings, pad row zero, norms 1/0, position scale") {
    constexpr auto C = cram::presets::crammed_tiny;
    constexpr auto O = cram::presets::crammed_tiny_options;
    const auto& l = cram::bert_layout<C>();
    std::vector<float> host(l.buffer_size(), -7.0f);
    cram::init_parameters(host.data(), l, 1234, O.init_std, C.hidden, O.pad_id);
    for (const auto& t : l.tensors()) {
        CAPTURE(t.name);
        const float* p = host.data() + t.offset;
        switch (t.role) {
            case cram::param_role::matrix:
            case cram::param_role::embedding: {
                double s = 0, s2 = 0, s4 = 0;
                std::size_t n = 0;
                const std::size_t skip = t.name == "embeddings.word.weight" ? std::size_t(C.hidden) : 0;  // pad row
                for (std::size_t i = skip; i < t.size; ++i, ++n) {
                    const double x = p[i] / O.init_std;
                    s += x;
                    s2 += x * x;
                    s4 += x * x * x * x;
                }
                const double mean = s / double(n), var = s2 / double(n), kurt = s4 / double(n);
                CHECK(std::abs(mean) < 5.0 / std::sqrt(double(n)));
                CHECK(std::abs(var - 1.0) < 5.0 * std::sqrt(2.0 / double(n)));
                CHECK(std::abs(kurt - 3.0) < 5.0 * std::sqrt(96.0 / double(n)));  // normal, not uniform
                break;
            }
            case cram::param_role::bias:
            case cram::param_role::norm_bias:
                for (std::size_t i = 0; i < t.size; ++i) REQUIRE(p[i] == 0.0f);
                break;
            case cram::param_role::norm_weight:
                for (std::size_t i = 0; i < t.size; ++i) REQUIRE(p[i] == 1.0f);
                break;
            case cram::param_role::position_scale:
                CHECK(p[0] == doctest::Approx(1.0 / std::sqrt(128.0)));
                break;
        }
    }
    const float* word = host.data() + l.find("embeddings.word.weight")->offset;
    for (int i = 0; i < C.hidden; ++i) CHECK(word[O.pad_id * C.hidden + i] == 0.0f);
    // the same seed gives the same values; another seed does not
    std::vector<float> again(l.buffer_size(), 0.0f), other(l.buffer_size(), 0.0f);
    cram::init_parameters(again.data(), l, 1234, O.init_std, C.hidden, O.pad_id);
    cram::init_parameters(other.data(), l, 1235, O.init_std, C.hidden, O.pad_id);
    const auto* q = l.find("layers.1.attn.qkv.weight");
    CHECK(std::equal(host.begin() + std::ptrdiff_t(q->offset), host.begin() + std::ptrdiff_t(q->offset + q->size),
                     again.begin() + std::ptrdiff_t(q->offset)));
    CHECK(host[q->offset] != other[q->offset]);
}

TEST_CASE("derived presets equal their full statements, runtime options their published defaults") {
    // Written out field by field (as the presets were before they derived from crammed_bert and
    // bert_base), so a change to a base that leaks into a derived preset fails here.
    using cram::bert_config, cram::norm_placement, cram::ffn_kind, cram::position_kind;
    constexpr bert_config mini{.vocab = 32768, .hidden = 256, .heads = 4, .layers = 4, .intermediate = 1024,
                               .max_seq = 128, .norm = norm_placement::pre, .ffn = ffn_kind::gelu_glu,
                               .positions = position_kind::scaled_sinusoidal};
    constexpr bert_config tiny{.vocab = 8192, .hidden = 128, .heads = 2, .layers = 2, .intermediate = 512,
                               .max_seq = 128, .norm = norm_placement::pre, .ffn = ffn_kind::gelu_glu,
                               .positions = position_kind::scaled_sinusoidal};
    constexpr bert_config pre_glu{.vocab = 23, .hidden = 8, .heads = 2, .layers = 2, .intermediate = 12, .max_seq = 8,
                                  .norm = norm_placement::pre, .ffn = ffn_kind::gelu_glu,
                                  .positions = position_kind::scaled_sinusoidal};
    constexpr bert_config post_biases{
        .vocab = 23, .hidden = 8, .heads = 2, .layers = 2, .intermediate = 12, .max_seq = 8,
        .norm = norm_placement::post, .ffn = ffn_kind::gelu, .positions = position_kind::learned,
        .qkv_bias = true, .attn_out_bias = true, .ffn_bias = true, .decoder_bias = true,
        .token_types = 2, .embedding_norm = true, .final_norm = false, .head_transform = true,
        .tied_decoder = false, .sparse_prediction = false};
    static_assert(cram::presets::crammed_mini == mini);
    static_assert(cram::presets::crammed_tiny == tiny);
    static_assert(cram::presets::test_pre_glu == pre_glu);
    static_assert(cram::presets::test_post_biases == post_biases);
    // the default options are CRAMMING.md's: N(0, 0.02) init, [PAD] = 0, a 1024-wide GLUE head
    constexpr cram::model_options defaults{};
    CHECK(defaults.init_std == 0.02f);
    CHECK(defaults.pad_id == 0);
    CHECK(defaults.classifier_hidden == 1024);
    CHECK(cram::presets::crammed_bert_options == defaults);
    CHECK(cram::presets::bert_base_options == defaults);
    CHECK(cram::presets::crammed_mini_options.classifier_hidden == 256);
    CHECK(cram::presets::crammed_tiny_options.classifier_hidden == 128);
    CHECK(cram::presets::test_pre_glu_options.classifier_hidden == 6);
    CHECK(cram::presets::test_post_biases_options.classifier_hidden == 6);
    // a pad id outside the vocabulary is refused when the model is initialised, not silently written past it
    using backend = cram::cpu::backend<float>;
    backend::context ctx;
    cram::train::training_state<backend> state(ctx, cram::bert_layout<cram::presets::test_pre_glu>());
    CHECK_THROWS_WITH_AS(state.init(1, 0.02f, cram::presets::test_pre_glu.hidden, 23), doctest::Contains("pad_id 23"),
                         cram::error);
    CHECK_THROWS_WITH_AS(cram::model_options{.pad_id = 23}.validate(cram::presets::test_pre_glu.vocab),
                         doctest::Contains("pad_id 23"), cram::error);
}

namespace {
// One AdamW step (step 1, every gradient 0.5) over a training state holding `layout`, checked tensor by
// tensor against the hand-derived update. At step 1 the bias-corrected moments are m_hat = g and
// sqrt(v_hat) = |g|, so PyTorch's AdamW gives p1 = p0 - lr wd p0 [decayed] - lr g / (|g| + eps).
// The decayed roles are listed here, not read from cram::decays: the original's grouping decays matrices,
// embeddings and the position scale (scale_factor matches none of its no-decay keys), not biases or norms.
void check_adamw_roles(const cram::param_layout& layout, int hidden, float weight_decay, float eps) {
    using backend = cram::cpu::backend<double>;
    backend::context ctx;
    cram::train::training_state<backend> state(ctx, layout);
    state.init(3, 0.02f, hidden, 0);
    const std::vector<double> before(state.params(), state.params() + state.size());
    for (std::size_t i = 0; i < state.size(); ++i) state.grads()[i] = 0.5;
    cram::train::adamw_options o;
    o.beta1 = 0.9f;
    o.beta2 = 0.98f;
    o.eps = eps;
    o.weight_decay = weight_decay;
    const float lr = 1e-3f;
    state.adamw_step(o, lr, 1, 1.0f);
    const double lrd = double(lr), wd = double(weight_decay), step = lrd * 0.5 / (0.5 + double(eps));
    std::set<cram::param_role> seen;
    for (const auto& t : layout.tensors()) {
        CAPTURE(t.name);
        bool decayed = false;
        switch (t.role) {
            case cram::param_role::matrix: decayed = true; break;
            case cram::param_role::embedding: decayed = true; break;
            case cram::param_role::position_scale: decayed = true; break;
            case cram::param_role::bias: decayed = false; break;
            case cram::param_role::norm_weight: decayed = false; break;
            case cram::param_role::norm_bias: decayed = false; break;
        }
        seen.insert(t.role);
        for (std::size_t i = 0; i < t.size; ++i) {
            const double p0 = before[t.offset + i];
            const double want = p0 - (decayed ? lrd * wd * p0 : 0.0) - step;
            CHECK(state.params()[t.offset + i] == doctest::Approx(want).epsilon(1e-12));
        }
    }
    CHECK(seen.size() == 6);  // every role was checked
}
}  // namespace

TEST_CASE("AdamW updates each parameter role as the original's parameter grouping does") {
    using cram::presets::test_post_biases;
    using cram::presets::test_pre_glu;
    // pretraining (bert-o4: weight decay 0.01, eps 1e-12): the crammed layout has the position scale, the
    // bert layout biases; fine-tuning layouts (encoder + GLUE head) with the protocol's eps 1e-6 and a
    // non-zero decay (the protocol's is 0, where grouping changes nothing)
    auto both = [](const cram::param_layout& a, const cram::param_layout& b) {
        cram::param_layout l;
        l.append(a, "a.");
        l.append(b, "b.");
        l.finalize();
        return l;
    };
    check_adamw_roles(both(cram::bert_layout<test_pre_glu>(), cram::bert_layout<test_post_biases>()),
                      test_pre_glu.hidden, 0.01f, 1e-12f);
    check_adamw_roles(both(cram::bert_with_classifier_layout<test_pre_glu>(2, 6),
                           cram::bert_with_classifier_layout<test_post_biases>(1, 6)),
                      test_pre_glu.hidden, 0.1f, 1e-6f);
    // the position scale by hand: crammed init 1/sqrt(hidden), weight decay 0.1, lr 1e-3, g 0.5, eps 1e-6
    using backend = cram::cpu::backend<double>;
    backend::context ctx;
    cram::train::training_state<backend> state(ctx, cram::bert_with_classifier_layout<test_pre_glu>(2, 6));
    state.init(3, 0.02f, test_pre_glu.hidden, 0);
    const auto* scale = state.layout().find("embeddings.position.scale");
    REQUIRE(scale);
    const double s0 = 1.0 / std::sqrt(double(test_pre_glu.hidden));
    REQUIRE(state.params()[scale->offset] == doctest::Approx(s0).epsilon(1e-7));
    for (std::size_t i = 0; i < state.size(); ++i) state.grads()[i] = 0.5;
    cram::train::adamw_options o;
    o.eps = 1e-6f;
    o.weight_decay = 0.1f;
    state.adamw_step(o, 1e-3f, 1, 1.0f);
    // 1/sqrt(hidden) (1 - 1e-4) - 1e-3 * 0.5 / (0.5 + 1e-6), with the hyperparameters as the floats they are
    const double lr = double(1e-3f), wd = double(0.1f), eps = double(1e-6f);
    const double want = s0 * (1 - lr * wd) - lr * 0.5 / (0.5 + eps);
    CHECK(state.params()[scale->offset] == doctest::Approx(want).epsilon(1e-12));
    // without the decay it would be s0 - lr * 0.5 / (0.5 + eps): the difference is the decay term
    CHECK(std::abs(state.params()[scale->offset] - (s0 - lr * 0.5 / (0.5 + eps))) > 1e-6 * s0 * 0.5);
}
