// The presets cram_bert_24h offers, in one table, and with_preset: the one place where a preset name
// from the command line becomes a compile-time config. Adding a preset to the app is one row here;
// every command (train, run, glue, device) and both backends pick it up.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/model/config.hpp"
#include "cram/model/presets.hpp"

namespace cram::app {

struct app_preset {
    std::string_view name;
    bert_config config;     // the model's type
    model_options options;  // its runtime defaults (GLUE head width, init scale, padding id)
    int cpu_micro_batch;    // --micro-batch 0 on the CPU: the fastest measured (docs/training.md), and small
                            // enough that short budgets still get many optimizer steps
};

// Each row instantiates the trainer and the GLUE evaluation once per backend: keep the list short.
// The names are the recipes' (cram/train/recipe.hpp: preset, small_preset).
inline constexpr std::array<app_preset, 7> app_presets{{
    {"crammed_bert", presets::crammed_bert, presets::crammed_bert_options, 8},
    {"bert_base", presets::bert_base, presets::bert_base_options, 8},
    {"bert_large_izsak", presets::bert_large_izsak, presets::bert_large_izsak_options, 8},
    {"crammed_mini", presets::crammed_mini, presets::crammed_mini_options, 8},
    {"crammed_tiny", presets::crammed_tiny, presets::crammed_tiny_options, 8},
    {"bert_tiny", presets::bert_tiny, presets::bert_tiny_options, 8},
    {"izsak_tiny", presets::izsak_tiny, presets::izsak_tiny_options, 8},
}};

// The names in table order, for --help and CLI::IsMember.
inline std::vector<std::string> preset_names() {
    std::vector<std::string> names;
    for (const auto& p : app_presets) names.emplace_back(p.name);
    return names;
}
inline std::string preset_names_text() {
    std::string text;
    for (const auto& p : app_presets) text += (text.empty() ? "" : ", ") + std::string(p.name);
    return text;
}

// The pre-norm presets, the ones `train --residual fp32` takes.
inline std::string pre_norm_preset_names() {
    std::string text;
    for (const auto& p : app_presets)
        if (p.config.norm == norm_placement::pre) text += (text.empty() ? "" : ", ") + std::string(p.name);
    return text;
}

// The row of a preset name; an unknown name throws, listing the presets.
inline const app_preset& find_preset(std::string_view name) {
    for (const auto& p : app_presets)
        if (p.name == name) return p;
    CRAM_THROW("unknown preset '", std::string(name), "' (choose one of ", preset_names_text(), ")");
}

namespace detail {
template <class Result, std::size_t I, class F>
Result visit_preset(std::string_view name, F& f) {
    if constexpr (I < app_presets.size()) {
        if (name == app_presets[I].name) return f.template operator()<app_presets[I].config>();
        return visit_preset<Result, I + 1>(name, f);
    } else {
        find_preset(name);  // throws the message that lists the presets
        CRAM_THROW("internal: preset '", std::string(name), "' is in the table but was not visited");
    }
}
}  // namespace detail

// Calls f.template operator()<C>() with the config of the preset called `name` and returns its result;
// f is typically a lambda `[&]<bert_config C>() { ... }`. Every preset is instantiated, so all of them
// must return the same type. An unknown name throws, listing the presets.
template <class F>
decltype(auto) with_preset(std::string_view name, F&& f) {
    using result = decltype(f.template operator()<app_presets[0].config>());
    return detail::visit_preset<result, 0>(name, f);
}

}  // namespace cram::app
