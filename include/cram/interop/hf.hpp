// Hugging Face interop: the tensors of a cram encoder + MLM head under the parameter names, shapes and
// config.json of two published layouts, and back.
//
//  - hf_layout::bert: transformers' BertForMaskedLM (model_type "bert"), for cram configurations that are
//    that architecture exactly (post-norm, learned positions, token types, biases everywhere, GELU,
//    the Dense+GELU+LayerNorm head); anything else is refused, naming the field that differs.
//  - hf_layout::crammed: the original cramming code's ScriptableLMForPreTraining (config class
//    crammedBertConfig, model_type "crammedBERT", its hydra `arch` block inside config.json), whose fused
//    QKV rows are grouped per head (q, k, v of head 0, then head 1, ...) where cram stores all queries, all
//    keys, all values.
//
// The names and the QKV order were read from the original repository (github.com/JonasGeiping/cramming:
// cramming/architectures/crammed_bert.py, components.py, attention.py, embeddings.py and
// cramming/config/arch/crammed-bert.yaml) and from transformers' documented BERT layout; docs/interop.md
// has the tables. Everything here is data movement: each float is copied bit for bit (F16/BF16 inputs
// are widened exactly), so export -> import is the identity.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/file_io.hpp"
#include "cram/model/config.hpp"
#include "cram/model/parameters.hpp"
#include "cram/train/json_fields.hpp"
#include "cram/train/safetensors.hpp"

