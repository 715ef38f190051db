// The structural description of a BERT-style encoder, used as a template argument
// (C++20 class-type non-type template parameter): every size and architectural choice is fixed at
// compile time, so layers specialise with `if constexpr` and impossible configs fail to compile.
// What does not change the encoder's structure (init scale, padding id, GLUE head width) is a runtime
// model_options value instead, so it neither multiplies instantiations nor makes two types of one model.
#pragma once

#include <cstdint>

#include "cram/core/error.hpp"

namespace cram {

enum class norm_placement { pre, post };               // x + f(LN(x))  or  LN(x + f(x))
enum class ffn_kind { gelu, gelu_glu };                // Linear-GELU-Linear, or x * GELU(gate)
enum class position_kind { learned, scaled_sinusoidal };

struct bert_config {
    int vocab = 32768;
    int hidden = 768;
    int heads = 12;
    int layers = 16;
    int intermediate = 3072;  // width of the first FFN linear (for GELU-GLU: both halves together)
    int max_seq = 128;        // positions the model supports (learned table size / kernel bound)

    norm_placement norm = norm_placement::pre;
    ffn_kind ffn = ffn_kind::gelu_glu;
    position_kind positions = position_kind::scaled_sinusoidal;

    bool qkv_bias = false;
    bool attn_out_bias = false;
    bool ffn_bias = false;
    bool decoder_bias = false;

    int token_types = 0;          // 0: no token-type embedding
    bool embedding_norm = true;   // LayerNorm after embeddings
    bool final_norm = true;       // LayerNorm after the last block (pre-norm models need it)
    bool head_transform = false;  // MLM head Dense+GELU+LayerNorm before the decoder (original BERT)
    bool tied_decoder = true;     // decoder weight is the token embedding
    bool sparse_prediction = true;  // decoder and loss run only on masked positions

    float norm_eps = 1e-12f;

    constexpr int head_dim() const { return hidden / heads; }
    // Input width of the second FFN linear.
    constexpr int ffn_inner() const { return ffn == ffn_kind::gelu_glu ? intermediate / 2 : intermediate; }
    constexpr bool operator==(const bert_config&) const = default;
};

// Rejects impossible configurations at compile time with a message that says what to change.
template <bert_config C>
constexpr bool validate_config() {
    static_assert(C.vocab > 0 && C.hidden > 0 && C.heads > 0 && C.layers > 0 && C.intermediate > 0,
                  "cram: vocab, hidden, heads, layers and intermediate must all be positive");
    static_assert(C.hidden % C.heads == 0, "cram: hidden must be a multiple of heads (head_dim = hidden / heads)");
    static_assert(C.ffn != ffn_kind::gelu_glu || C.intermediate % 2 == 0,
                  "cram: a GELU-GLU FFN splits its first linear in two halves: intermediate must be even");
    static_assert(C.max_seq > 0 && C.max_seq <= 512, "cram: max_seq must be in [1, 512]");
    static_assert(C.token_types >= 0, "cram: token_types must be >= 0 (0 disables them)");
    static_assert(C.norm != norm_placement::pre || C.final_norm,
                  "cram: a pre-norm model needs final_norm, or the last block's output is never normalised");
    static_assert(C.norm_eps > 0.0f, "cram: norm_eps must be positive");
    return true;
}

// Runtime model choices that leave the encoder's parameter layout alone (presets.hpp names each
// preset's defaults): two runs differing only here share one compiled model and one checkpoint format.
struct model_options {
    float init_std = 0.02f;        // normal(0, init_std) for matrices and embeddings (encoder and GLUE head)
    int pad_id = 0;                // word-embedding row zeroed at init; the id GLUE batches are padded with
    int classifier_hidden = 1024;  // GLUE head: CLS -> Linear(hidden, this) -> Tanh -> Linear(this, labels)

    // Throws with what to change; `vocab` bounds pad_id.
    void validate(int vocab) const {
        CRAM_CHECK(init_std > 0.0f, "init_std must be positive, got ", init_std);
        CRAM_CHECK(pad_id >= 0 && pad_id < vocab, "pad_id ", pad_id, " is not a token id of a ", vocab,
                   "-token vocabulary");
        CRAM_CHECK(classifier_hidden > 0, "classifier_hidden must be positive, got ", classifier_hidden);
    }
    constexpr bool operator==(const model_options&) const = default;
};

}  // namespace cram
