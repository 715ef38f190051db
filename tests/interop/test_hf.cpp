// Hugging Face interop (cram/interop/hf.hpp): the exported layouts against fixtures of the published
// formats written out by hand from their documentation (transformers' BertForMaskedLM parameter names and
// BertConfig keys; the original cramming code's module tree and hydra arch block; the tokenizers library's
// serialised Tokenizer), the QKV permutation on a hand-built tensor, round trips (export -> import is
// bit-identical, import -> export gives identical files), the sharded form, F16/BF16 widening, and bad
// inputs refused naming the tensor or field.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cram/interop/hf.hpp"
#include "cram/model/presets.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace cram;
using namespace cram::interop;
using shape_t = std::vector<std::int64_t>;

namespace {

// tiny configurations: the crammed one (test_pre_glu), BERT with a tied decoder, BERT with an untied one
constexpr bert_config tiny_crammed = presets::test_pre_glu;
constexpr bert_config tiny_bert = presets::with(presets::test_post_biases, [](bert_config& c) { c.tied_decoder = true; });
constexpr bert_config tiny_bert_untied = presets::test_post_biases;

// Distinct, non-trivial values in every tensor; alignment padding zero (as cram keeps it).
std::vector<float> pattern_params(const param_layout& l) {
    std::vector<float> p(l.buffer_size(), 0.0f);
    std::size_t k = 0;
    for (const auto& t : l.tensors()) {
        ++k;
        for (std::size_t i = 0; i < t.size; ++i)
            p[t.offset + i] = static_cast<float>(std::sin(0.37 * double(i) + 1.3 * double(k)) * (1.0 + 0.01 * double(k)));
    }
    return p;
}

fs::path tiny_vocab(const fs::path& dir) {
    fs::create_directories(dir);
    const fs::path p = dir / "vocab.txt";
    std::ofstream f(p, std::ios::binary);
    for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "of", "cat", "dog", "sat", "on", "mat",
                          "##s", "##ed", "run", "##ning", ".", ",", "!", "is", "was", "we"})
        f << t << '\n';
    return p;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

template <bert_config C>
fs::path export_tiny(const fs::path& out, hf_layout layout, const std::vector<float>& params, const fs::path& vocab) {
    export_request r;
    r.config = C;
    r.layout = layout;
    r.params_layout = &bert_layout<C>();
    r.params = params.data();
    r.vocab = vocab;
    r.readme = "card\n";
    write_hf_directory(out, r);
    return out;
}

std::map<std::string, shape_t> names_and_shapes(const fs::path& file) {
    const train::safetensors_file f(file);
    std::map<std::string, shape_t> out;
    for (const auto& [n, t] : f.tensors()) {
        CHECK_MESSAGE(t.dtype == "F32", n, " is ", t.dtype);
        out[n] = t.shape;
    }
    return out;
}

// Rewrites DIR/model.safetensors through `edit` (on name -> (dtype, shape, bytes)).
using raw_tensors = std::map<std::string, std::tuple<std::string, shape_t, std::vector<unsigned char>>>;
void rewrite_model(const fs::path& dir, const std::function<void(raw_tensors&)>& edit) {
    raw_tensors raw;
    {
        const train::safetensors_file f(dir / "model.safetensors");
        for (const auto& [n, t] : f.tensors())
            raw[n] = {t.dtype, t.shape, std::vector<unsigned char>(f.data().begin() + std::ptrdiff_t(t.begin),
                                                                   f.data().begin() + std::ptrdiff_t(t.end))};
    }
    edit(raw);
    std::vector<train::safetensors_entry> e;
    for (const auto& [n, t] : raw) e.push_back({n, std::get<0>(t), std::get<1>(t), std::get<2>(t).data()});
    train::write_safetensors(dir / "model.safetensors", e);
}