namespace cram::interop {

enum class hf_layout { bert, crammed };

inline const char* to_string(hf_layout l) { return l == hf_layout::bert ? "bert" : "crammedBERT"; }

// How one published tensor is made from a cram tensor.
enum class hf_transform {
    copy,         // same values, same shape
    qkv_per_head, // cram [q_all | k_all | v_all] rows -> original cramming [q_h k_h v_h] per head
    slice_q,      // rows [0, h) of cram's fused QKV (BERT's separate query/key/value)
    slice_k,
    slice_v,
    constant,     // a buffer that is not a cram parameter (value in `constant_value`)
};

struct hf_tensor {
    std::string name;                 // published name
    std::vector<std::int64_t> shape;  // published shape
    std::string cram_name;            // source tensor in cram's layout (empty for constants)
    hf_transform transform = hf_transform::copy;
    float constant_value = 0;
};

// A published tensor that the layout's loaders tie to another one and that files may or may not hold:
// accepted on import only when bit-identical to `same_as`.
struct hf_alias {
    std::string name;
    std::string same_as;
};

struct hf_mapping {
    hf_layout layout;
    std::vector<hf_tensor> tensors;  // what export writes, sorted by name
    std::vector<hf_alias> aliases;   // what import also accepts
    std::set<std::string> ignorable; // buffers import accepts and drops (e.g. BERT's position_ids)
};

namespace detail {

inline std::string layer_prefix(const char* base, int i) { return std::string(base) + std::to_string(i) + "."; }

// The first structural difference between `c` and what `layout` can express, or empty.
inline std::string layout_mismatch(const bert_config& c, hf_layout layout) {
    std::vector<std::string> why;
    if (layout == hf_layout::bert) {
        if (c.norm != norm_placement::post) why.push_back("pre-norm blocks (BertForMaskedLM is post-norm)");
        if (c.ffn != ffn_kind::gelu) why.push_back("a GELU-GLU feed-forward (BertForMaskedLM has Linear-GELU-Linear)");
        if (c.positions != position_kind::learned)
            why.push_back("scaled sinusoidal positions (BertForMaskedLM learns a position table)");
        if (!c.qkv_bias || !c.attn_out_bias || !c.ffn_bias || !c.decoder_bias)
            why.push_back("linear layers without biases (BertForMaskedLM has a bias on every linear and the decoder)");
        if (c.token_types <= 0) why.push_back("no token-type embedding (BertForMaskedLM has one)");
        if (!c.embedding_norm) why.push_back("no LayerNorm after the embeddings");
        if (c.final_norm) why.push_back("a final LayerNorm after the last block (BertForMaskedLM has none)");
        if (!c.head_transform) why.push_back("no Dense+GELU+LayerNorm transform in the MLM head");
    } else {
        if (c.norm != norm_placement::pre) why.push_back("post-norm blocks (the crammed layout is pre-norm)");
        if (c.positions != position_kind::scaled_sinusoidal)
            why.push_back("learned positions (this export writes the crammed layout's scaled-sinusoidal embedding)");
        if (c.token_types != 0) why.push_back("a token-type embedding (the crammed layout has none)");
        if (c.attn_out_bias != c.ffn_bias)
            why.push_back("biases on the attention output but not the FFN or vice versa (the crammed layout has one use_bias)");
        if (!c.tied_decoder) why.push_back("an untied decoder (the crammed layout ties it to the word embedding)");
        if (c.head_transform && !c.ffn_bias)
            why.push_back("a head transform with a bias but dense layers without (the crammed layout has one use_bias)");
    }
    std::string out;
    for (const auto& w : why) out += (out.empty() ? "" : "; ") + w;
    return out;
}

}  // namespace detail

// Throws, naming what differs, when `c` cannot be written as `layout` exactly.
inline void check_exportable(const bert_config& c, hf_layout layout, const std::string& what) {
    const std::string why = detail::layout_mismatch(c, layout);
    CRAM_CHECK(why.empty(), what, " cannot be exported as the ", to_string(layout), " layout without changing the model: it has ",
               why);
}

// The published tensors of `c` in `layout` (check_exportable first).
inline hf_mapping make_mapping(const bert_config& c, hf_layout layout) {
    check_exportable(c, layout, "this configuration");
    hf_mapping m{layout, {}, {}, {}};
    const std::int64_t h = c.hidden, v = c.vocab, in = c.intermediate, inner = c.ffn_inner();
    auto add = [&](std::string name, std::vector<std::int64_t> shape, std::string cram, hf_transform t = hf_transform::copy) {
        m.tensors.push_back({std::move(name), std::move(shape), std::move(cram), t, 0.0f});
    };
    if (layout == hf_layout::bert) {
        add("bert.embeddings.word_embeddings.weight", {v, h}, "embeddings.word.weight");
        add("bert.embeddings.position_embeddings.weight", {c.max_seq, h}, "embeddings.position.weight");
        add("bert.embeddings.token_type_embeddings.weight", {c.token_types, h}, "embeddings.token_type.weight");
        add("bert.embeddings.LayerNorm.weight", {h}, "embeddings.norm.weight");
        add("bert.embeddings.LayerNorm.bias", {h}, "embeddings.norm.bias");
        for (int i = 0; i < c.layers; ++i) {
            const std::string p = detail::layer_prefix("bert.encoder.layer.", i);
            const std::string q = detail::layer_prefix("layers.", i);
            add(p + "attention.self.query.weight", {h, h}, q + "attn.qkv.weight", hf_transform::slice_q);
            add(p + "attention.self.query.bias", {h}, q + "attn.qkv.bias", hf_transform::slice_q);
            add(p + "attention.self.key.weight", {h, h}, q + "attn.qkv.weight", hf_transform::slice_k);
            add(p + "attention.self.key.bias", {h}, q + "attn.qkv.bias", hf_transform::slice_k);
            add(p + "attention.self.value.weight", {h, h}, q + "attn.qkv.weight", hf_transform::slice_v);
            add(p + "attention.self.value.bias", {h}, q + "attn.qkv.bias", hf_transform::slice_v);
            add(p + "attention.output.dense.weight", {h, h}, q + "attn.out.weight");
            add(p + "attention.output.dense.bias", {h}, q + "attn.out.bias");
            add(p + "attention.output.LayerNorm.weight", {h}, q + "norm1.weight");
            add(p + "attention.output.LayerNorm.bias", {h}, q + "norm1.bias");
            add(p + "intermediate.dense.weight", {in, h}, q + "ffn.in.weight");
            add(p + "intermediate.dense.bias", {in}, q + "ffn.in.bias");
            add(p + "output.dense.weight", {h, inner}, q + "ffn.out.weight");
            add(p + "output.dense.bias", {h}, q + "ffn.out.bias");
            add(p + "output.LayerNorm.weight", {h}, q + "norm2.weight");
            add(p + "output.LayerNorm.bias", {h}, q + "norm2.bias");
        }
        add("cls.predictions.transform.dense.weight", {h, h}, "head.transform.weight");
        add("cls.predictions.transform.dense.bias", {h}, "head.transform.bias");
        add("cls.predictions.transform.LayerNorm.weight", {h}, "head.norm.weight");
        add("cls.predictions.transform.LayerNorm.bias", {h}, "head.norm.bias");
        add("cls.predictions.bias", {v}, "head.decoder.bias");
        // save_pretrained drops what BertForMaskedLM ties on load (_tied_weights_keys): the decoder weight
        // (when tied to the word embedding) and decoder.bias (always the same tensor as predictions.bias)
        if (c.tied_decoder)
            m.aliases.push_back({"cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"});
        else
            add("cls.predictions.decoder.weight", {v, h}, "head.decoder.weight");
        m.aliases.push_back({"cls.predictions.decoder.bias", "cls.predictions.bias"});
        m.ignorable.insert("bert.embeddings.position_ids");  // a persistent buffer in older transformers
    } else {
        add("encoder.embedding.word_embedding.weight", {v, h}, "embeddings.word.weight");
        add("encoder.embedding.pos_embedding.scale_factor", {1}, "embeddings.position.scale");
        if (c.embedding_norm) {
            add("encoder.embedding.norm.weight", {h}, "embeddings.norm.weight");
            add("encoder.embedding.norm.bias", {h}, "embeddings.norm.bias");
        }
        const float norm_factor = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim())));
        for (int i = 0; i < c.layers; ++i) {
            const std::string p = detail::layer_prefix("encoder.layers.", i);
            const std::string q = detail::layer_prefix("layers.", i);
            add(p + "norm1.weight", {h}, q + "norm1.weight");
            add(p + "norm1.bias", {h}, q + "norm1.bias");
            add(p + "attn.self_attention.query_key_value.weight", {3 * h, h}, q + "attn.qkv.weight",
                hf_transform::qkv_per_head);
            if (c.qkv_bias)
                add(p + "attn.self_attention.query_key_value.bias", {3 * h}, q + "attn.qkv.bias", hf_transform::qkv_per_head);
            // a persistent buffer of the original's attention module (1/sqrt(head_dim)), so state_dict() holds it
            m.tensors.push_back({p + "attn.self_attention.norm_factor", {}, "", hf_transform::constant, norm_factor});
            add(p + "attn.dense.weight", {h, h}, q + "attn.out.weight");
            if (c.attn_out_bias) add(p + "attn.dense.bias", {h}, q + "attn.out.bias");
            add(p + "norm2.weight", {h}, q + "norm2.weight");
            add(p + "norm2.bias", {h}, q + "norm2.bias");
            add(p + "ffn.dense_in.weight", {in, h}, q + "ffn.in.weight");
            if (c.ffn_bias) add(p + "ffn.dense_in.bias", {in}, q + "ffn.in.bias");
            add(p + "ffn.dense_out.weight", {h, inner}, q + "ffn.out.weight");
            if (c.ffn_bias) add(p + "ffn.dense_out.bias", {h}, q + "ffn.out.bias");
        }
        if (c.final_norm) {
            add("encoder.final_norm.weight", {h}, "final_norm.weight");
            add("encoder.final_norm.bias", {h}, "final_norm.bias");
        }
        if (c.head_transform) {
            add("prediction_head.dense.weight", {h, h}, "head.transform.weight");
            add("prediction_head.dense.bias", {h}, "head.transform.bias");
            add("prediction_head.norm.weight", {h}, "head.norm.weight");
            add("prediction_head.norm.bias", {h}, "head.norm.bias");
        }
        if (c.decoder_bias) add("decoder.bias", {v}, "head.decoder.bias");
        // decoder.weight is the word embedding's Parameter in the original model; save_pretrained keeps one
        // name of a shared tensor (the first, the embedding)
        m.aliases.push_back({"decoder.weight", "encoder.embedding.word_embedding.weight"});
    }
    std::sort(m.tensors.begin(), m.tensors.end(), [](const hf_tensor& a, const hf_tensor& b) { return a.name < b.name; });
    return m;
}

