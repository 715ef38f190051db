// Named configurations. crammed_bert is CRAMMING.md's architecture exactly; bert_base is the
// original BERT-base (Devlin et al. 2019); the small ones, for tests and CPU demos, are stated as
// their base plus what differs. Each preset's runtime defaults are its <name>_options.
#pragma once

#include "cram/model/config.hpp"

namespace cram::presets {

// A configuration derived from `base`: `edit` changes a copy at compile time, so a derived preset
// names only what differs and silently follows any later fix to its base.
template <class Edit>
constexpr bert_config with(bert_config base, Edit edit) {
    edit(base);
    return base;
}

inline constexpr bert_config crammed_bert{
    .vocab = 32768, .hidden = 768, .heads = 12, .layers = 16, .intermediate = 3072, .max_seq = 128,
    .norm = norm_placement::pre, .ffn = ffn_kind::gelu_glu, .positions = position_kind::scaled_sinusoidal,
    .qkv_bias = false, .attn_out_bias = false, .ffn_bias = false, .decoder_bias = false,
    .token_types = 0, .embedding_norm = true, .final_norm = true, .head_transform = false,
    .tied_decoder = true, .sparse_prediction = true, .norm_eps = 1e-12f};

inline constexpr bert_config bert_base{
    .vocab = 30522, .hidden = 768, .heads = 12, .layers = 12, .intermediate = 3072, .max_seq = 512,
    .norm = norm_placement::post, .ffn = ffn_kind::gelu, .positions = position_kind::learned,
    .qkv_bias = true, .attn_out_bias = true, .ffn_bias = true, .decoder_bias = true,
    .token_types = 2, .embedding_norm = true, .final_norm = false, .head_transform = true,
    .tied_decoder = true, .sparse_prediction = false, .norm_eps = 1e-12f};

// The crammed architecture scaled down (4 layers, 256 wide): trains on a CPU in minutes.
inline constexpr bert_config crammed_mini = with(crammed_bert, [](bert_config& c) {
    c.hidden = 256; c.heads = 4; c.layers = 4; c.intermediate = 1024;
});

// Smallest useful model for CPU demos on a small vocabulary.
inline constexpr bert_config crammed_tiny = with(crammed_bert, [](bert_config& c) {
    c.vocab = 8192; c.hidden = 128; c.heads = 2; c.layers = 2; c.intermediate = 512;
});

// Test presets: a few dozen parameters per tensor so double-precision finite differences are cheap.
// One per architecture family: the crammed one, and the original BERT's with an untied decoder.
inline constexpr bert_config test_pre_glu = with(crammed_bert, [](bert_config& c) {
    c.vocab = 23; c.hidden = 8; c.heads = 2; c.layers = 2; c.intermediate = 12; c.max_seq = 8;
});

inline constexpr bert_config test_post_biases = with(bert_base, [](bert_config& c) {
    c.vocab = 23; c.hidden = 8; c.heads = 2; c.layers = 2; c.intermediate = 12; c.max_seq = 8;
    c.tied_decoder = false;
});

// Runtime defaults (model_options) of each preset: CRAMMING.md's 1024-wide GLUE head for the
// full-size models, a head as wide as the encoder for the small ones.
inline constexpr model_options crammed_bert_options{};
inline constexpr model_options bert_base_options{};
inline constexpr model_options crammed_mini_options{.classifier_hidden = 256};
inline constexpr model_options crammed_tiny_options{.classifier_hidden = 128};
inline constexpr model_options test_pre_glu_options{.classifier_hidden = 6};
inline constexpr model_options test_post_biases_options{.classifier_hidden = 6};

}  // namespace cram::presets
