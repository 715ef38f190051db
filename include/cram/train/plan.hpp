// The budget-scaled recipe and the plan of a run (docs/training.md, "The budget-scaled recipe").
//
// The recipe's constants (a batch ramp to 8192 sequences, peak learning rate 1e-3) were tuned for 24 hours on
// the paper's GPU: about 10B tokens, 78M sequences of 128. recipe_scaling carries them to any budget: from the
// sequences a run will see (its measured rate times its budget) it derives the ramp's target, so that a short
// run gets enough optimizer steps and the reference run gets exactly the recipe. plan_run() simulates a run
// micro-step by micro-step with the trainer's own rules (the warm-up that measures the rate, the ramp, the
// end-of-budget cap on the accumulation, the checkpoint cadence), so `cram_bert_24h plan` says what `train` will
// do before it runs.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/train/schedule.hpp"

namespace cram::train {

// How the batch target and the peak learning rate follow the budget. The target grows as a power of the
// projected sequences S, anchored at the recipe's reference point:
//   T(S) = reference_target * (S / reference_sequences)^exponent,
// rounded to whole micro-batches and held in [micro_batch, reference_target]. The exponent and the
// learning-rate rule come from the CPU sweeps in docs/training.md; the anchor makes the 24-hour reference case
// give the recipe's 8192 exactly.
struct recipe_scaling {
    double reference_sequences = 10e9 / 128;  // CRAMMING.md: 24 h on the paper's GPU saw ~10B tokens
    int reference_target = 8192;              // the recipe's batch at the end of the ramp
    double exponent = 1.0;                    // measured: docs/training.md
    float reference_lr = 1e-3f;               // the recipe's peak learning rate
    // Peak learning rate for a target below the reference: reference_lr * (reference_target / T)^lr_exponent,
    // at most max_lr. lr_exponent = 0 keeps the recipe's rate.
    double lr_exponent = 0.2;  // measured: docs/training.md
    float max_lr = 4e-3f;      // the largest rate the sweeps tried

    int target_for(double projected_sequences, int micro_batch) const {
        CRAM_CHECK(micro_batch > 0, "the micro-batch must be positive, got ", micro_batch);
        const int cap = std::max(micro_batch, reference_target);
        if (!(projected_sequences > 0)) return micro_batch;
        const double raw = reference_target * std::pow(projected_sequences / reference_sequences, exponent);
        // to the nearest whole micro-batch: a run within half a micro-batch of the reference gets the reference
        const double whole = std::round(raw / micro_batch) * micro_batch;
        return int(std::clamp(whole, double(micro_batch), double(cap)));
    }
    float lr_for(int target) const {
        if (lr_exponent == 0.0 || target >= reference_target) return reference_lr;
        const double lr = reference_lr * std::pow(double(reference_target) / target, lr_exponent);
        return float(std::min<double>(lr, max_lr));
    }
};

// When the trainer has measured enough to derive the recipe: at the first step boundary after
// min_timed_micro_steps timed micro-steps (the first micro-step of a process is not timed: caches, allocation,
// kernel selection) and min(fraction * budget, max_seconds) of this process. Until then the batch is one
// micro-batch, which is where every ramp starts.
struct warmup_policy {
    int min_timed_micro_steps = 4;
    double fraction = 0.01;
    double max_seconds = 120;

    bool done(std::int64_t timed_micro_steps, double process_seconds, double budget_seconds) const {
        return timed_micro_steps >= min_timed_micro_steps &&
               process_seconds >= std::min(fraction * budget_seconds, max_seconds);
    }
};

// What the trainer derived after its warm-up (or what the user set), as recorded in metrics.jsonl and in
// every checkpoint, so a resume continues with the same values.
struct derived_recipe {
    int batch_target = 0;
    float lr = 0;
    bool target_derived = false, lr_derived = false;
    double sequences_per_s = 0;      // measured during the warm-up
    double projected_sequences = 0;  // sequences the whole budget will see at that rate
    double at_elapsed = 0;           // budget seconds spent when derived