// Row permutation of a fused QKV (rows of `cols` values): cram row p*hidden + head*hd + d is the original
// cramming layout's row head*3*hd + p*hd + d. to_original picks the direction.
inline std::vector<float> permute_qkv(const float* src, int hidden, int heads, std::int64_t cols, bool to_original) {
    const std::int64_t hd = hidden / heads;
    std::vector<float> out(static_cast<std::size_t>(3 * hidden * cols));
    for (int p = 0; p < 3; ++p)
        for (int head = 0; head < heads; ++head)
            for (std::int64_t d = 0; d < hd; ++d) {
                const std::int64_t cram_row = p * hidden + head * hd + d;
                const std::int64_t orig_row = head * 3 * hd + p * hd + d;
                const std::int64_t from = to_original ? cram_row : orig_row, to = to_original ? orig_row : cram_row;
                std::memcpy(out.data() + to * cols, src + from * cols, static_cast<std::size_t>(cols) * sizeof(float));
            }
    return out;
}

inline std::int64_t element_count(const std::vector<std::int64_t>& shape) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
}

// The published tensors' values from cram's flat parameter buffer (laid out by `layout`), in mapping order.
inline std::vector<std::vector<float>> export_tensors(const hf_mapping& m, const bert_config& c, const param_layout& layout,
                                                      const float* params) {
    std::vector<std::vector<float>> out;
    for (const auto& t : m.tensors) {
        if (t.transform == hf_transform::constant) {
            out.push_back({t.constant_value});
            continue;
        }
        const param_info* p = layout.find(t.cram_name);
        CRAM_CHECK(p, "internal: cram tensor '", t.cram_name, "' (for ", t.name, ") is not in the layout");
        const float* src = params + p->offset;
        const std::int64_t cols = p->shape.size() == 2 ? p->shape[1] : 1;
        switch (t.transform) {
            case hf_transform::copy: out.emplace_back(src, src + p->size); break;
            case hf_transform::qkv_per_head: out.push_back(permute_qkv(src, c.hidden, c.heads, cols, true)); break;
            default: {
                const std::int64_t part = t.transform == hf_transform::slice_q ? 0 : t.transform == hf_transform::slice_k ? 1 : 2;
                const float* b = src + part * c.hidden * cols;
                out.emplace_back(b, b + c.hidden * cols);
            }
        }
        CRAM_CHECK(static_cast<std::int64_t>(out.back().size()) == element_count(t.shape), "internal: ", t.name,
                   " has ", out.back().size(), " values, its shape needs ", element_count(t.shape));
    }
    return out;
}

// ---- config.json ---------------------------------------------------------------------------------------

// A float as the short decimal that reads back as the same float (1e-12f -> 1e-12, not 9.99999996e-13).
inline double short_decimal(float f) {
    for (int digits = 6; digits <= 9; ++digits) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(f));
        const double d = std::strtod(buf, nullptr);
        if (static_cast<float>(d) == f) return d;
    }
    return static_cast<double>(f);
}

struct export_options {
    float init_std = 0.02f;
    int pad_id = 0;
    int classifier_hidden = 1024;
    double mask_rate = 0.25;  // the original's sparse_prediction value (its MLM probability)
};

inline nlohmann::ordered_json make_config(const bert_config& c, hf_layout layout, const export_options& o) {
    check_exportable(c, layout, "this configuration");
    nlohmann::ordered_json j;
    if (layout == hf_layout::bert) {
        j["architectures"] = {"BertForMaskedLM"};
        j["attention_probs_dropout_prob"] = 0.1;
        j["classifier_dropout"] = nullptr;
        j["hidden_act"] = "gelu";
        j["hidden_dropout_prob"] = 0.1;
        j["hidden_size"] = c.hidden;
        j["initializer_range"] = short_decimal(o.init_std);
        j["intermediate_size"] = c.intermediate;
        j["layer_norm_eps"] = short_decimal(c.norm_eps);
        j["max_position_embeddings"] = c.max_seq;
        j["model_type"] = "bert";
        j["num_attention_heads"] = c.heads;
        j["num_hidden_layers"] = c.layers;
        j["pad_token_id"] = o.pad_id;
        j["position_embedding_type"] = "absolute";
        j["tie_word_embeddings"] = c.tied_decoder;
        j["torch_dtype"] = "float32";
        j["type_vocab_size"] = c.token_types;
        j["use_cache"] = true;
        j["vocab_size"] = c.vocab;
        return j;
    }
    // crammedBertConfig keeps the hydra `arch` block whole (cfg_arch_container); the keys are those of
    // cramming/config/arch/crammed-bert.yaml, resolved
    nlohmann::ordered_json a;
    a["architectures"] = {"ScriptableCrammedBERT"};
    a["num_transformer_layers"] = c.layers;
    a["hidden_size"] = c.hidden;
    a["intermed_size"] = c.intermediate;
    a["hidden_dropout_prob"] = 0.1;
    a["norm"] = "LayerNorm";
    a["norm_eps"] = short_decimal(c.norm_eps);
    a["norm_scheme"] = "pre";
    a["nonlin"] = c.ffn == ffn_kind::gelu_glu ? "GELUglu" : "GELU";
    a["tie_weights"] = true;
    a["decoder_bias"] = c.decoder_bias;
    a["sparse_prediction"] = c.sparse_prediction ? nlohmann::ordered_json(o.mask_rate) : nlohmann::ordered_json(false);
    a["loss"] = "cross-entropy";
    a["objective_layout"] = "MLM";
    a["embedding"] = {{"vocab_size", c.vocab},
                      {"pos_embedding", "scaled-sinusoidal"},
                      {"dropout_prob", 0.1},
                      {"pad_token_id", o.pad_id},
                      {"max_seq_length", c.max_seq},
                      {"embedding_dim", c.hidden},
                      {"normalization", c.embedding_norm},
                      {"stable_low_precision", false}};
    a["attention"] = {{"type", "self-attention"},
                      {"causal_attention", false},
                      {"num_attention_heads", c.heads},
                      {"dropout_prob", 0.1},
                      {"skip_output_projection", false},
                      {"qkv_bias", c.qkv_bias},
                      {"rotary_embedding", false},
                      {"seq_op_in_fp32", false},
                      {"sequence_op", "torch-softmax"}};
    a["init"] = {{"type", "normal"}, {"std", short_decimal(o.init_std)}};
    a["ffn_layer_frequency"] = 1;
    a["skip_head_transform"] = !c.head_transform;
    a["use_bias"] = c.ffn_bias;
    a["final_norm"] = c.final_norm;
    a["num_labels"] = nullptr;
    a["classification_head"] = {{"pooler", "avg"},
                                {"include_ff_layer", true},
                                {"head_dim", o.classifier_hidden},
                                {"nonlin", "Tanh"},
                                {"classifier_dropout", 0.1}};
    j["arch"] = a;
    j["architectures"] = {"ScriptableLMForPreTraining"};
    j["model_type"] = "crammedBERT";
    j["torch_dtype"] = "float32";
    return j;
}

