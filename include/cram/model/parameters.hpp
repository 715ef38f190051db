// Where every parameter lives. A model's parameters (and, in the same layout, its gradients and AdamW
// moments) are one flat buffer; named pointers into it are bound from one visitor that lists every
// tensor once: name, shape, role. Tensors that get weight decay come first, so AdamW runs over two
// contiguous ranges, and the gradient norm is one pass over the whole buffer.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/rng.hpp"
#include "cram/model/config.hpp"

namespace cram {

// The role decides initialisation and weight decay.
enum class param_role {
    matrix,          // linear weight: normal(0, init_std), decayed
    embedding,       // embedding table: normal(0, init_std), pad row zero, decayed
    bias,            // zero, not decayed
    norm_weight,     // one, not decayed
    norm_bias,       // zero, not decayed
    position_scale,  // scalar 1/sqrt(hidden) for scaled sinusoidal positions, decayed
};

// Weight decay as the original cramming code groups its parameters (backend/utils.py group_parameters with
// limited_decay_keys [bias, LayerNorm.bias, LayerNorm.weight, norm], the same keys in pretraining and GLUE):
// a tensor is decayed unless its name contains "bias" or "norm". So biases and LayerNorm weights and biases
// are not, and everything else is, the position scale included (its name there, ...pos_embedding.scale_factor,
// matches no key). cram's names follow the same pattern, so the role rule and the name rule agree
// (tests/model/test_parameters.cpp checks both on every preset).
constexpr bool decays(param_role r) {
    return r == param_role::matrix || r == param_role::embedding || r == param_role::position_scale;
}
// The original's rule on a name: no decay when it contains "bias" or "norm".
inline bool decays_by_name(std::string_view name) {
    return name.find("bias") == std::string_view::npos && name.find("norm") == std::string_view::npos;
}

struct param_info {
    std::string name;
    std::vector<std::int64_t> shape;
    param_role role;
    std::size_t offset = 0;  // in elements, into the flat buffer
    std::size_t size = 0;    // elements
};

// Offsets of a list of tensors in a flat buffer. Offsets are aligned to 64 elements (256 bytes in
// fp32) so device kernels can use vector loads on every tensor.
class param_layout {
public:
    static constexpr std::size_t alignment = 64;

    // Called by model types in visit order; the layout places decayed tensors first.
    void add(std::string name, std::vector<std::int64_t> shape, param_role role) {
        std::size_t n = 1;
        for (auto d : shape) n *= static_cast<std::size_t>(d);
        visit_order_.push_back({std::move(name), std::move(shape), role, 0, n});
    }
    // Appends every tensor of `other` (in its visit order) under `prefix`: an encoder and its task head
    // become one layout, so one AdamW pass, one norm and one weight refresh serve both.
    void append(const param_layout& other, const std::string& prefix = "") {
        for (const auto& p : other.tensors()) add(prefix + p.name, p.shape, p.role);
    }
    void finalize() {
        std::size_t off = 0;
        for (int pass = 0; pass < 2; ++pass) {
            for (auto& p : visit_order_) {
                if (decays(p.role) != (pass == 0)) continue;
                p.offset = off;
                off += round_up(p.size);
            }
            if (pass == 0) decay_end_ = off;
        }
        total_ = off;
        count_ = 0;
        for (const auto& p : visit_order_) count_ += p.size;
    }

