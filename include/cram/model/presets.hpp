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

// The model of Izsak et al. 2021 ("How to train BERT with an academic budget") as the cramming code's
// arch/crammed-large-izsak.yaml gives it: BERT-large's size (24 layers, 1024 wide, 16 heads, 4096
// intermediate) with pre-norm blocks, GELU, learned positions, biases on every linear and on the decoder,
// LayerNorm eps 1e-6, the MLM head's transform, a tied decoder and sparse prediction. One deviation: that
// config has no final LayerNorm (its head transform normalises the MLM path); cram's pre-norm blocks require
// one (validate_config), as Izsak et al.'s own pre-LN encoder has, so the GLUE head reads normalised states.
inline constexpr bert_config bert_large_izsak{
    .vocab = 32768, .hidden = 1024, .heads = 16, .layers = 24, .intermediate = 4096, .max_seq = 128,
    .norm = norm_placement::pre, .ffn = ffn_kind::gelu, .positions = position_kind::learned,
    .qkv_bias = true, .attn_out_bias = true, .ffn_bias = true, .decoder_bias = true,
    .token_types = 0, .embedding_norm = true, .final_norm = true, .head_transform = true,
    .tied_decoder = true, .sparse_prediction = true, .norm_eps = 1e-6f};

// The crammed architecture scaled down (4 layers, 256 wide): trains on a CPU in minutes.
inline constexpr bert_config crammed_mini = with(crammed_bert, [](bert_config& c) {
    c.hidden = 256; c.heads = 4; c.layers = 4; c.intermediate = 1024;
});

// Smallest useful model for CPU demos on a small vocabulary.
inline constexpr bert_config crammed_tiny = with(crammed_bert, [](bert_config& c) {
    c.vocab = 8192; c.hidden = 128; c.heads = 2; c.layers = 2; c.intermediate = 512;
});

// The compared architectures at crammed_tiny's size and vocabulary: the recipes `bert-original` and `izsak`
// (cram/train/recipe.hpp) end to end on a CPU in seconds, on the same dataset as crammed_tiny.
inline constexpr bert_config bert_tiny = with(bert_base, [](bert_config& c) {
    c.vocab = 8192; c.hidden = 128; c.heads = 2; c.layers = 2; c.intermediate = 512; c.max_seq = 128;
});
inline constexpr bert_config izsak_tiny = with(bert_large_izsak, [](bert_config& c) {
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
inline constexpr model_options bert_large_izsak_options{.classifier_hidden = 1024};  // the config's head: hidden wide
inline constexpr model_options bert_tiny_options{.classifier_hidden = 128};
inline constexpr model_options izsak_tiny_options{.classifier_hidden = 128};
inline constexpr model_options test_pre_glu_options{.classifier_hidden = 6};
inline constexpr model_options test_post_biases_options{.classifier_hidden = 6};

}  // namespace cram::presets