// What a config.json describes: its layout and the cram configuration it needs. Throws naming the field
// that is missing, of the wrong type, or not expressible in cram.
struct parsed_config {
    hf_layout layout;
    bert_config config;
    int pad_id = 0;
};

// Typed reads of config.json fields, each error naming the file and the dotted field.
class config_reader {
public:
    config_reader(const nlohmann::json& j, std::filesystem::path file, std::string prefix = "")
        : j_(j), file_(std::move(file)), prefix_(std::move(prefix)) {
        CRAM_CHECK(j_.is_object(), file_.string(), ": ", prefix_.empty() ? std::string("the file") : "field '" + prefix_ + "'",
                   " is not a JSON object");
    }
    bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
    std::int64_t integer(const char* key, std::int64_t min) const {
        const auto& v = at(key);
        if (!v.is_number_integer() || v.get<std::int64_t>() < min) wrong(key, "an integer >= " + std::to_string(min), v);
        return v.get<std::int64_t>();
    }
    std::int64_t integer_or(const char* key, std::int64_t fallback, std::int64_t min) const {
        return has(key) ? integer(key, min) : fallback;
    }
    double number_or(const char* key, double fallback) const {
        if (!has(key)) return fallback;
        const auto& v = at(key);
        if (!v.is_number() || !std::isfinite(v.get<double>())) wrong(key, "a finite number", v);
        return v.get<double>();
    }
    std::string string(const char* key) const {
        const auto& v = at(key);
        if (!v.is_string()) wrong(key, "a string", v);
        return v.get<std::string>();
    }
    std::string string_or(const char* key, std::string fallback) const { return has(key) ? string(key) : fallback; }
    bool boolean(const char* key) const {
        const auto& v = at(key);
        if (!v.is_boolean()) wrong(key, "true or false", v);
        return v.get<bool>();
    }
    bool boolean_or(const char* key, bool fallback) const { return has(key) ? boolean(key) : fallback; }
    const nlohmann::json& raw_or_null(const char* key) const {
        static const nlohmann::json null;
        return j_.contains(key) ? j_[key] : null;
    }
    config_reader sub(const char* key) const { return config_reader(at(key), file_, prefix_ + key + "."); }

private:
    const nlohmann::json& at(const char* key) const {
        if (!j_.contains(key)) CRAM_THROW(file_.string(), ": field '", prefix_, key, "' is missing");
        return j_[key];
    }
    [[noreturn]] void wrong(const char* key, const std::string& want, const nlohmann::json& v) const {
        CRAM_THROW(file_.string(), ": field '", prefix_, key, "' must be ", want, ", found ", v.dump());
    }
    const nlohmann::json& j_;
    std::filesystem::path file_;
    std::string prefix_;
};