    const std::vector<param_info>& tensors() const { return visit_order_; }  // in visit order
    std::size_t buffer_size() const { return total_; }  // elements, including alignment padding
    std::size_t decay_end() const { return decay_end_; }  // [0, decay_end) gets weight decay
    std::size_t parameter_count() const { return count_; }  // real parameters, no padding
    const param_info* find(std::string_view name) const {
        for (const auto& p : visit_order_)
            if (p.name == name) return &p;
        return nullptr;
    }

private:
    static std::size_t round_up(std::size_t n) { return (n + alignment - 1) / alignment * alignment; }
    std::vector<param_info> visit_order_;
    std::size_t decay_end_ = 0, total_ = 0, count_ = 0;
};

// Named pointers into a flat buffer of T (parameters or gradients). Null where the config has no such tensor.
template <bert_config C, class T>
struct bert_tensors {
    struct layer {
        T *norm1_w = nullptr, *norm1_b = nullptr;
        T *qkv_w = nullptr, *qkv_b = nullptr;
        T *out_w = nullptr, *out_b = nullptr;
        T *norm2_w = nullptr, *norm2_b = nullptr;
        T *ffn_in_w = nullptr, *ffn_in_b = nullptr;
        T *ffn_out_w = nullptr, *ffn_out_b = nullptr;
    };
    T* word_emb = nullptr;
    T* pos_emb = nullptr;    // learned positions
    T* pos_scale = nullptr;  // scaled sinusoidal positions
    T* type_emb = nullptr;
    T *emb_norm_w = nullptr, *emb_norm_b = nullptr;
    std::array<layer, C.layers> layers{};
    T *final_norm_w = nullptr, *final_norm_b = nullptr;
    T *head_w = nullptr, *head_b = nullptr, *head_norm_w = nullptr, *head_norm_b = nullptr;  // MLM transform
    T* decoder_w = nullptr;  // == word_emb when tied
    T* decoder_b = nullptr;
};

// Lists every tensor of the encoder + MLM head once. f(name, shape, role, slot).
template <bert_config C, class T, class F>
void visit_tensors(bert_tensors<C, T>& t, F&& f) {
    using shape = std::vector<std::int64_t>;
    const std::int64_t h = C.hidden;
    f("embeddings.word.weight", shape{C.vocab, h}, param_role::embedding, t.word_emb);
    if constexpr (C.positions == position_kind::learned)
        f("embeddings.position.weight", shape{C.max_seq, h}, param_role::embedding, t.pos_emb);
    else
        f("embeddings.position.scale", shape{1}, param_role::position_scale, t.pos_scale);
    if constexpr (C.token_types > 0)
        f("embeddings.token_type.weight", shape{C.token_types, h}, param_role::embedding, t.type_emb);
    if constexpr (C.embedding_norm) {
        f("embeddings.norm.weight", shape{h}, param_role::norm_weight, t.emb_norm_w);
        f("embeddings.norm.bias", shape{h}, param_role::norm_bias, t.emb_norm_b);
    }
    for (int i = 0; i < C.layers; ++i) {
        auto& l = t.layers[static_cast<std::size_t>(i)];
        const std::string p = "layers." + std::to_string(i) + ".";
        f(p + "norm1.weight", shape{h}, param_role::norm_weight, l.norm1_w);
        f(p + "norm1.bias", shape{h}, param_role::norm_bias, l.norm1_b);
        f(p + "attn.qkv.weight", shape{3 * h, h}, param_role::matrix, l.qkv_w);
        if constexpr (C.qkv_bias) f(p + "attn.qkv.bias", shape{3 * h}, param_role::bias, l.qkv_b);
        f(p + "attn.out.weight", shape{h, h}, param_role::matrix, l.out_w);
        if constexpr (C.attn_out_bias) f(p + "attn.out.bias", shape{h}, param_role::bias, l.out_b);
        f(p + "norm2.weight", shape{h}, param_role::norm_weight, l.norm2_w);
        f(p + "norm2.bias", shape{h}, param_role::norm_bias, l.norm2_b);
        f(p + "ffn.in.weight", shape{C.intermediate, h}, param_role::matrix, l.ffn_in_w);
        if constexpr (C.ffn_bias) f(p + "ffn.in.bias", shape{C.intermediate}, param_role::bias, l.ffn_in_b);
        f(p + "ffn.out.weight", shape{h, C.ffn_inner()}, param_role::matrix, l.ffn_out_w);
        if constexpr (C.ffn_bias) f(p + "ffn.out.bias", shape{h}, param_role::bias, l.ffn_out_b);
    }
    if constexpr (C.final_norm) {
        f("final_norm.weight", shape{h}, param_role::norm_weight, t.final_norm_w);
        f("final_norm.bias", shape{h}, param_role::norm_bias, t.final_norm_b);
    }
    if constexpr (C.head_transform) {
        f("head.transform.weight", shape{h, h}, param_role::matrix, t.head_w);
        f("head.transform.bias", shape{h}, param_role::bias, t.head_b);
        f("head.norm.weight", shape{h}, param_role::norm_weight, t.head_norm_w);
        f("head.norm.bias", shape{h}, param_role::norm_bias, t.head_norm_b);
    }
    if constexpr (!C.tied_decoder)
        f("head.decoder.weight", shape{C.vocab, h}, param_role::matrix, t.decoder_w);
    if constexpr (C.decoder_bias) f("head.decoder.bias", shape{C.vocab}, param_role::bias, t.decoder_b);
}

template <bert_config C>
const param_layout& bert_layout() {
    static const param_layout layout = [] {
        param_layout l;
        bert_tensors<C, float> dummy;
        visit_tensors(dummy, [&](const std::string& name, std::vector<std::int64_t> shape, param_role role, float*&) {
            l.add(name, std::move(shape), role);
        });
        l.finalize();
        return l;
    }();
    return layout;
}

// Points every slot of `t` into `base` by `layout`, whose tensors [first, first + count) are this model's in
// visit order (bert_layout<C>() itself, or a layout that appended it), and ties the decoder.
template <bert_config C, class T>
bert_tensors<C, T> bind_tensors(T* base, const param_layout& layout = bert_layout<C>(), std::size_t first = 0) {
    bert_tensors<C, T> t;
    const auto& infos = layout.tensors();
    CRAM_CHECK(infos.size() >= first + bert_layout<C>().tensors().size(), "bind_tensors: the layout has ",
               infos.size(), " tensors, fewer than the model's from index ", first);
    std::size_t i = first;
    visit_tensors(t, [&](const std::string&, const std::vector<std::int64_t>&, param_role, T*& slot) {
        slot = base + infos[i++].offset;
    });
    if constexpr (C.tied_decoder) t.decoder_w = t.word_emb;
    return t;
}

// The GLUE head of CRAMMING.md: CLS -> Linear(hidden, inner) -> Tanh -> Dropout -> Linear(inner, labels).
template <class T>
struct classifier_tensors {
    T *dense_w = nullptr, *dense_b = nullptr, *out_w = nullptr, *out_b = nullptr;
};

inline constexpr std::size_t classifier_tensor_count = 4;

inline param_layout classifier_layout(int hidden, int inner, int labels) {
    param_layout l;
    l.add("classifier.dense.weight", {inner, hidden}, param_role::matrix);
    l.add("classifier.dense.bias", {inner}, param_role::bias);
    l.add("classifier.out.weight", {labels, inner}, param_role::matrix);
    l.add("classifier.out.bias", {labels}, param_role::bias);
    l.finalize();
    return l;
}

// The head's tensors are [first, first + 4) of `l` (classifier_layout itself, or a layout that appended it).
template <class T>
classifier_tensors<T> bind_classifier(const param_layout& l, T* base, std::size_t first = 0) {
    const auto& t = l.tensors();
    CRAM_CHECK(t.size() >= first + classifier_tensor_count, "bind_classifier: the layout has ", t.size(),
               " tensors, fewer than the head's from index ", first);
    return {base + t[first].offset, base + t[first + 1].offset, base + t[first + 2].offset,
            base + t[first + 3].offset};
}

// The layout of an encoder fine-tuned with a GLUE head `classifier_hidden` wide: the encoder's tensors
// (indices [0, k)), then the head's ([k, k + 4)), decayed ones first as always.
template <bert_config C>
param_layout bert_with_classifier_layout(int labels, int classifier_hidden) {
    param_layout l;
    l.append(bert_layout<C>());
    l.append(classifier_layout(C.hidden, classifier_hidden, labels));
    l.finalize();
    return l;
}

// Copies each tensor of `src` (laid out by `from`) to where the same name lives in `to`; every tensor of
// `from` must exist in `to` with the same shape.
template <class T>
void copy_tensors(const param_layout& from, const T* src, const param_layout& to, T* dst) {
    for (const auto& p : from.tensors()) {
        const param_info* q = to.find(p.name);
        CRAM_CHECK(q && q->shape == p.shape, "copy_tensors: tensor ", p.name, q ? " has another shape" : " is missing",
                   " in the destination layout");
        std::copy_n(src + p.offset, p.size, dst + q->offset);
    }
}

// Normal(0, std) by Box-Muller on a Philox stream per tensor: the same values for the same seed on any
// machine. Fills a host buffer laid out by `layout`.
// Only tensors [first, last) are written (last = 0: to the end); each tensor's stream is numbered from
// `first`, so a model initialises identically alone or as one part of a larger layout.
template <class T>
void init_parameters(T* host, const param_layout& layout, std::uint64_t seed, float init_std, int hidden,
                     int pad_id = -1, std::size_t first = 0, std::size_t last = 0) {
    if (last == 0) last = layout.tensors().size();
    for (std::size_t ti = first; ti < last; ++ti) {
        const auto& p = layout.tensors()[ti];
        T* dst = host + p.offset;
        switch (p.role) {
            case param_role::matrix:
            case param_role::embedding: {
                philox_stream rng(seed, static_cast<std::uint32_t>(ti - first), 0x1417u);
                for (std::size_t i = 0; i < p.size; i += 2) {
                    // Box-Muller: u1 in (0, 1] so the log is finite
                    const double u1 = (static_cast<double>(rng.next() >> 8) + 1.0) / 16777216.0;
                    const double u2 = static_cast<double>(rng.next() >> 8) / 16777216.0;
                    const double r = std::sqrt(-2.0 * std::log(u1)) * static_cast<double>(init_std);
                    dst[i] = T(r * std::cos(2.0 * 3.14159265358979323846 * u2));
                    if (i + 1 < p.size) dst[i + 1] = T(r * std::sin(2.0 * 3.14159265358979323846 * u2));
                }
                if (p.role == param_role::embedding && pad_id >= 0 && p.name == "embeddings.word.weight") {
                    CRAM_CHECK(pad_id < p.shape[0], "pad_id ", pad_id, " is not a token id of a ", p.shape[0],
                               "-token vocabulary");
                    for (std::int64_t i = 0; i < p.shape[1]; ++i) dst[pad_id * p.shape[1] + i] = T(0);
                }
                break;
            }
            case param_role::bias:
            case param_role::norm_bias:
                for (std::size_t i = 0; i < p.size; ++i) dst[i] = T(0);
                break;
            case param_role::norm_weight:
                for (std::size_t i = 0; i < p.size; ++i) dst[i] = T(1);
                break;
            case param_role::position_scale:
                dst[0] = T(1.0 / std::sqrt(static_cast<double>(hidden)));
                break;
        }
    }
}

}  // namespace cram
