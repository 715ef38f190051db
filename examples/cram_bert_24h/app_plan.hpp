// What a training run will do, before it runs: `cram_bert_24h plan`, and the plan `train` prints at its start
// and records in metrics.jsonl. The simulation is the library's (cram/train/plan.hpp); this file holds what
// only the app knows: where the throughput comes from (a measurement, or the tables below, each row marked
// measured or estimated), the memory a micro-batch takes, the predicted final loss of the fitted CPU runs, and
// the printing.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "app_presets.hpp"
#include "app_train.hpp"
#include "cram/core/error.hpp"
#include "cram/train/budget.hpp"
#include "cram/train/metrics.hpp"
#include "cram/train/plan.hpp"
#include "cram/train/schedule.hpp"

namespace cram::app {

// Where the tokens/s of a plan come from.
struct throughput {
    double sequences_per_s = 0;
    double startup_s = 0;
    bool measured = false;
    std::string source;  // in words, for the plan
};

// A GPU class for plans on a machine one does not have (--gpu). No cram run has been timed on any of them
// yet, so every rate is estimated: the dense bf16/fp16 tensor peak (fp32 accumulation) times the MFU of the
// paper's own run (24 h on an A6000, ~10B tokens of 0.623 GFLOP each: 72.1 TFLOP/s, 46.6% of its peak).
struct gpu_class {
    std::string_view name;
    double peak_flops;
    double memory_gib;
};
inline constexpr double assumed_gpu_mfu = 10e9 * 0.623e9 / 86400 / 154.8e12;  // 0.466
inline constexpr std::array<gpu_class, 6> gpu_classes{{
    {"h200", 989e12, 141},
    {"h100", 989e12, 80},
    {"a100", 312e12, 80},
    {"a6000", 154.8e12, 48},
    {"rtx4090", 165.2e12, 24},
    {"rtx2080ti", 53.8e12, 11},
}};

inline std::string gpu_class_names() {
    std::string s;
    for (const auto& g : gpu_classes) s += (s.empty() ? "" : ", ") + std::string(g.name);
    return s;
}
inline const gpu_class& find_gpu_class(std::string_view name) {
    for (const auto& g : gpu_classes)
        if (g.name == name) return g;
    CRAM_THROW("unknown GPU class '", std::string(name), "' (", gpu_class_names(), ")");
}

inline throughput estimate_gpu(const gpu_class& g, const bert_config& c, int seq) {
    throughput t;
    t.sequences_per_s = g.peak_flops * assumed_gpu_mfu / train::flops_per_token(c, seq) / seq;
    t.startup_s = 20;
    char buf[200];
    std::snprintf(buf, sizeof buf, "estimated: %s dense peak %.0f TFLOP/s x %.1f%% MFU, the paper's A6000 run's (not measured)",
                  std::string(g.name).c_str(), g.peak_flops / 1e12, 100 * assumed_gpu_mfu);
    t.source = buf;
    return t;
}

// CPU training throughput measured by this project on a 2-core x86-64 machine (the CI class; AMD EPYC Zen 4),
// micro-batch 8, two threads, whole `cram_bert_24h train` runs with OpenBLAS (docs/training.md): crammed_tiny
// the README demo's 5 minutes, crammed_mini 60 s on Wikipedia with the 32K vocabulary. The calibration of
// CPU estimates.
struct cpu_calibration {
    std::string_view preset;
    double tokens_per_s;
};
inline constexpr int calibration_threads = 2;
inline constexpr std::array<cpu_calibration, 2> cpu_calibrations{{
    {"crammed_tiny", 24800},
    {"crammed_mini", 3800},
}};

// A preset measured above scales with the threads; another scales crammed_mini's achieved FLOP/s by its
// FLOPs per token. Either way an estimate: `plan --measure` times this machine.
inline throughput estimate_cpu(std::string_view preset, const bert_config& c, int seq, int threads) {
    throughput t;
    t.startup_s = 1;
    const double scale = double(threads) / calibration_threads;
    char buf[260];
    for (const auto& k : cpu_calibrations)
        if (k.preset == preset) {
            t.sequences_per_s = k.tokens_per_s * scale / seq;
            std::snprintf(buf, sizeof buf,
                          "estimated: %.0f tokens/s measured on a 2-core x86-64 machine, scaled to %d threads "
                          "(--measure times this one)",
                          k.tokens_per_s, threads);
            t.source = buf;
            return t;
        }
    const auto& mini = cpu_calibrations[1];
    const double achieved = mini.tokens_per_s * train::flops_per_token(find_preset(mini.preset).config, 128);
    t.sequences_per_s = achieved * scale / train::flops_per_token(c, seq) / seq;
    std::snprintf(buf, sizeof buf,
                  "estimated: crammed_mini's measured %.1f GFLOP/s on a 2-core x86-64 machine, scaled to %d threads "
                  "and this preset's FLOPs per token (--measure times this machine)",
                  achieved / 1e9, threads);
    t.source = buf;
    return t;
}

// Final validation loss of the budget-scaled recipe as a function of training tokens D, fitted to CPU runs
// (L = E + A D^-alpha; scripts/recipe/report.py, docs/training.md). It holds for the data it was fitted on
// (English Wikipedia, prepared with the preset's vocabulary) and inside the fitted token range.
struct loss_fit {
    std::string_view preset;
    double E, A, alpha;
    double tokens_min, tokens_max;
    double error;  // the largest absolute error on runs the fit did not see
};
// From benchmarks/results/recipe-sweep/loss_fit.json: fitted on the 0.5, 1, 3 and 10-minute runs, held out the 2
// and 5-minute ones (errors 0.011 and 0.037); the error bar is the larger of that and the leave-one-out RMSE
// (0.048), rounded up.
inline constexpr std::array<loss_fit, 1> loss_fits{{
    {"crammed_tiny", 5.9749, 19.78, 0.3008, 209'920, 4'179'968, 0.05},
}};

struct loss_prediction {
    double loss = NAN, error = NAN;
    bool in_range = false;
    std::string note;
};
inline loss_prediction predict_loss(std::string_view preset, double tokens) {
    loss_prediction p;
    for (const auto& f : loss_fits)
        if (f.preset == preset) {
            p.loss = f.E + f.A * std::pow(tokens, -f.alpha);
            p.error = f.error;
            p.in_range = tokens >= f.tokens_min * 0.999 && tokens <= f.tokens_max * 1.001;
            char buf[200];
            std::snprintf(buf, sizeof buf, "fit to %s runs on Wikipedia, %.3gM to %.3gM tokens", std::string(preset).c_str(),
                          f.tokens_min / 1e6, f.tokens_max / 1e6);
            p.note = p.in_range ? buf : std::string("outside the measured range (") + buf + ")";
            return p;
        }
    p.note = "no measured runs for this preset";
    return p;
}

// Everything `plan` prints and writes, and `train` records.
struct plan_report {
    std::string preset, device, recipe = "crammed";
    int threads = 0;
    double budget_s = 0;
    std::string dataset;
    std::int64_t dataset_sequences = 0;
    int seq_len = 128;
    throughput rate;
    double flops_per_token = 0;
    std::size_t bytes_per_sequence = 0, fixed_bytes = 0;
    std::string memory_note;
    bool gpu = false;
    train::plan_inputs inputs;
    train::run_plan run;
    loss_prediction loss;

    nlohmann::json to_json() const {
        nlohmann::json j{{"preset", preset},
                         {"recipe", recipe},
                         {"device", device},
                         {"budget_s", budget_s},
                         {"dataset", dataset},
                         {"dataset_sequences", dataset_sequences},
                         {"seq_len", seq_len},
                         {"tokens_per_s", rate.sequences_per_s * seq_len},
                         {"throughput_source", rate.source},
                         {"throughput_measured", rate.measured},
                         {"startup_s", rate.startup_s},
                         {"micro_batch", inputs.micro_batch},
                         {"memory_bytes_per_sequence", bytes_per_sequence},
                         {"memory_bytes_per_micro_batch", bytes_per_sequence * std::size_t(inputs.micro_batch)},
                         {"memory_bytes_fixed", fixed_bytes},
                         {"memory_note", memory_note},
                         {"gpu_hours", gpu ? budget_s / 3600 : 0.0},
                         {"flops_per_token", flops_per_token},
                         {"schedule", std::string(inputs.schedule.name())},
                         {"ramp_end", inputs.ramp_end},
                         {"checkpoint_every_s", inputs.checkpoint_every_s},
                         {"plan", run.to_json()}};
        if (threads > 0) j["threads"] = threads;
        if (std::isfinite(loss.loss))
            j["predicted_loss"] = {{"loss", loss.loss}, {"error", loss.error}, {"in_range", loss.in_range}, {"note", loss.note}};
        else
            j["predicted_loss"] = {{"note", loss.note}};
        return j;
    }
};

namespace detail {
inline std::string thousands(std::int64_t v) {
    const std::string digits = std::to_string(v < 0 ? -v : v);
    std::string s = v < 0 ? "-" : "";
    for (std::size_t i = 0; i < digits.size(); ++i) {  // built forwards: GCC 12 warns (-Wrestrict) on insert()
        if (i > 0 && (digits.size() - i) % 3 == 0) s += ',';
        s += digits[i];
    }
    return s;
}
inline std::string mib(double bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, bytes >= 1 << 30 ? "%.1f GiB" : "%.1f MiB", bytes >= 1 << 30 ? bytes / (1 << 30) : bytes / (1 << 20));
    return buf;
}
}  // namespace detail

// The plan of a run with settings `s` on a device at `rate`: the library's simulation plus what the app knows.
struct plan_context {
    std::string device;  // "cpu", "cuda (NVIDIA H200)", "gpu class h200"
    int threads = 0;     // CPU threads (0: not a CPU plan)
    bool gpu = false;
    std::string dataset;
    std::int64_t dataset_sequences = 0;
    int seq_len = 128;
    std::size_t bytes_per_sequence = 0, fixed_bytes = 0;
    std::string memory_note;
};
inline plan_report make_plan(const train_settings& s, const plan_context& c, const throughput& rate) {
    plan_report r;
    r.preset = s.preset;
    r.device = c.device;
    r.threads = c.threads;
    r.gpu = c.gpu;
    r.budget_s = train::parse_duration(s.budget);
    r.dataset = c.dataset;
    r.dataset_sequences = c.dataset_sequences;
    r.seq_len = c.seq_len;
    r.rate = rate;
    r.flops_per_token = train::flops_per_token(find_preset(s.preset).config, c.seq_len, recipe_of(s).mask_fraction);
    r.bytes_per_sequence = c.bytes_per_sequence;
    r.fixed_bytes = c.fixed_bytes;
    r.memory_note = c.memory_note;
    auto& in = r.inputs;
    in.budget_s = r.budget_s;
    in.startup_s = rate.startup_s;
    in.sequences_per_s = rate.sequences_per_s;
    in.micro_batch = s.micro_batch;
    in.seq_len = c.seq_len;
    in.batch_target = batch_target_setting(s);
    in.lr = lr_setting(s);
    in.ramp_end = ramp_end_setting(s);
    in.schedule = schedule_setting(s);
    in.checkpoint_every_s = checkpoint_interval(s);
    in.dataset_sequences = c.dataset_sequences;
    r.run = train::plan_run(in);
    r.recipe = s.recipe;
    if (s.recipe == train::recipes::crammed.name)
        r.loss = predict_loss(s.preset, double(r.run.tokens));
    else
        r.loss.note = "the loss fits are of the crammed recipe; none for " + s.recipe;
    return r;
}

// The plan as people read it.
inline void print_plan(std::FILE* f, const plan_report& r) {
    using detail::thousands;
    const auto& p = r.run;
    const auto& rc = p.recipe;
    std::fprintf(f, "plan: %s (recipe %s) on %s%s, budget %s\n", r.preset.c_str(), r.recipe.c_str(), r.device.c_str(),
                 r.threads > 0 ? (" (" + std::to_string(r.threads) + " threads)").c_str() : "",
                 train::format_duration(r.budget_s).c_str());
    std::fprintf(f, "  throughput      %s tokens/s (%s)\n", train::si_rate(r.rate.sequences_per_s * r.seq_len).c_str(),
                 r.rate.source.c_str());
    std::fprintf(f, "  micro-batch     %d sequences of %d tokens; memory %s per sequence, %s per micro-batch + %s fixed%s\n",
                 r.inputs.micro_batch, r.seq_len, detail::mib(double(r.bytes_per_sequence)).c_str(),
                 detail::mib(double(r.bytes_per_sequence) * r.inputs.micro_batch).c_str(),
                 detail::mib(double(r.fixed_bytes)).c_str(), r.memory_note.empty() ? "" : (" (" + r.memory_note + ")").c_str());
    std::fprintf(f, "  batch target    %d sequences%s\n", rc.batch_target,
                 rc.target_derived ? (p.ends_inside_warmup ? " (auto: the budget ends inside the warm-up, so one micro-batch)"
                                                           : " (auto: derived after the warm-up, see below)")
                                   : " (set)");
    std::fprintf(f, "  peak lr         %.3g%s\n", double(rc.lr), rc.lr_derived ? " (auto)" : " (set)");
    if (rc.target_derived || rc.lr_derived)
        std::fprintf(f, "  derivation      %s\n", rc.reason(r.inputs.scaling).c_str());
    std::fprintf(f, "  totals          %s sequences, %s tokens, %s optimizer steps, %s micro-steps\n",
                 thousands(p.sequences).c_str(), thousands(p.tokens).c_str(), thousands(p.steps).c_str(),
                 thousands(p.micro_steps).c_str());
    if (r.dataset_sequences > 0) {
        std::fprintf(f, "  data            %.2f passes over %s training sequences (%s)\n", p.passes,
                     thousands(r.dataset_sequences).c_str(), r.dataset.c_str());
        if (p.passes > 1)
            std::fprintf(f, "  warning         the run repeats its data: each sequence is seen %.1f times on average "
                            "(%.0f%% of the tokens are repeats); a larger corpus would do better\n",
                         p.passes, 100 * (1 - 1 / p.passes));
    } else {
        std::fprintf(f, "  data            no --data given: passes over the dataset unknown\n");
    }
    std::string cks;
    for (std::size_t i = 0; i < p.checkpoint_times.size(); ++i) {
        if (i == 8 && p.checkpoint_times.size() > 10) {
            cks += ", ... (" + std::to_string(p.checkpoint_times.size() - 9) + " more)";
            i = p.checkpoint_times.size() - 1;
        }
        cks += (cks.empty() ? "" : ", ") + train::format_duration(p.checkpoint_times[i]);
    }
    std::fprintf(f, "  checkpoints     %s (the last is the final one)\n", cks.c_str());
    std::fprintf(f, "  GPU-hours       %.2f\n", r.gpu ? r.budget_s / 3600 : 0.0);
    if (std::isfinite(r.loss.loss))
        std::fprintf(f, "  predicted loss  %.2f +- %.2f (validation MLM loss; %s)\n", r.loss.loss, r.loss.error,
                     r.loss.note.c_str());
    else
        std::fprintf(f, "  predicted loss  none: %s\n", r.loss.note.c_str());
    std::fprintf(f, "  schedule        %s, batch ramp to the target at p = %.2f\n",
                 std::string(r.inputs.schedule.name()).c_str(), r.inputs.ramp_end);
    std::fprintf(f, "     p   elapsed   batch        lr\n");
    for (const auto& c : p.curve)
        std::fprintf(f, "  %4.1f  %8s  %6d  %8.2e\n", c.progress, train::format_duration(c.elapsed_s).c_str(), c.batch, c.lr);
}

}  // namespace cram::app