inline parsed_config parse_config(const nlohmann::json& j, const std::filesystem::path& file) {
    const config_reader f(j, file);
    const std::string type = f.string("model_type");
    auto require = [&](bool ok, const std::string& field, const std::string& got, const std::string& want) {
        CRAM_CHECK(ok, file.string(), ": field '", field, "' is ", got, "; cram can only import ", want);
    };
    parsed_config p{hf_layout::bert, {}, 0};
    bert_config& c = p.config;
    if (type == "bert") {
        p.layout = hf_layout::bert;
        c.vocab = int(f.integer("vocab_size", 1));
        c.hidden = int(f.integer("hidden_size", 1));
        c.heads = int(f.integer("num_attention_heads", 1));
        c.layers = int(f.integer("num_hidden_layers", 1));
        c.intermediate = int(f.integer("intermediate_size", 1));
        c.max_seq = int(f.integer("max_position_embeddings", 1));
        c.token_types = int(f.integer("type_vocab_size", 1));
        c.norm_eps = static_cast<float>(f.number_or("layer_norm_eps", 1e-12));
        const std::string act = f.string_or("hidden_act", "gelu");
        require(act == "gelu", "hidden_act", "\"" + act + "\"", "\"gelu\" (the exact erf GELU)");
        const std::string pos = f.string_or("position_embedding_type", "absolute");
        require(pos == "absolute", "position_embedding_type", "\"" + pos + "\"", "\"absolute\"");
        c.tied_decoder = f.boolean_or("tie_word_embeddings", true);
        c.norm = norm_placement::post;
        c.ffn = ffn_kind::gelu;
        c.positions = position_kind::learned;
        c.qkv_bias = c.attn_out_bias = c.ffn_bias = c.decoder_bias = true;
        c.embedding_norm = true;
        c.final_norm = false;
        c.head_transform = true;
        c.sparse_prediction = false;
        p.pad_id = int(f.integer_or("pad_token_id", 0, 0));
        return p;
    }
    CRAM_CHECK(type == "crammedBERT", file.string(), ": field 'model_type' is \"", type,
               "\"; cram imports \"bert\" (BertForMaskedLM) and \"crammedBERT\" (the original cramming code)");
    p.layout = hf_layout::crammed;
    const config_reader a = f.sub("arch");
    const config_reader e = a.sub("embedding");
    const config_reader at = a.sub("attention");
    auto str = [&](const config_reader& g, const char* key, const char* want, const std::string& prefix) {
        const std::string v = g.string(key);
        require(v == want, prefix + key, "\"" + v + "\"", std::string("\"") + want + "\"");
    };
    c.vocab = int(e.integer("vocab_size", 1));
    c.hidden = int(a.integer("hidden_size", 1));
    c.heads = int(at.integer("num_attention_heads", 1));
    c.layers = int(a.integer("num_transformer_layers", 1));
    c.intermediate = int(a.integer("intermed_size", 1));
    c.max_seq = int(e.integer("max_seq_length", 1));
    c.norm_eps = static_cast<float>(a.number_or("norm_eps", 1e-12));
    const std::int64_t emb_dim = e.integer("embedding_dim", 1);
    require(emb_dim == c.hidden, "arch.embedding.embedding_dim", std::to_string(emb_dim), "hidden_size");
    str(a, "norm", "LayerNorm", "arch.");
    const std::string scheme = a.string_or("norm_scheme", "pre");
    require(scheme == "pre", "arch.norm_scheme", "\"" + scheme + "\"", "\"pre\"");
    const std::string nonlin = a.string("nonlin");
    require(nonlin == "GELUglu" || nonlin == "GELU", "arch.nonlin", "\"" + nonlin + "\"", "\"GELUglu\" or \"GELU\"");
    c.ffn = nonlin == "GELUglu" ? ffn_kind::gelu_glu : ffn_kind::gelu;
    str(e, "pos_embedding", "scaled-sinusoidal", "arch.embedding.");
    str(at, "type", "self-attention", "arch.attention.");
    str(at, "sequence_op", "torch-softmax", "arch.attention.");
    require(!at.boolean_or("causal_attention", false), "arch.attention.causal_attention", "true", "false");
    require(!at.boolean_or("skip_output_projection", false), "arch.attention.skip_output_projection", "true", "false");
    const nlohmann::json& rot = at.raw_or_null("rotary_embedding");
    require(rot.is_null() || (rot.is_boolean() && !rot.get<bool>()), "arch.attention.rotary_embedding", rot.dump(), "false");
    require(a.boolean_or("tie_weights", true), "arch.tie_weights", "false", "true (a decoder tied to the word embedding)");
    const std::string objective = a.string_or("objective_layout", "MLM");
    require(objective == "MLM", "arch.objective_layout", "\"" + objective + "\"", "\"MLM\"");
    c.norm = norm_placement::pre;
    c.positions = position_kind::scaled_sinusoidal;
    c.qkv_bias = at.boolean("qkv_bias");
    c.attn_out_bias = c.ffn_bias = a.boolean("use_bias");
    c.decoder_bias = a.boolean("decoder_bias");
    c.token_types = 0;
    c.embedding_norm = e.boolean_or("normalization", true);
    c.final_norm = a.boolean_or("final_norm", true);
    c.head_transform = !a.boolean_or("skip_head_transform", true);
    c.tied_decoder = true;
    const nlohmann::json& sp = a.raw_or_null("sparse_prediction");
    c.sparse_prediction = sp.is_number() ? sp.get<double>() > 0 : sp.is_boolean() && sp.get<bool>();
    p.pad_id = int(e.integer_or("pad_token_id", 0, 0));
    return p;
}

// The fields in which a configuration parsed from config.json differs from a preset's (empty: it is that
// preset). Training-only switches (sparse prediction) are not compared.
inline std::vector<std::string> config_differences(const bert_config& got, const bert_config& preset) {
    std::vector<std::string> d;
    auto cmp = [&](const char* name, auto a, auto b) {
        if (a != b) d.push_back(std::string(name) + " " + std::to_string(a) + " (the preset has " + std::to_string(b) + ")");
    };
    cmp("vocab_size", got.vocab, preset.vocab);
    cmp("hidden_size", got.hidden, preset.hidden);
    cmp("num_attention_heads", got.heads, preset.heads);
    cmp("layers", got.layers, preset.layers);
    cmp("intermediate_size", got.intermediate, preset.intermediate);
    cmp("max_positions", got.max_seq, preset.max_seq);
    cmp("norm_placement(pre=0)", int(got.norm), int(preset.norm));
    cmp("ffn(gelu=0,glu=1)", int(got.ffn), int(preset.ffn));
    cmp("positions(learned=0)", int(got.positions), int(preset.positions));
    cmp("qkv_bias", got.qkv_bias, preset.qkv_bias);
    cmp("attention_output_bias", got.attn_out_bias, preset.attn_out_bias);
    cmp("ffn_bias", got.ffn_bias, preset.ffn_bias);
    cmp("decoder_bias", got.decoder_bias, preset.decoder_bias);
    cmp("type_vocab_size", got.token_types, preset.token_types);
    cmp("embedding_norm", got.embedding_norm, preset.embedding_norm);
    cmp("final_norm", got.final_norm, preset.final_norm);
    cmp("head_transform", got.head_transform, preset.head_transform);
    cmp("tie_word_embeddings", got.tied_decoder, preset.tied_decoder);
    if (got.norm_eps != preset.norm_eps)
        d.push_back("layer_norm_eps " + std::to_string(got.norm_eps) + " (the preset has " + std::to_string(preset.norm_eps) + ")");
    return d;
}

// ---- safetensors: writing a directory, reading one (single file or sharded) ----------------------------

inline train::file_digest write_model_file(const std::filesystem::path& path, const hf_mapping& m,
                                    const std::vector<std::vector<float>>& values) {
    std::vector<train::safetensors_entry> entries;
    for (std::size_t i = 0; i < m.tensors.size(); ++i)
        entries.push_back({m.tensors[i].name, "F32", m.tensors[i].shape, values[i].data()});
    return train::write_safetensors(path, entries);
}

// Widens F16 (IEEE binary16) exactly to float.
inline float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    std::uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0x1f) bits = sign | 0x7f800000u | (man << 13);  // inf, NaN
    else if (exp == 0) {
        if (man == 0) bits = sign;
        else {  // subnormal: normalise
            int e = -1;
            do {
                ++e;
                man <<= 1;
            } while ((man & 0x400u) == 0);
            bits = sign | static_cast<std::uint32_t>(127 - 15 - e) << 23 | (man & 0x3ffu) << 13;
        }
    } else bits = sign | (exp + 112) << 23 | man << 13;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// One tensor of a published directory, widened to F32.
