// Named pretraining recipes: the crammed recipe (CRAMMING.md "Training recipe") and the two the paper
// compares it with under the same one-GPU budget, with the values of the original cramming code's configs
// (CRAMMING.md "Hardware and the compared recipes"):
//   crammed        budget-triangle2, AdamW 1e-3 (0.9, 0.98) eps 1e-12, clip 0.5, batch ramp to 8192 at
//                  p = 0.6 (the target and lr derived from the budget by default), 25% masking, no dropout.
//   bert-original  the original BERT: polynomial decay over 1M steps of 512 sequences after 10k warm-up steps,
//                  cut off at the budget; Adam 1e-4 (0.9, 0.999) eps 1e-8, weight decay 0.01, no clipping, a
//                  fixed batch of 512, 15% masking, dropout 0.1 (hidden and attention).
//   izsak          Izsak et al. 2021: a 6% warm-up then a linear decay over the budget; AdamW 2e-3 (0.9, 0.98)
//                  eps 1e-6, weight decay 0.01, no clipping, a fixed batch of 4096, 15% masking, dropout 0.1.
// Each is driven by the same budget clock (the stop is the budget's for all three). A recipe is a set of
// defaults: the app lets every value it exposes be overridden, and what ran is recorded in the checkpoint.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "cram/core/error.hpp"
#include "cram/train/optimizer.hpp"
#include "cram/train/schedule.hpp"

namespace cram::train {

struct pretraining_recipe {
    std::string_view name;
    std::string_view preset;          // the architecture it was published with (cram/model/presets.hpp)
    std::string_view small_preset;    // the same architecture at CPU-demo size
    lr_schedule schedule;
    adamw_options adamw;              // adamw.lr: the peak learning rate, unless derived from the budget
    std::optional<int> batch_target;  // sequences per step; nullopt: derived from the budget (plan.hpp)
    bool lr_from_budget = false;      // the peak lr scaled with the derived batch (plan.hpp's recipe_scaling)
    double ramp_end = 0.6;            // budget fraction where the batch reaches the target (0: from the start)
    float mask_fraction = 0.25f;      // positions masked per sequence
    float dropout = 0.0f;             // hidden dropout in pretraining (embeddings, attention and FFN outputs)
    float attention_dropout = 0.0f;   // dropout on the attention probabilities in pretraining
    std::string_view source;          // where the values come from, for --help and the docs
};

namespace recipes {

inline constexpr pretraining_recipe crammed{
    .name = "crammed", .preset = "crammed_bert", .small_preset = "crammed_tiny",
    .schedule = lr_schedule::budget_triangle2(),
    .adamw = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-12f, .weight_decay = 0.01f, .clip_norm = 0.5f},
    .batch_target = std::nullopt, .lr_from_budget = true, .ramp_end = 0.6, .mask_fraction = 0.25f,
    .dropout = 0.0f, .attention_dropout = 0.0f,
    .source = "Geiping & Goldstein 2022 (train/bert-o4.yaml), batch and lr scaled to the budget"};

inline constexpr pretraining_recipe bert_original{
    .name = "bert-original", .preset = "bert_base", .small_preset = "bert_tiny",
    .schedule = lr_schedule::polynomial_decay(10'000.0 * 512, 1'000'000.0 * 512, 1.0),
    .adamw = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f, .clip_norm = 0.0f},
    .batch_target = 512, .lr_from_budget = false, .ramp_end = 0.0, .mask_fraction = 0.15f,
    .dropout = 0.1f, .attention_dropout = 0.1f,
    .source = "Devlin et al. 2019 as the cramming code ran it (train/bert-original.yaml), stopped at the budget"};

inline constexpr pretraining_recipe izsak{
    .name = "izsak", .preset = "bert_large_izsak", .small_preset = "izsak_tiny",
    .schedule = lr_schedule::linear(0.06),
    .adamw = {.lr = 2e-3f, .beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-6f, .weight_decay = 0.01f, .clip_norm = 0.0f},
    .batch_target = 4096, .lr_from_budget = false, .ramp_end = 0.0, .mask_fraction = 0.15f,
    .dropout = 0.1f, .attention_dropout = 0.1f,
    .source = "Izsak et al. 2021 (train/bert-izsak.yaml, arch/crammed-large-izsak.yaml)"};

inline constexpr std::array<const pretraining_recipe*, 3> all{&crammed, &bert_original, &izsak};

}  // namespace recipes

inline std::string recipe_names_text() {
    std::string s;
    for (const auto* r : recipes::all) s += (s.empty() ? "" : ", ") + std::string(r->name);
    return s;
}

// The recipe called `name`; anything else throws, listing the names.
inline const pretraining_recipe& find_recipe(std::string_view name) {
    for (const auto* r : recipes::all)
        if (r->name == name) return *r;
    CRAM_THROW("unknown recipe '", std::string(name), "' (choose one of ", recipe_names_text(), ")");
}

}  // namespace cram::train
