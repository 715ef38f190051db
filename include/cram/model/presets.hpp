// Named configurations. crammed_bert is CRAMMING.md's architecture exactly; bert_base is the
// original BERT-base (Devlin et al. 2019); the tiny ones keep tests and CPU demos fast.
#pragma once

#include "cram/model/config.hpp"

namespace cram::presets {

inline constexpr bert_config crammed_bert{
    .vocab = 32768, .hidden = 768, .heads = 12, .layers = 16, .intermediate = 3072, .max_seq = 128,
    .norm = norm_placement::pre, .ffn = ffn_kind::gelu_glu, .positions = position_kind::scaled_sinusoidal,
    .qkv_bias = false, .attn_out_bias = false, .ffn_bias = false, .decoder_bias = false,
    .token_types = 0, .embedding_norm = true, .final_norm = true, .head_transform = false,
    .tied_decoder = true, .sparse_prediction = true, .norm_eps = 1e-12f, .init_std = 0.02f};

inline constexpr bert_config bert_base{
    .vocab = 30522, .hidden = 768, .heads = 12, .layers = 12, .intermediate = 3072, .max_seq = 512,
    .norm = norm_placement::post, .ffn = ffn_kind::gelu, .positions = position_kind::learned,
    .qkv_bias = true, .attn_out_bias = true, .ffn_bias = true, .decoder_bias = true,
    .token_types = 2, .embedding_norm = true, .final_norm = false, .head_transform = true,
    .tied_decoder = true, .sparse_prediction = false, .norm_eps = 1e-12f, .init_std = 0.02f};

// The crammed architecture scaled down (4 layers, 256 wide): trains on a CPU in minutes.
inline constexpr bert_config crammed_mini{
    .vocab = 32768, .hidden = 256, .heads = 4, .layers = 4, .intermediate = 1024, .max_seq = 128,
    .norm = norm_placement::pre, .ffn = ffn_kind::gelu_glu, .positions = position_kind::scaled_sinusoidal,
    .classifier_hidden = 256};

// Smallest useful model for CPU demos on a small vocabulary.
inline constexpr bert_config crammed_tiny{
    .vocab = 8192, .hidden = 128, .heads = 2, .layers = 2, .intermediate = 512, .max_seq = 128,
    .norm = norm_placement::pre, .ffn = ffn_kind::gelu_glu, .positions = position_kind::scaled_sinusoidal,
    .classifier_hidden = 128};

// Test presets: a few dozen parameters per tensor so double-precision finite differences are cheap.
inline constexpr bert_config test_pre_glu{
    .vocab = 23, .hidden = 8, .heads = 2, .layers = 2, .intermediate = 12, .max_seq = 8,
    .norm = norm_placement::pre, .ffn = ffn_kind::gelu_glu, .positions = position_kind::scaled_sinusoidal,
    .classifier_hidden = 6};

inline constexpr bert_config test_post_biases{
    .vocab = 23, .hidden = 8, .heads = 2, .layers = 2, .intermediate = 12, .max_seq = 8,
    .norm = norm_placement::post, .ffn = ffn_kind::gelu, .positions = position_kind::learned,
    .qkv_bias = true, .attn_out_bias = true, .ffn_bias = true, .decoder_bias = true,
    .token_types = 2, .embedding_norm = true, .final_norm = false, .head_transform = true,
    .tied_decoder = false, .sparse_prediction = false, .classifier_hidden = 6};

}  // namespace cram::presets