struct read_tensor {
    std::vector<std::int64_t> shape;
    std::string dtype;  // as stored
    std::vector<float> values;
    std::filesystem::path file;
};

// Every tensor of DIR/model.safetensors, or of the shards that DIR/model.safetensors.index.json lists
// (each tensor must be in the shard its weight_map names, and every tensor of a shard in the map).
inline std::map<std::string, read_tensor> read_model_dir(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    std::map<std::string, read_tensor> out;
    std::map<std::string, std::string> where;  // tensor -> shard (sharded form only)
    std::vector<fs::path> files;
    const fs::path single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
    if (fs::exists(index)) {
        const nlohmann::json j = train::read_json_file(index);
        CRAM_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), index.string(),
                   ": no \"weight_map\" object");
        std::set<std::string> shards;
        for (const auto& [name, file] : j["weight_map"].items()) {
            CRAM_CHECK(file.is_string(), index.string(), ": weight_map entry of '", name, "' is not a file name");
            const std::string s = file.get<std::string>();
            CRAM_CHECK(s.find('/') == std::string::npos && s.find('\\') == std::string::npos && s != ".." && !s.empty(),
                       index.string(), ": weight_map entry of '", name, "' names '", s, "', not a file in the directory");
            where[name] = s;
            shards.insert(s);
        }
        for (const auto& s : shards) files.push_back(dir / s);
    } else {
        CRAM_CHECK(fs::exists(single), dir.string(), " has neither model.safetensors nor model.safetensors.index.json "
                   "(pytorch_model.bin is not read: convert it to safetensors first)");
        files.push_back(single);
    }
    for (const auto& file : files) {
        const train::safetensors_file f(file);
        for (const auto& [name, t] : f.tensors()) {
            if (!where.empty()) {
                const auto it = where.find(name);
                CRAM_CHECK(it != where.end(), file.string(), ": tensor '", name, "' is not in model.safetensors.index.json");
                CRAM_CHECK(it->second == file.filename().string(), file.string(), ": tensor '", name,
                           "' is listed in model.safetensors.index.json under ", it->second);
            }
            CRAM_CHECK(!out.count(name), file.string(), ": tensor '", name, "' appears in two shards");
            read_tensor r{t.shape, t.dtype, {}, file};
            const std::size_t n = static_cast<std::size_t>(element_count(t.shape));
            const unsigned char* b = f.data().data() + t.begin;
            r.values.resize(n);
            if (t.dtype == "F32") std::memcpy(r.values.data(), b, n * 4);
            else if (t.dtype == "F16" || t.dtype == "BF16") {
                for (std::size_t i = 0; i < n; ++i) {
                    const std::uint16_t u = static_cast<std::uint16_t>(b[2 * i] | (b[2 * i + 1] << 8));
                    if (t.dtype == "F16") r.values[i] = half_to_float(u);
                    else {
                        const std::uint32_t bits = static_cast<std::uint32_t>(u) << 16;
                        std::memcpy(&r.values[i], &bits, 4);
                    }
                }
            } else r.values.clear();  // other dtypes: kept for the error message (or an ignorable buffer)
            out.emplace(name, std::move(r));
        }
    }
    for (const auto& [name, shard] : where)
        CRAM_CHECK(out.count(name), (dir / shard).string(), " lacks tensor '", name,
                   "' that model.safetensors.index.json places there");
    return out;
}

// Fills cram's flat buffer (laid out by `layout`, zeroed first) from a published directory's tensors.
// Every expected tensor must be there with its shape and a float dtype; aliases must equal what they
// alias; any other tensor is refused unless `allow_unused` (then listed in `unused`).
inline void import_tensors(const hf_mapping& m, const bert_config& c, const param_layout& layout,
                           const std::map<std::string, read_tensor>& in, float* params, bool allow_unused,
                           std::vector<std::string>* unused = nullptr) {
    std::fill(params, params + layout.buffer_size(), 0.0f);
    std::set<std::string> used;
    auto get = [&](const std::string& name, const std::vector<std::int64_t>& shape) -> const read_tensor& {
        const auto it = in.find(name);
        CRAM_CHECK(it != in.end(), "tensor '", name, "' is missing (the ", to_string(m.layout), " layout of this preset needs it)");
        const read_tensor& t = it->second;
        CRAM_CHECK(!t.values.empty() || element_count(t.shape) == 0, t.file.string(), ": tensor '", name, "' is ", t.dtype,
                   "; cram imports F32, F16 and BF16");
        CRAM_CHECK(t.shape == shape, t.file.string(), ": tensor '", name, "' has shape ", nlohmann::json(t.shape).dump(),
                   ", this preset needs ", nlohmann::json(shape).dump());
        used.insert(name);
        return t;
    };
    std::map<std::string, std::vector<bool>> filled;  // cram tensor -> which rows the slices wrote
    for (const auto& t : m.tensors) {
        // a buffer, not a parameter: files saved without persistent buffers lack it, and that is fine
        if (t.transform == hf_transform::constant && !in.count(t.name)) continue;
        const read_tensor& r = get(t.name, t.shape);
        if (t.transform == hf_transform::constant) {
            CRAM_CHECK(r.values[0] == t.constant_value, r.file.string(), ": buffer '", t.name, "' is ", r.values[0],
                       ", the model computes with ", t.constant_value, " (1/sqrt(head_dim))");
            continue;
        }
        const param_info* p = layout.find(t.cram_name);
        CRAM_CHECK(p, "internal: cram tensor '", t.cram_name, "' is not in the layout");
        float* dst = params + p->offset;
        const std::int64_t cols = p->shape.size() == 2 ? p->shape[1] : 1;
        switch (t.transform) {
            case hf_transform::copy: std::copy(r.values.begin(), r.values.end(), dst); break;
            case hf_transform::qkv_per_head: {
                const auto v = permute_qkv(r.values.data(), c.hidden, c.heads, cols, false);
                std::copy(v.begin(), v.end(), dst);
                break;
            }
            default: {
                const std::int64_t part = t.transform == hf_transform::slice_q ? 0 : t.transform == hf_transform::slice_k ? 1 : 2;
                std::copy(r.values.begin(), r.values.end(), dst + part * c.hidden * cols);
            }
        }
    }
    for (const auto& a : m.aliases) {
        const auto it = in.find(a.name);
        if (it == in.end()) continue;
        const auto& target = in.at(a.same_as);
        CRAM_CHECK(it->second.shape == target.shape && it->second.values.size() == target.values.size() &&
                       std::memcmp(it->second.values.data(), target.values.data(), target.values.size() * sizeof(float)) == 0,
                   it->second.file.string(), ": tensor '", a.name, "' differs from '", a.same_as,
                   "', which this layout ties it to: cram cannot hold both (an untied model of another configuration?)");
        used.insert(a.name);
    }
    for (const auto& [name, t] : in) {
        if (used.count(name) || m.ignorable.count(name)) continue;
        if (allow_unused) {
            if (unused) unused->push_back(name);
            continue;
        }
        CRAM_THROW(t.file.string(), ": tensor '", name, "' has no place in the ", to_string(m.layout),
                   " layout of this preset (pass --allow-unused to drop tensors such as BERT's pooler and NSP head)");
    }
}