std::string import_error(const fs::path& dir, const bert_config& c, const param_layout& l, bool allow_unused = false) {
    try {
        (void)read_hf_directory(dir, c, l, allow_unused);
    } catch (const cram::error& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("BertForMaskedLM export: names, shapes, dtypes and config keys of the published format") {
    const fs::path dir = cram::test::scratch_dir("interop_bert_fixture");
    const auto params = pattern_params(bert_layout<tiny_bert>());
    const fs::path out = export_tiny<tiny_bert>(dir / "hf", hf_layout::bert, params, tiny_vocab(dir));

    // Fixture, from transformers' BERT documentation/module tree (BertForMaskedLM = bert (BertModel without
    // pooler) + cls.predictions), for vocab 23, hidden 8, 2 layers, intermediate 12, 8 positions, 2 types;
    // as save_pretrained writes it: the tied decoder weight and decoder.bias (== predictions.bias) dropped.
    std::map<std::string, shape_t> want{
        {"bert.embeddings.word_embeddings.weight", {23, 8}},
        {"bert.embeddings.position_embeddings.weight", {8, 8}},
        {"bert.embeddings.token_type_embeddings.weight", {2, 8}},
        {"bert.embeddings.LayerNorm.weight", {8}},
        {"bert.embeddings.LayerNorm.bias", {8}},
        {"cls.predictions.bias", {23}},
        {"cls.predictions.transform.dense.weight", {8, 8}},
        {"cls.predictions.transform.dense.bias", {8}},
        {"cls.predictions.transform.LayerNorm.weight", {8}},
        {"cls.predictions.transform.LayerNorm.bias", {8}},
    };
    for (const char* layer : {"bert.encoder.layer.0.", "bert.encoder.layer.1."}) {
        const std::string p = layer;
        want[p + "attention.self.query.weight"] = {8, 8};
        want[p + "attention.self.query.bias"] = {8};
        want[p + "attention.self.key.weight"] = {8, 8};
        want[p + "attention.self.key.bias"] = {8};
        want[p + "attention.self.value.weight"] = {8, 8};
        want[p + "attention.self.value.bias"] = {8};
        want[p + "attention.output.dense.weight"] = {8, 8};
        want[p + "attention.output.dense.bias"] = {8};
        want[p + "attention.output.LayerNorm.weight"] = {8};
        want[p + "attention.output.LayerNorm.bias"] = {8};
        want[p + "intermediate.dense.weight"] = {12, 8};
        want[p + "intermediate.dense.bias"] = {12};
        want[p + "output.dense.weight"] = {8, 12};
        want[p + "output.dense.bias"] = {8};
        want[p + "output.LayerNorm.weight"] = {8};
        want[p + "output.LayerNorm.bias"] = {8};
    }
    CHECK(names_and_shapes(out / "model.safetensors") == want);

    // BertConfig keys (transformers' documented fields) and model_type/architectures
    const auto cfg = nlohmann::json::parse(slurp(out / "config.json"));
    CHECK(cfg["model_type"] == "bert");
    CHECK(cfg["architectures"] == nlohmann::json::array({"BertForMaskedLM"}));
    CHECK(cfg["vocab_size"] == 23);
    CHECK(cfg["hidden_size"] == 8);
    CHECK(cfg["num_hidden_layers"] == 2);
    CHECK(cfg["num_attention_heads"] == 2);
    CHECK(cfg["intermediate_size"] == 12);
    CHECK(cfg["hidden_act"] == "gelu");
    CHECK(cfg["max_position_embeddings"] == 8);
    CHECK(cfg["type_vocab_size"] == 2);
    CHECK(cfg["layer_norm_eps"].get<double>() == 1e-12);
    CHECK(cfg["position_embedding_type"] == "absolute");
    CHECK(cfg["tie_word_embeddings"] == true);
    CHECK(cfg["pad_token_id"] == 0);
    for (const char* k : {"hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range"}) CHECK(cfg.contains(k));
    CHECK(slurp(out / "config.json").find("1e-12") != std::string::npos);  // not 9.99999996e-13

    // the BERT split of cram's fused QKV: query = rows [0, h), key = [h, 2h), value = [2h, 3h)
    const train::safetensors_file f(out / "model.safetensors");
    const param_info* qkv = bert_layout<tiny_bert>().find("layers.1.attn.qkv.weight");
    std::vector<float> key(64);
    f.read("bert.encoder.layer.1.attention.self.key.weight", {8, 8}, key.data());
    CHECK(std::memcmp(key.data(), params.data() + qkv->offset + 64, 64 * sizeof(float)) == 0);
}

TEST_CASE("BertForMaskedLM export with an untied decoder writes cls.predictions.decoder.weight and tie_word_embeddings false") {
    const fs::path dir = cram::test::scratch_dir("interop_bert_untied");
    const auto params = pattern_params(bert_layout<tiny_bert_untied>());
    const fs::path out = export_tiny<tiny_bert_untied>(dir / "hf", hf_layout::bert, params, tiny_vocab(dir));
    const auto got = names_and_shapes(out / "model.safetensors");
    REQUIRE(got.count("cls.predictions.decoder.weight"));
    CHECK(got.at("cls.predictions.decoder.weight") == shape_t{23, 8});
    CHECK(nlohmann::json::parse(slurp(out / "config.json"))["tie_word_embeddings"] == false);
}

TEST_CASE("crammedBERT export: the original cramming module tree, per-head QKV, the arch block") {
    const fs::path dir = cram::test::scratch_dir("interop_crammed_fixture");
    const auto params = pattern_params(bert_layout<tiny_crammed>());
    const fs::path out = export_tiny<tiny_crammed>(dir / "hf", hf_layout::crammed, params, tiny_vocab(dir));

    // Fixture from the original's modules (ScriptableLMForPreTraining: encoder = ScriptableLM(embedding =
    // EmbeddingComponent, layers = TransformerLayer(norm1, attn = AttentionComponent(self_attention =
    // SeqFirstSelfAttention.query_key_value + buffer norm_factor, dense), norm2, ffn = FFNComponent(dense_in,
    // dense_out)), final_norm), decoder tied): crammed-bert.yaml has no biases, no head transform, a GELU-GLU
    // FFN (dense_out takes half of intermed_size), and scaled sinusoidal positions (one scale_factor).
    std::map<std::string, shape_t> want{
        {"encoder.embedding.word_embedding.weight", {23, 8}},
        {"encoder.embedding.pos_embedding.scale_factor", {1}},
        {"encoder.embedding.norm.weight", {8}},
        {"encoder.embedding.norm.bias", {8}},
        {"encoder.final_norm.weight", {8}},
        {"encoder.final_norm.bias", {8}},
    };
    for (const char* layer : {"encoder.layers.0.", "encoder.layers.1."}) {
        const std::string p = layer;
        want[p + "norm1.weight"] = {8};
        want[p + "norm1.bias"] = {8};
        want[p + "attn.self_attention.query_key_value.weight"] = {24, 8};
        want[p + "attn.self_attention.norm_factor"] = {};
        want[p + "attn.dense.weight"] = {8, 8};
        want[p + "norm2.weight"] = {8};
        want[p + "norm2.bias"] = {8};
        want[p + "ffn.dense_in.weight"] = {12, 8};
        want[p + "ffn.dense_out.weight"] = {8, 6};
    }
    CHECK(names_and_shapes(out / "model.safetensors") == want);

    const auto cfg = nlohmann::json::parse(slurp(out / "config.json"));
    CHECK(cfg["model_type"] == "crammedBERT");
    const auto& a = cfg["arch"];
    CHECK(a["num_transformer_layers"] == 2);
    CHECK(a["hidden_size"] == 8);
    CHECK(a["intermed_size"] == 12);
    CHECK(a["nonlin"] == "GELUglu");
    CHECK(a["norm"] == "LayerNorm");
    CHECK(a["use_bias"] == false);
    CHECK(a["decoder_bias"] == false);
    CHECK(a["final_norm"] == true);
    CHECK(a["skip_head_transform"] == true);
    CHECK(a["tie_weights"] == true);
    CHECK(a["objective_layout"] == "MLM");
    CHECK(a["embedding"]["vocab_size"] == 23);
    CHECK(a["embedding"]["pos_embedding"] == "scaled-sinusoidal");
    CHECK(a["embedding"]["max_seq_length"] == 8);
    CHECK(a["embedding"]["embedding_dim"] == 8);
    CHECK(a["embedding"]["normalization"] == true);
    CHECK(a["attention"]["type"] == "self-attention");
    CHECK(a["attention"]["num_attention_heads"] == 2);
    CHECK(a["attention"]["qkv_bias"] == false);
    CHECK(a["attention"]["sequence_op"] == "torch-softmax");

    // norm_factor = 1/sqrt(head_dim) = 1/sqrt(4); the QKV rows grouped per head
    const train::safetensors_file f(out / "model.safetensors");
    float nf = 0;
    f.read("encoder.layers.0.attn.self_attention.norm_factor", {}, &nf);
    CHECK(nf == 0.5f);
    std::vector<float> w(24 * 8);
    f.read("encoder.layers.0.attn.self_attention.query_key_value.weight", {24, 8}, w.data());
    const float* cram_qkv = params.data() + bert_layout<tiny_crammed>().find("layers.0.attn.qkv.weight")->offset;
    // head 1's key rows (original rows 1*12 + 4 .. +4) are cram's key rows of head 1 (rows 8 + 4 .. +4)
    CHECK(std::memcmp(w.data() + (12 + 4) * 8, cram_qkv + (8 + 4) * 8, 4 * 8 * sizeof(float)) == 0);
}

TEST_CASE("QKV permutation on a hand-built tensor: cram's [q | k | v] to per-head [q_h k_h v_h] and back") {
    // hidden 4, 2 heads of 2, one column: the value of each cram row is its index
    std::vector<float> cram(12);
    for (int i = 0; i < 12; ++i) cram[std::size_t(i)] = float(i);
    const auto orig = permute_qkv(cram.data(), 4, 2, 1, true);
    // head 0: q rows 0,1, k rows 4,5, v rows 8,9; head 1: q 2,3, k 6,7, v 10,11
    CHECK(orig == std::vector<float>{0, 1, 4, 5, 8, 9, 2, 3, 6, 7, 10, 11});
    CHECK(permute_qkv(orig.data(), 4, 2, 1, false) == cram);
    // with two columns the rows move whole
    std::vector<float> wide(24);
    for (int i = 0; i < 24; ++i) wide[std::size_t(i)] = float(i);
    const auto w = permute_qkv(wide.data(), 4, 2, 2, true);
    CHECK(w[2] == 2.0f);  // original row 1 = cram row 1 (head 0's second query dimension)
    CHECK(w[4] == 8.0f);  // original row 2 = cram row 4 (head 0's first key), both columns
    CHECK(w[5] == 9.0f);
}

TEST_CASE("tokenizer files: tokenizer.json of the tokenizers library, tokenizer_config.json, special tokens") {
    const fs::path dir = cram::test::scratch_dir("interop_tokenizer");
    const auto params = pattern_params(bert_layout<tiny_crammed>());
    const fs::path out = export_tiny<tiny_crammed>(dir / "hf", hf_layout::crammed, params, tiny_vocab(dir));
    CHECK(slurp(out / "vocab.txt") == slurp(dir / "vocab.txt"));
    const auto t = nlohmann::json::parse(slurp(out / "tokenizer.json"));
    CHECK(t["version"] == "1.0");
    CHECK(t["normalizer"]["type"] == "BertNormalizer");
    CHECK(t["normalizer"]["lowercase"] == true);
    CHECK(t["normalizer"]["strip_accents"] == true);
    CHECK(t["normalizer"]["handle_chinese_chars"] == true);
    CHECK(t["normalizer"]["clean_text"] == true);
    CHECK(t["pre_tokenizer"]["type"] == "BertPreTokenizer");
    CHECK(t["model"]["type"] == "WordPiece");
    CHECK(t["model"]["unk_token"] == "[UNK]");
    CHECK(t["model"]["continuing_subword_prefix"] == "##");
    CHECK(t["model"]["max_input_chars_per_word"] == 100);
    CHECK(t["model"]["vocab"].size() == 23);
    CHECK(t["model"]["vocab"]["##ning"] == 16);
    CHECK(t["decoder"]["type"] == "WordPiece");
    CHECK(t["decoder"]["prefix"] == "##");
    const auto& pp = t["post_processor"];
    CHECK(pp["type"] == "TemplateProcessing");
    CHECK(pp["single"].size() == 3);
    CHECK(pp["single"][0]["SpecialToken"]["id"] == "[CLS]");
    CHECK(pp["single"][1]["Sequence"]["id"] == "A");
    CHECK(pp["pair"].size() == 5);
    CHECK(pp["pair"][3]["Sequence"]["id"] == "B");
    CHECK(pp["pair"][3]["Sequence"]["type_id"] == 1);
    CHECK(pp["pair"][4]["SpecialToken"]["type_id"] == 1);
    CHECK(pp["special_tokens"]["[CLS]"]["ids"] == nlohmann::json::array({2}));
    CHECK(pp["special_tokens"]["[SEP]"]["ids"] == nlohmann::json::array({3}));
    REQUIRE(t["added_tokens"].size() == 5);
    CHECK(t["added_tokens"][4]["content"] == "[MASK]");
    CHECK(t["added_tokens"][4]["special"] == true);
    const auto c = nlohmann::json::parse(slurp(out / "tokenizer_config.json"));
    CHECK(c["tokenizer_class"] == "BertTokenizer");
    CHECK(c["do_lower_case"] == true);
    CHECK(c["strip_accents"].is_null());
    CHECK(c["tokenize_chinese_chars"] == true);
    CHECK(c["model_max_length"] == 8);
    CHECK(c["mask_token"] == "[MASK]");
    const auto s = nlohmann::json::parse(slurp(out / "special_tokens_map.json"));
    CHECK(s == nlohmann::json{{"unk_token", "[UNK]"}, {"sep_token", "[SEP]"}, {"pad_token", "[PAD]"},
                              {"cls_token", "[CLS]"}, {"mask_token", "[MASK]"}});
    CHECK(slurp(out / "README.md") == "card\n");
}

TEST_CASE("model.safetensors is valid safetensors: 8-byte aligned data, format pt, contiguous, sorted names") {
    const fs::path dir = cram::test::scratch_dir("interop_safetensors");
    const auto params = pattern_params(bert_layout<tiny_bert>());
    const fs::path out = export_tiny<tiny_bert>(dir / "hf", hf_layout::bert, params, tiny_vocab(dir));
    const std::string bytes = slurp(out / "model.safetensors");
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[std::size_t(i)]);
    CHECK((8 + n) % 8 == 0);
    const train::safetensors_file f(out / "model.safetensors");  // validates offsets, sizes, contiguity
    CHECK(f.metadata().at("format") == "pt");
}

TEST_CASE("export -> import is bit-identical; import -> export writes identical files (both layouts)") {
    auto round_trip = [](auto tag, hf_layout layout, const char* name) {
        constexpr bert_config C = decltype(tag)::value;
        const fs::path dir = cram::test::scratch_dir(std::string("interop_round_") + name);
        const param_layout& l = bert_layout<C>();
        const auto params = pattern_params(l);
        const fs::path a = export_tiny<C>(dir / "a", layout, params, tiny_vocab(dir));
        const imported_model m = read_hf_directory(a, C, l, false);
        CHECK(m.parsed.layout == layout);
        REQUIRE(m.params.size() == params.size());
        CHECK(std::memcmp(m.params.data(), params.data(), params.size() * sizeof(float)) == 0);
        const fs::path b = export_tiny<C>(dir / "b", layout, m.params, a / "vocab.txt");
        for (const char* file : {"config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                                 "special_tokens_map.json", "README.md"})
            CHECK_MESSAGE(slurp(a / file) == slurp(b / file), name, ": ", file, " differs after import -> export");
    };
    round_trip(std::integral_constant<bert_config, tiny_crammed>{}, hf_layout::crammed, "crammed");
    round_trip(std::integral_constant<bert_config, tiny_bert>{}, hf_layout::bert, "bert");
    round_trip(std::integral_constant<bert_config, tiny_bert_untied>{}, hf_layout::bert, "bert_untied");
}

TEST_CASE("import reads the sharded form (model.safetensors.index.json) and refuses a wrong index") {
    const fs::path dir = cram::test::scratch_dir("interop_sharded");
    const param_layout& l = bert_layout<tiny_bert>();
    const auto params = pattern_params(l);
    const fs::path a = export_tiny<tiny_bert>(dir / "a", hf_layout::bert, params, tiny_vocab(dir));
    nlohmann::json index{{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
    {
        const train::safetensors_file f(a / "model.safetensors");
        std::vector<train::safetensors_entry> one, two;
        for (const auto& [n, t] : f.tensors()) {
            auto& part = n.rfind("bert.encoder.layer.1.", 0) == 0 || n.rfind("cls.", 0) == 0 ? two : one;
            part.push_back({n, t.dtype, t.shape, f.data().data() + t.begin});
            index["weight_map"][n] = &part == &one ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
        }
        train::write_safetensors(a / "model-00001-of-00002.safetensors", one);
        train::write_safetensors(a / "model-00002-of-00002.safetensors", two);
    }
    fs::remove(a / "model.safetensors");
    std::ofstream(a / "model.safetensors.index.json") << index.dump(2);
    const imported_model m = read_hf_directory(a, tiny_bert, l, false);
    CHECK(std::memcmp(m.params.data(), params.data(), params.size() * sizeof(float)) == 0);

    index["weight_map"]["bert.embeddings.LayerNorm.bias"] = "model-00002-of-00002.safetensors";
    std::ofstream(a / "model.safetensors.index.json") << index.dump(2);
    const std::string e = import_error(a, tiny_bert, l);
    CHECK(e.find("bert.embeddings.LayerNorm.bias") != std::string::npos);
    CHECK(e.find("model-00002-of-00002.safetensors") != std::string::npos);
}

TEST_CASE("import widens F16 and BF16 tensors to F32 exactly") {
    CHECK(half_to_float(0x3c00) == 1.0f);
    CHECK(half_to_float(0xc000) == -2.0f);
    CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
    CHECK(half_to_float(0x7bff) == 65504.0f);
    CHECK(std::isinf(half_to_float(0x7c00)));
    CHECK(std::isnan(half_to_float(0x7e00)));

    const fs::path dir = cram::test::scratch_dir("interop_half");
    const param_layout& l = bert_layout<tiny_crammed>();
    const auto params = pattern_params(l);
    const fs::path a = export_tiny<tiny_crammed>(dir / "a", hf_layout::crammed, params, tiny_vocab(dir));
    rewrite_model(a, [](raw_tensors& raw) {
        auto& [dtype, shape, bytes] = raw.at("encoder.embedding.norm.weight");  // 8 values
        std::vector<unsigned char> h(16);
        const std::uint16_t one = 0x3c00, minus_half = 0xb800;  // F16: 1, -0.5
        for (int i = 0; i < 8; ++i) std::memcpy(h.data() + 2 * i, i % 2 ? &minus_half : &one, 2);
        dtype = "F16";
        bytes = h;
        auto& [d2, s2, b2] = raw.at("encoder.embedding.norm.bias");
        std::vector<unsigned char> bf(16);
        const std::uint16_t three = 0x4040;  // BF16 3.0
        for (int i = 0; i < 8; ++i) std::memcpy(bf.data() + 2 * i, &three, 2);
        d2 = "BF16";
        b2 = bf;
    });
    const imported_model m = read_hf_directory(a, tiny_crammed, l, false);
    const float* w = m.params.data() + l.find("embeddings.norm.weight")->offset;
    const float* b = m.params.data() + l.find("embeddings.norm.bias")->offset;
    CHECK(w[0] == 1.0f);
    CHECK(w[1] == -0.5f);
    CHECK(b[7] == 3.0f);
}

TEST_CASE("import refuses mismatches, naming the tensor, shape, dtype or config field") {
    const fs::path dir = cram::test::scratch_dir("interop_refuse");
    const param_layout& l = bert_layout<tiny_bert>();
    const auto params = pattern_params(l);
    const fs::path vocab = tiny_vocab(dir);
    int n = 0;
    auto fresh = [&] { return export_tiny<tiny_bert>(dir / ("d" + std::to_string(n++)), hf_layout::bert, params, vocab); };

    SUBCASE("a missing tensor") {
        const fs::path a = fresh();
        rewrite_model(a, [](raw_tensors& r) { r.erase("bert.encoder.layer.1.attention.self.value.bias"); });
        const std::string e = import_error(a, tiny_bert, l);
        CHECK(e.find("bert.encoder.layer.1.attention.self.value.bias") != std::string::npos);
        CHECK(e.find("missing") != std::string::npos);
    }
    SUBCASE("a tensor of another shape") {
        const fs::path a = fresh();
        rewrite_model(a, [](raw_tensors& r) { std::get<1>(r.at("bert.embeddings.LayerNorm.weight")) = {2, 4}; });
        const std::string e = import_error(a, tiny_bert, l);
        CHECK(e.find("bert.embeddings.LayerNorm.weight") != std::string::npos);
        CHECK(e.find("[2,4]") != std::string::npos);
    }
    SUBCASE("a tensor of an integer dtype") {
        const fs::path a = fresh();
        rewrite_model(a, [](raw_tensors& r) { std::get<0>(r.at("cls.predictions.bias")) = "I32"; });
        const std::string e = import_error(a, tiny_bert, l);
        CHECK(e.find("cls.predictions.bias") != std::string::npos);
        CHECK(e.find("I32") != std::string::npos);
    }
    SUBCASE("an extra tensor, unless allowed") {
        const fs::path a = fresh();
        rewrite_model(a, [](raw_tensors& r) { r["bert.pooler.dense.bias"] = {"F32", {8}, std::vector<unsigned char>(32, 0)}; });
        const std::string e = import_error(a, tiny_bert, l);
        CHECK(e.find("bert.pooler.dense.bias") != std::string::npos);
        const imported_model m = read_hf_directory(a, tiny_bert, l, true);
        CHECK(m.unused == std::vector<std::string>{"bert.pooler.dense.bias"});
    }
    SUBCASE("a tied alias that differs from its tensor") {
        const fs::path a = fresh();
        rewrite_model(a, [](raw_tensors& r) {
            auto t = r.at("cls.predictions.bias");
            std::get<2>(t)[0] ^= 1;
            r["cls.predictions.decoder.bias"] = t;
        });
        const std::string e = import_error(a, tiny_bert, l);
        CHECK(e.find("cls.predictions.decoder.bias") != std::string::npos);
    }
    SUBCASE("an alias equal to its tensor and the position_ids buffer are accepted") {
        const fs::path a = fresh();
        rewrite_model(a, [](raw_tensors& r) {
            r["cls.predictions.decoder.weight"] = r.at("bert.embeddings.word_embeddings.weight");
            r["bert.embeddings.position_ids"] = {"I64", {1, 8}, std::vector<unsigned char>(64, 0)};
        });
        const imported_model m = read_hf_directory(a, tiny_bert, l, false);
        CHECK(std::memcmp(m.params.data(), params.data(), params.size() * sizeof(float)) == 0);
    }
    SUBCASE("config fields") {
        const fs::path a = fresh();
        auto cfg = nlohmann::json::parse(slurp(a / "config.json"));
        auto edit = [&](const char* key, const nlohmann::json& v) {
            auto c = cfg;
            c[key] = v;
            std::ofstream(a / "config.json") << c.dump();
            return import_error(a, tiny_bert, l);
        };
        CHECK(edit("hidden_act", "relu").find("hidden_act") != std::string::npos);
        CHECK(edit("num_hidden_layers", 3).find("layers 3") != std::string::npos);
        CHECK(edit("type_vocab_size", 1).find("type_vocab_size") != std::string::npos);
        CHECK(edit("hidden_size", "8").find("hidden_size") != std::string::npos);
        CHECK(edit("model_type", "roberta").find("model_type") != std::string::npos);
        CHECK(edit("position_embedding_type", "relative_key").find("position_embedding_type") != std::string::npos);
        CHECK(edit("layer_norm_eps", 1e-5).find("layer_norm_eps") != std::string::npos);
    }
    SUBCASE("a crammed directory is not the BERT preset") {
        const param_layout& lc = bert_layout<tiny_crammed>();
        const fs::path a = export_tiny<tiny_crammed>(dir / "c", hf_layout::crammed, pattern_params(lc), vocab);
        const std::string e = import_error(a, tiny_bert, l);
        CHECK(e.find("does not describe the chosen preset") != std::string::npos);
    }
    SUBCASE("crammed: norm_factor buffers may be absent, but not wrong") {
        const param_layout& lc = bert_layout<tiny_crammed>();
        const auto pc = pattern_params(lc);
        const fs::path a = export_tiny<tiny_crammed>(dir / "nf", hf_layout::crammed, pc, vocab);
        rewrite_model(a, [](raw_tensors& r) {
            r.erase("encoder.layers.0.attn.self_attention.norm_factor");
            const float wrong = 0.25f;
            std::memcpy(std::get<2>(r.at("encoder.layers.1.attn.self_attention.norm_factor")).data(), &wrong, 4);
        });
        const std::string e = import_error(a, tiny_crammed, lc);
        CHECK(e.find("encoder.layers.1.attn.self_attention.norm_factor") != std::string::npos);
        rewrite_model(a, [](raw_tensors& r) { r.erase("encoder.layers.1.attn.self_attention.norm_factor"); });
        const imported_model m = read_hf_directory(a, tiny_crammed, lc, false);
        CHECK(std::memcmp(m.params.data(), pc.data(), pc.size() * sizeof(float)) == 0);
    }
    SUBCASE("a crammed config with rotary embeddings") {
        const param_layout& lc = bert_layout<tiny_crammed>();
        const fs::path a = export_tiny<tiny_crammed>(dir / "r", hf_layout::crammed, pattern_params(lc), vocab);
        auto cfg = nlohmann::json::parse(slurp(a / "config.json"));
        cfg["arch"]["attention"]["rotary_embedding"] = true;
        std::ofstream(a / "config.json") << cfg.dump();
        CHECK(import_error(a, tiny_crammed, lc).find("arch.attention.rotary_embedding") != std::string::npos);
    }
}

TEST_CASE("export refuses a configuration that the layout cannot express, saying what differs") {
    constexpr bert_config pre_bert = presets::with(tiny_bert, [](bert_config& c) {
        c.norm = norm_placement::pre;
        c.final_norm = true;
    });
    try {
        check_exportable(pre_bert, hf_layout::bert, "preset x");
        FAIL("no error");
    } catch (const cram::error& e) {
        CHECK(std::string(e.what()).find("pre-norm") != std::string::npos);
        CHECK(std::string(e.what()).find("final LayerNorm") != std::string::npos);
    }
    CHECK_THROWS(check_exportable(tiny_crammed, hf_layout::bert, "crammed"));
    CHECK_THROWS(check_exportable(tiny_bert, hf_layout::crammed, "bert"));
    CHECK_NOTHROW(check_exportable(presets::crammed_bert, hf_layout::crammed, "crammed_bert"));
    CHECK_NOTHROW(check_exportable(presets::bert_base, hf_layout::bert, "bert_base"));
    // the full-size crammed model: 119,589,889 parameters in cram, the same count in the export (minus the
    // 16 norm_factor buffers, which are not parameters)
    const hf_mapping m = make_mapping(presets::crammed_bert, hf_layout::crammed);
    std::int64_t count = 0;
    for (const auto& t : m.tensors)
        if (t.transform != hf_transform::constant) count += element_count(t.shape);
    CHECK(count == 119589889);
    CHECK(count == std::int64_t(bert_layout<presets::crammed_bert>().parameter_count()));
}
