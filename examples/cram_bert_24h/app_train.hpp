// The app's training settings, shared by `train`, `run` and both backends, and the entry points that
// take them. Light on purpose (no trainer, no model): the command files include this; only cpu_train.cpp
// and cuda_train.cu include the trainer itself (app_train_run.hpp), so each backend compiles it once.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "app_presets.hpp"
#include "cram/core/error.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/dist/communicator.hpp"
#include "cram/train/budget.hpp"
#include "cram/train/grad_accumulation.hpp"
#include "cram/train/precision.hpp"
#include "cram/train/recipe.hpp"
#include "cram/train/schedule.hpp"

namespace cram::app {

// The recipe's values are the defaults of preset, schedule, batch_target, ramp_end and lr (empty or unset: the
// recipe's, which the *_setting functions below return; resolve_recipe fills in the preset, which many places
// read by name), and the only source of the optimizer's betas, eps, weight decay
// and clipping, the masking rate and the dropout (cram/train/recipe.hpp).
struct train_settings {
    std::string data, out;
    std::string budget = "24h";
    std::string recipe = "crammed";     // crammed, bert-original or izsak
    std::string preset;                 // empty: the recipe's
    std::string device = "auto";
    std::string schedule;               // empty: the recipe's (with the recipe's parameters)
    int micro_batch = 0;          // 0: pick for the device
    std::string batch_target;           // sequences, or auto: scaled to the budget (plan.hpp); empty: the recipe's
    std::optional<double> ramp_end;     // unset: the recipe's
    std::string lr;                     // peak learning rate, or auto; empty: the recipe's
    std::uint64_t seed = 0;
    bool resume = false;
    std::string checkpoint_every = "30m";
    int keep = 3;
    int threads = 0;
    std::int64_t max_steps = 0;
    int val_batches = 8;
    bool quiet = false;
    std::string precision = "auto";     // auto, bf16, fp16 or fp32 (cram/train/precision.hpp)
    double loss_scale = 65536;          // fp16: the dynamic loss scale's starting value
    std::string attention = "flash";    // GPU: flash (where the shape allows) or gemm, the reference path
    std::string gemm_algorithms = "timed";  // GPU: timed (fastest cuBLASLt candidate per shape) or heuristic
    std::string layernorm = "warp";          // GPU: warp (a warp per row) or block, the first kernels
    std::string decoder = "fused";           // GPU: fused (16-bit logits, loss in one pass) or chunked, the first path
    std::string residual = "same";           // GPU: the residual stream in the activations' type (same) or fp32
    std::string grad_accumulation = "auto";  // in-place, pairwise, or auto (pairwise with several ranks)
    std::string rank_timeout = "10m";        // data-parallel: how long a rank waits for the others
    dist::communicator* ranks = nullptr;     // data-parallel ranks (the MPI job), or null: one process
    double peak_flops = 0;        // filled by the device side when it knows the peak
    double start_time = 0;        // steady_seconds() when the command began: start-up counts
    // Tests only (CRAM_TEST_SECONDS_PER_MICRO_STEP): a simulated budget clock that advances this much per
    // micro-step instead of the wall clock, so interrupted and resumed runs can be compared bit for bit.
    double simulated_step_seconds = 0;
};

inline const train::pretraining_recipe& recipe_of(const train_settings& s) { return train::find_recipe(s.recipe); }

// The recipe's preset when the command line named none (an unknown recipe throws, listing the recipes).
inline void resolve_recipe(train_settings& s) {
    if (s.preset.empty()) s.preset = std::string(recipe_of(s).preset);
}

// The learning-rate schedule: the recipe's own (its parameters included) under its name, else the named
// shape with its default parameters.
inline train::lr_schedule schedule_setting(const train_settings& s) {
    const auto& r = recipe_of(s);
    if (s.schedule.empty() || s.schedule == r.schedule.name()) return r.schedule;
    return train::lr_schedule::parse(s.schedule);
}

inline double ramp_end_setting(const train_settings& s) { return s.ramp_end.value_or(recipe_of(s).ramp_end); }

// Vocabulary size of a preset by name (for messages and for `run`, which prepares a matching dataset).
inline int preset_vocab(const std::string& preset) { return find_preset(preset).config.vocab; }

// Seconds between periodic checkpoints: a duration, or 0 / "off" for none (only the final checkpoint).
inline double checkpoint_interval(const train_settings& s) {
    if (s.checkpoint_every == "0" || s.checkpoint_every == "off") return 0;
    return train::parse_duration(s.checkpoint_every);
}

// The test clock's step from CRAM_TEST_SECONDS_PER_MICRO_STEP (0 when unset): see simulated_step_seconds.
inline double simulated_step_seconds_from_env() {
    const char* v = std::getenv("CRAM_TEST_SECONDS_PER_MICRO_STEP");
    if (!v || !*v) return 0;
    char* end = nullptr;
    const double dt = std::strtod(v, &end);
    CRAM_CHECK(end && *end == '\0' && dt > 0 && dt < 1e6, "CRAM_TEST_SECONDS_PER_MICRO_STEP='", v,
               "' is not a positive number of seconds");
    std::fprintf(stderr, "train: test clock: %g s of budget per micro-step (CRAM_TEST_SECONDS_PER_MICRO_STEP)\n", dt);
    return dt;
}

// --batch-target: a number of sequences, or nullopt for auto (derived from the budget after the warm-up).
inline std::optional<int> batch_target_setting(const train_settings& s) {
    if (s.batch_target.empty()) return recipe_of(s).batch_target;
    if (s.batch_target == "auto") return std::nullopt;
    char* end = nullptr;
    const long v = std::strtol(s.batch_target.c_str(), &end, 10);
    CRAM_CHECK(!s.batch_target.empty() && end && *end == '\0' && v > 0 && v <= (1L << 24), "--batch-target '",
               s.batch_target, "' must be auto or a whole number of sequences from 1 to 16777216");
    return int(v);
}

// --grad-accumulation: in-place or pairwise, or nullopt for auto (pairwise with several ranks).
inline std::optional<train::grad_accumulation> grad_accumulation_setting(const train_settings& s) {
    if (s.grad_accumulation == "auto") return std::nullopt;
    return train::parse_grad_accumulation(s.grad_accumulation);
}

// --lr: a positive number, or nullopt for auto (the recipe's rate, scaled to the derived batch target).
inline std::optional<float> lr_setting(const train_settings& s) {
    if (s.lr.empty()) {
        const auto& r = recipe_of(s);
        return r.lr_from_budget ? std::nullopt : std::optional<float>(r.adamw.lr);
    }
    if (s.lr == "auto") return std::nullopt;
    char* end = nullptr;
    const double v = std::strtod(s.lr.c_str(), &end);
    CRAM_CHECK(!s.lr.empty() && end && *end == '\0' && v > 0 && v < 1, "--lr '", s.lr,
               "' must be auto or a positive learning rate below 1 (e.g. 1e-3)");
    return float(v);
}

// --residual: whether the GPU keeps the residual stream in fp32. Post-norm presets are refused on every device (the
// CPU's stream is fp32 anyway, but a run's settings should mean the same wherever it runs).
inline bool residual_setting(const train_settings& s) {
    CRAM_CHECK(s.residual == "same" || s.residual == "fp32", "--residual must be same or fp32, got '", s.residual, "'");
    CRAM_CHECK(s.residual != "fp32" || find_preset(s.preset).config.norm == norm_placement::pre,
               "--residual fp32: preset ", s.preset, " has post-norm blocks, whose residual stream is their norms' "
               "16-bit output; an fp32 stream is built for the pre-norm presets (", pre_norm_preset_names(), ")");
    return s.residual == "fp32";
}

// Checks the settings that do not need the dataset; throws with what to change.
inline void validate_settings(const train_settings& s) {
    namespace fs = std::filesystem;
    CRAM_CHECK(!s.data.empty(), "--data is required: a directory written by `cram_bert_24h prepare`");
    if (!fs::is_directory(s.data))
        CRAM_THROW("--data ", s.data, ": no such directory (make one with `cram_bert_24h prepare --corpus FILE... --out ",
                   s.data, "`)");
    CRAM_CHECK(!s.out.empty(), "--out is required: the run directory for checkpoints and metrics");
    recipe_of(s);           // throws on an unknown name
    CRAM_CHECK(!s.preset.empty(), "internal: the recipe's preset must be resolved (resolve_recipe) first");
    find_preset(s.preset);  // throws on an unknown name
    schedule_setting(s);
    train::parse_duration(s.budget);
    checkpoint_interval(s);
    CRAM_CHECK(s.threads >= 0 && s.threads <= cram::max_cpu_threads(), "--threads ", s.threads,
               " is out of range: 0 (all cores) up to ", cram::max_cpu_threads(), " (4x this machine's hardware threads)");
    CRAM_CHECK(s.micro_batch >= 0, "--micro-batch must be positive (or 0 to pick one), got ", s.micro_batch);
    batch_target_setting(s);
    CRAM_CHECK(ramp_end_setting(s) >= 0 && ramp_end_setting(s) <= 1, "--ramp-end is a budget fraction in [0, 1], got ",
               ramp_end_setting(s));
    lr_setting(s);
    CRAM_CHECK(s.keep >= 1, "--keep must be at least 1, got ", s.keep);
    grad_accumulation_setting(s);
    train::parse_duration(s.rank_timeout);
    if (s.precision != "auto") train::parse_precision(s.precision);
    residual_setting(s);
    CRAM_CHECK(std::isfinite(s.loss_scale) && s.loss_scale >= 1, "--loss-scale must be a number of at least 1, got ",
               s.loss_scale);
}

// Data-parallel training (app_ranks.cpp): joins the job when an MPI launcher started several ranks (null
// otherwise: one process), with `timeout` seconds as the longest wait for the other ranks. A build without
// MPI refuses a launch of several ranks, which would train N unrelated copies.
std::unique_ptr<dist::communicator> join_ranks(double timeout);

// Trains on the device the settings ask for (cpu_train.cpp); s.start_time must already be set. Returns
// the exit code: 0, or 128 + the signal that stopped the run (after its checkpoint was written).
int train_on_device(train_settings s);

// The GPU trainer (cuda_train.cu; no_cuda.cpp's stand-in throws). s.micro_batch is already resolved.
int cuda_train(const train_settings& s);

// `plan --measure`: training throughput in sequences per second on the device the settings ask for, timed
// over `steps` optimizer steps of one micro-batch after one untimed step, and the start-up seconds before the
// first micro-step (the CPU in cpu_train.cpp; the GPU in cuda_train.cu). s.micro_batch must be resolved.
struct measured_rate {
    double sequences_per_s = 0, startup_s = 0;
    int micro_steps = 0;
};
measured_rate measure_on_device(const train_settings& s, int steps);
measured_rate cuda_measure(const train_settings& s, int steps);

}  // namespace cram::app