    std::string reason(const recipe_scaling& r) const {
        std::string s;
        char buf[320];
        if (target_derived) {
            std::snprintf(buf, sizeof buf,
                          "batch target %d = 8192 x (%.3g / %.3g sequences)^%.2f in whole micro-batches "
                          "(the sequences the budget holds at %.4g sequences/s)",
                          batch_target, projected_sequences, r.reference_sequences, r.exponent, sequences_per_s);
            s += buf;
        }
        if (lr_derived) {
            std::snprintf(buf, sizeof buf, "%speak lr %.3g%s", s.empty() ? "" : "; ", double(lr),
                          lr == r.reference_lr ? " (the recipe's)" : " (scaled with the batch target)");
            s += buf;
        }
        return s;
    }
    nlohmann::json to_json() const {
        // the float rate in the fewest digits that read back as the same float (1e-3, not
        // 0.0010000000474974513): a resume must restore it bit for bit
        char text[32];
        for (int digits = 6; digits <= 9; ++digits) {
            std::snprintf(text, sizeof text, "%.*g", digits, double(lr));
            if (std::strtof(text, nullptr) == lr) break;
        }
        return {{"batch_target", batch_target},       {"lr", std::strtod(text, nullptr)},
                {"target_derived", target_derived},   {"lr_derived", lr_derived},
                {"sequences_per_s", sequences_per_s}, {"projected_sequences", projected_sequences},
                {"at_elapsed_s", at_elapsed}};
    }
};

// The recipe for a run that will see `projected_sequences`: each value the user did not set is derived.
inline derived_recipe derive_recipe(const recipe_scaling& r, double projected_sequences, int micro_batch,
                                    std::optional<int> user_target, std::optional<float> user_lr) {
    derived_recipe d;
    d.projected_sequences = projected_sequences;
    d.target_derived = !user_target;
    d.batch_target = user_target ? *user_target : r.target_for(projected_sequences, micro_batch);
    d.lr_derived = !user_lr;
    d.lr = user_lr ? *user_lr : r.lr_for(d.batch_target);
    return d;
}

// The recipe derived at the end of the warm-up: `seen` sequences so far, `rate` sequences/s measured, `remaining`
// budget seconds, at budget second `elapsed`. The trainer and plan_run both call this, so the plan derives what
// the run will.
inline derived_recipe derive_after_warmup(const recipe_scaling& r, double seen, double rate, double remaining,
                                          double elapsed, int micro_batch, std::optional<int> user_target,
                                          std::optional<float> user_lr) {
    derived_recipe d =
        derive_recipe(r, seen + rate * std::max(0.0, remaining), micro_batch, user_target, user_lr);
    d.sequences_per_s = rate;
    d.at_elapsed = elapsed;
    return d;
}

// The end-of-budget cap: the micro-batches a step may accumulate when `remaining` budget seconds are left at
// `seconds_per_micro_step`, so that the budget does not end inside an accumulation (whose work would then be
// a partial step). At least one; unlimited while the micro-step time is not yet known (<= 0).
inline int accumulation_that_fits(int wanted, double remaining, double seconds_per_micro_step) {
    if (!(seconds_per_micro_step > 0)) return wanted;
    const double fits = std::floor(remaining / seconds_per_micro_step + 1e-9);
    if (fits >= wanted) return wanted;
    return std::max(1, int(fits));
}

// ---------------------------------------------------------------------------------------------------------
// The plan: a run simulated at a given throughput.

struct plan_inputs {
    double budget_s = 0;
    double startup_s = 0;         // budget spent before the first micro-step (allocation, data, first kernels)
    double sequences_per_s = 0;   // training throughput (micro-steps, backward and optimizer included)
    int micro_batch = 0;
    int seq_len = 128;
    std::optional<int> batch_target;  // nullopt: derived after the warm-up
    std::optional<float> lr;          // nullopt: derived
    double ramp_end = 0.6;
    lr_schedule schedule{};
    double checkpoint_every_s = 0;  // <= 0: only the final checkpoint
    std::int64_t dataset_sequences = 0;
    recipe_scaling scaling{};
    warmup_policy warmup{};
};

struct plan_point {
    double progress = 0, elapsed_s = 0, lr = 0;
    int batch = 0;
};

struct run_plan {
    std::int64_t steps = 0, micro_steps = 0, sequences = 0, tokens = 0;
    double passes = 0;  // passes over the training split
    double seconds_per_micro_step = 0;
    derived_recipe recipe;                 // the target and lr the run will use
    std::vector<plan_point> curve;         // batch and lr at p = 0, 0.1, ..., 1
    std::vector<double> checkpoint_times;  // budget seconds of each checkpoint, the final one included
    bool ends_inside_warmup = false;       // the budget is too short for the warm-up: the batch stays one micro-batch