// ---- tokenizer files -----------------------------------------------------------------------------------

struct tokenizer_settings {
    bool lowercase = true, strip_accents = true, chinese_chars = true, clean_text = true;
    int model_max_length = 128;
};

inline nlohmann::ordered_json special_tokens_map() {
    return {{"unk_token", "[UNK]"}, {"sep_token", "[SEP]"}, {"pad_token", "[PAD]"}, {"cls_token", "[CLS]"}, {"mask_token", "[MASK]"}};
}

inline nlohmann::ordered_json tokenizer_config(const tokenizer_settings& s) {
    nlohmann::ordered_json j;
    j["clean_up_tokenization_spaces"] = true;
    j["cls_token"] = "[CLS]";
    j["do_basic_tokenize"] = true;
    j["do_lower_case"] = s.lowercase;
    j["mask_token"] = "[MASK]";
    j["model_max_length"] = s.model_max_length;
    j["never_split"] = nullptr;
    j["pad_token"] = "[PAD]";
    j["sep_token"] = "[SEP]";
    // BertTokenizer: null means "follow do_lower_case"; an explicit value when they differ
    j["strip_accents"] = s.strip_accents == s.lowercase ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(s.strip_accents);
    j["tokenize_chinese_chars"] = s.chinese_chars;
    j["tokenizer_class"] = "BertTokenizer";
    j["unk_token"] = "[UNK]";
    return j;
}

// tokenizer.json of the `tokenizers` library (its serialised Tokenizer: normalizer, pre-tokenizer,
// WordPiece model, template post-processor, decoder) for vocab.txt's tokens (id = line number).
inline nlohmann::ordered_json tokenizer_json(const std::vector<std::string>& vocab, const tokenizer_settings& s) {
    auto id_of = [&](const std::string& t) -> int {
        for (std::size_t i = 0; i < vocab.size(); ++i)
            if (vocab[i] == t) return static_cast<int>(i);
        CRAM_THROW("the vocabulary has no ", t, " token: it is not a BERT WordPiece vocabulary");
    };
    nlohmann::ordered_json j;
    j["version"] = "1.0";
    j["truncation"] = nullptr;
    j["padding"] = nullptr;
    std::vector<std::pair<int, std::string>> specials;
    for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) specials.emplace_back(id_of(t), t);
    std::sort(specials.begin(), specials.end());
    j["added_tokens"] = nlohmann::ordered_json::array();
    for (const auto& [id, t] : specials)
        j["added_tokens"].push_back({{"id", id}, {"content", t}, {"single_word", false}, {"lstrip", false},
                                     {"rstrip", false}, {"normalized", false}, {"special", true}});
    j["normalizer"] = {{"type", "BertNormalizer"},
                       {"clean_text", s.clean_text},
                       {"handle_chinese_chars", s.chinese_chars},
                       {"strip_accents", s.strip_accents},
                       {"lowercase", s.lowercase}};
    j["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
    auto special = [](const char* id, int type) { return nlohmann::ordered_json{{"SpecialToken", {{"id", id}, {"type_id", type}}}}; };
    auto seq = [](const char* id, int type) { return nlohmann::ordered_json{{"Sequence", {{"id", id}, {"type_id", type}}}}; };
    const int cls = id_of("[CLS]"), sep = id_of("[SEP]");
    j["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", {special("[CLS]", 0), seq("A", 0), special("[SEP]", 0)}},
        {"pair", {special("[CLS]", 0), seq("A", 0), special("[SEP]", 0), seq("B", 1), special("[SEP]", 1)}},
        {"special_tokens",
         {{"[CLS]", {{"id", "[CLS]"}, {"ids", {cls}}, {"tokens", {"[CLS]"}}}},
          {"[SEP]", {{"id", "[SEP]"}, {"ids", {sep}}, {"tokens", {"[SEP]"}}}}}}};
    j["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}};
    nlohmann::ordered_json v = nlohmann::ordered_json::object();
    for (std::size_t i = 0; i < vocab.size(); ++i) v[vocab[i]] = static_cast<int>(i);  // a repeated token keeps its last id
    j["model"] = {{"type", "WordPiece"},
                  {"unk_token", "[UNK]"},
                  {"continuing_subword_prefix", "##"},
                  {"max_input_chars_per_word", 100},
                  {"vocab", v}};
    return j;
}

// vocab.txt's tokens, one a line (a final newline optional, CR stripped as the BERT loaders do).
inline std::vector<std::string> read_vocab_lines(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    CRAM_CHECK(static_cast<bool>(in), "cannot open ", file.string());
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        out.push_back(line);
    }
    return out;
}

// ---- whole directories ---------------------------------------------------------------------------------