    nlohmann::json to_json() const {
        nlohmann::json c = nlohmann::json::array();
        for (const auto& p : curve)
            c.push_back({{"progress", p.progress}, {"elapsed_s", p.elapsed_s}, {"batch", p.batch}, {"lr", p.lr}});
        return {{"steps", steps},
                {"micro_steps", micro_steps},
                {"sequences", sequences},
                {"tokens", tokens},
                {"passes", passes},
                {"seconds_per_micro_step", seconds_per_micro_step},
                {"recipe", recipe.to_json()},
                {"curve", c},
                {"checkpoint_times_s", checkpoint_times},
                {"ends_inside_warmup", ends_inside_warmup}};
    }
};

// Simulates the trainer at a constant throughput: micro-steps of micro_batch / sequences_per_s seconds from
// startup_s on; one micro-batch per step during the warm-up (when the target is derived); then the ramp,
// capped at the end of the budget by accumulation_that_fits; the stop after the micro-step that reaches the
// budget. Checkpoints are written at the first step boundary after each checkpoint_every_s of budget, and at
// the end.
inline run_plan plan_run(const plan_inputs& in) {
    CRAM_CHECK(in.budget_s > 0, "plan: the budget must be positive");
    CRAM_CHECK(in.sequences_per_s > 0, "plan: the throughput must be positive");
    CRAM_CHECK(in.micro_batch > 0, "plan: the micro-batch must be positive");
    run_plan out;
    const double dt = in.micro_batch / in.sequences_per_s;
    out.seconds_per_micro_step = dt;
    CRAM_CHECK(in.budget_s / dt < 1e9, "plan: more than a billion micro-steps; check the throughput");
    const bool derive = !in.batch_target || !in.lr;
    bool derived = !derive;
    if (!derive) out.recipe = derive_recipe(in.scaling, 0, in.micro_batch, in.batch_target, in.lr);
    batch_ramp ramp{in.micro_batch, in.batch_target.value_or(in.micro_batch), in.ramp_end};
    float lr = in.lr ? *in.lr : in.scaling.lr_for(in.batch_target.value_or(in.micro_batch));

    double t = in.startup_s;
    double last_checkpoint = in.startup_s;  // the trainer starts its checkpoint cadence once allocated
    const double first_end = in.startup_s + dt;  // the first micro-step is not timed
    while (t < in.budget_s) {
        if (!derived && out.micro_steps > 0) {
            const std::int64_t timed = out.micro_steps - 1;
            if (in.warmup.done(timed, t, in.budget_s)) {  // the process clock includes start-up
                const double rate = timed * in.micro_batch / (t - first_end);
                out.recipe = derive_after_warmup(in.scaling, double(out.sequences), rate, in.budget_s - t, t,
                                                 in.micro_batch, in.batch_target, in.lr);
                ramp.target = out.recipe.batch_target;
                lr = out.recipe.lr;
                derived = true;
            }
        }
        const int wanted = derived ? ramp.accumulation(t / in.budget_s) : 1;
        const int acc = out.micro_steps > 1 ? accumulation_that_fits(wanted, in.budget_s - t, dt) : wanted;
        int done = 0;
        while (done < acc && t < in.budget_s) {
            t += dt;
            ++done;
        }
        out.micro_steps += done;
        out.sequences += std::int64_t(done) * in.micro_batch;
        ++out.steps;  // a step cut by the budget is applied too (scaled by what it accumulated)
        if (in.checkpoint_every_s > 0 && t < in.budget_s && t - last_checkpoint >= in.checkpoint_every_s) {
            out.checkpoint_times.push_back(t);
            last_checkpoint = t;
        }
    }
    out.checkpoint_times.push_back(t);
    if (!derived) {
        out.ends_inside_warmup = true;
        out.recipe = derive_recipe(in.scaling, double(out.sequences), in.micro_batch, in.batch_target, in.lr);
        out.recipe.batch_target = in.batch_target.value_or(in.micro_batch);
        ramp.target = out.recipe.batch_target;
        lr = out.recipe.lr;
    }
    out.tokens = out.sequences * in.seq_len;
    out.passes = in.dataset_sequences > 0 ? double(out.sequences) / double(in.dataset_sequences) : 0;
    for (int i = 0; i <= 10; ++i) {
        const double p = i / 10.0;
        // the sequences trained by p at the constant throughput (what a sequence-counting schedule reads)
        const double trained = std::min(double(out.sequences), std::max(0.0, p * in.budget_s - in.startup_s) / dt *
                                                                    in.micro_batch);
        out.curve.push_back({p, p * in.budget_s, double(lr) * in.schedule(p, trained), ramp.sequences(p)});
    }
    return out;
}

}  // namespace cram::train