// The normaliser settings a directory's tokenizer files state: tokenizer.json's BertNormalizer when
// present, else tokenizer_config.json (BertTokenizer's do_lower_case, strip_accents = null meaning
// "as do_lower_case", tokenize_chinese_chars), else BERT's defaults (uncased).
inline tokenizer_settings read_tokenizer_settings(const std::filesystem::path& dir, int model_max_length) {
    namespace fs = std::filesystem;
    tokenizer_settings s;
    s.model_max_length = model_max_length;
    if (fs::exists(dir / "tokenizer.json")) {
        const nlohmann::json j = train::read_json_file(dir / "tokenizer.json");
        const config_reader n = config_reader(j, dir / "tokenizer.json").sub("normalizer");
        const std::string type = n.string("type");
        CRAM_CHECK(type == "BertNormalizer", (dir / "tokenizer.json").string(), ": field 'normalizer.type' is \"", type,
                   "\"; cram's tokenizer is BERT's (BertNormalizer)");
        s.clean_text = n.boolean_or("clean_text", true);
        s.chinese_chars = n.boolean_or("handle_chinese_chars", true);
        s.lowercase = n.boolean_or("lowercase", true);
        s.strip_accents = n.boolean_or("strip_accents", s.lowercase);
        return s;
    }
    if (fs::exists(dir / "tokenizer_config.json")) {
        const nlohmann::json j = train::read_json_file(dir / "tokenizer_config.json");
        const config_reader c(j, dir / "tokenizer_config.json");
        s.lowercase = c.boolean_or("do_lower_case", true);
        s.strip_accents = c.boolean_or("strip_accents", s.lowercase);
        s.chinese_chars = c.boolean_or("tokenize_chinese_chars", true);
    }
    return s;
}

inline nlohmann::json to_json(const tokenizer_settings& s) {
    return {{"lowercase", s.lowercase}, {"strip_accents", s.strip_accents}, {"handle_chinese_chars", s.chinese_chars},
            {"clean_text", s.clean_text}};
}

struct export_request {
    bert_config config;
    hf_layout layout = hf_layout::crammed;
    export_options options;
    const param_layout* params_layout = nullptr;  // cram's layout of `params`
    const float* params = nullptr;
    std::filesystem::path vocab;                  // vocab.txt to publish
    tokenizer_settings tokenizer;
    std::string readme;                           // model card; empty: none written
};

// Writes a from_pretrained directory at `out` (which must not exist or be empty): config.json,
// model.safetensors, vocab.txt, tokenizer_config.json, special_tokens_map.json, tokenizer.json and
// README.md, assembled in a temporary directory and published by one rename.
inline void write_hf_directory(const std::filesystem::path& out, const export_request& r) {
    namespace fs = std::filesystem;
    CRAM_CHECK(r.params && r.params_layout, "write_hf_directory: no parameters");
    std::error_code ec;
    CRAM_CHECK(!fs::exists(out, ec) || (fs::is_directory(out, ec) && fs::is_empty(out, ec)), out.string(),
               " exists and is not an empty directory: choose a new --out (nothing was written)");
    const hf_mapping m = make_mapping(r.config, r.layout);
    const auto values = export_tensors(m, r.config, *r.params_layout, r.params);
    const auto vocab = read_vocab_lines(r.vocab);
    CRAM_CHECK(static_cast<int>(vocab.size()) == r.config.vocab, r.vocab.string(), " has ", vocab.size(),
               " tokens, the model ", r.config.vocab, ": not the vocabulary it was trained with");
    tokenizer_settings tok = r.tokenizer;
    tok.model_max_length = r.config.max_seq;
    if (!out.parent_path().empty()) fs::create_directories(out.parent_path());
    const fs::path tmp = temp_name_for(out);
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp);
    try {
        write_model_file(tmp / "model.safetensors", m, values);
        auto write = [&](const char* name, const std::string& text) { atomic_write_file(tmp / name, text); };
        write("config.json", make_config(r.config, r.layout, r.options).dump(2) + "\n");
        std::string lines;
        for (const auto& t : vocab) lines.append(t).push_back('\n');
        write("vocab.txt", lines);
        write("tokenizer_config.json", tokenizer_config(tok).dump(2) + "\n");
        write("special_tokens_map.json", special_tokens_map().dump(2) + "\n");
        write("tokenizer.json", tokenizer_json(vocab, tok).dump(2) + "\n");
        if (!r.readme.empty()) write("README.md", r.readme);
        fsync_directory(tmp);
        if (fs::exists(out)) fs::remove(out);  // empty, checked above
        rename_path(tmp, out);
    } catch (...) {
        fs::remove_all(tmp, ec);
        throw;
    }
}

// A published directory read into cram's layout for `preset` (the caller picked the preset whose
// configuration config.json describes).
struct imported_model {
    parsed_config parsed;
    std::vector<float> params;
    std::vector<std::string> unused;  // tensors dropped with allow_unused
    tokenizer_settings tokenizer;
};

inline parsed_config read_hf_config(const std::filesystem::path& dir) {
    const std::filesystem::path file = dir / "config.json";
    CRAM_CHECK(std::filesystem::exists(file), dir.string(), " has no config.json: not a Hugging Face model directory");
    const parsed_config p = parse_config(train::read_json_file(file), file);
    CRAM_CHECK(p.config.hidden % p.config.heads == 0, file.string(), ": hidden size ", p.config.hidden,
               " is not a multiple of the ", p.config.heads, " attention heads");
    return p;
}

inline imported_model read_hf_directory(const std::filesystem::path& dir, const bert_config& preset,
                                        const param_layout& layout, bool allow_unused) {
    imported_model out;
    out.parsed = read_hf_config(dir);
    const auto diff = config_differences(out.parsed.config, preset);
    if (!diff.empty()) {
        std::string all;
        for (const auto& d : diff) all += (all.empty() ? "" : ", ") + d;
        CRAM_THROW((dir / "config.json").string(), " does not describe the chosen preset: ", all);
    }
    const hf_mapping m = make_mapping(preset, out.parsed.layout);
    const auto tensors = read_model_dir(dir);
    out.params.assign(layout.buffer_size(), 0.0f);
    import_tensors(m, preset, layout, tensors, out.params.data(), allow_unused, &out.unused);
    for (const auto& t : layout.tensors())
        for (std::size_t i = 0; i < t.size; ++i)
            CRAM_CHECK(std::isfinite(out.params[t.offset + i]), "tensor for cram's '", t.name,
                       "' holds NaN or infinite values: refusing to import a diverged model");
    out.tokenizer = read_tokenizer_settings(dir, preset.max_seq);
    return out;
}

}  // namespace cram::interop
