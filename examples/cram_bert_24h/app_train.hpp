// The app's training entry shared by `train`, `run` and the CUDA side (cuda_train.cu): the settings the
// command line fills, and run_training<Backend>, which maps the preset and schedule names to the
// compile-time instantiations, opens the dataset and runs cram::train::train_mlm with progress, metrics,
// checkpoints and a final summary. Written once over the backend so the GPU build reuses it unchanged.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "cram/core/clock.hpp"
#include "cram/core/error.hpp"
#include "cram/data/mlm_source.hpp"
#include "cram/model/presets.hpp"
#include "cram/train/budget.hpp"
#include "cram/train/dataset_source.hpp"
#include "cram/train/schedule.hpp"
#include "cram/train/trainer.hpp"

namespace cram::app {

struct train_settings {
    std::string data, out;
    std::string budget = "24h";
    std::string preset = "crammed_bert";
    std::string device = "auto";
    std::string schedule = "budget-triangle2";
    int micro_batch = 0;          // 0: pick for the device
    int batch_target = 8192;
    double ramp_end = 0.6;
    float lr = 1e-3f;
    std::uint64_t seed = 0;
    bool resume = false;
    std::string checkpoint_every = "30m";
    int keep = 3;
    int threads = 0;
    std::int64_t max_steps = 0;
    int val_batches = 8;
    bool quiet = false;
    double peak_flops = 0;        // filled by the device side when it knows the peak
    double start_time = 0;        // steady_seconds() when the command began: start-up counts
};

inline const char* preset_names() { return "crammed_bert, bert_base, crammed_mini, crammed_tiny"; }

// The CPU micro-batch when none is given: enough sequences to keep the cores busy, small enough for RAM.
inline int default_cpu_micro_batch(const std::string& preset) {
    return preset == "crammed_tiny" ? 32 : preset == "crammed_mini" ? 16 : 8;
}

// Vocabulary size of a preset by name (for messages and for `run`, which prepares a matching dataset).
inline int preset_vocab(const std::string& preset) {
    namespace P = cram::presets;
    if (preset == "crammed_bert") return P::crammed_bert.vocab;
    if (preset == "bert_base") return P::bert_base.vocab;
    if (preset == "crammed_mini") return P::crammed_mini.vocab;
    if (preset == "crammed_tiny") return P::crammed_tiny.vocab;
    CRAM_THROW("unknown preset '", preset, "' (choose one of ", preset_names(), ")");
}

namespace detail {

inline void print_summary(const train::train_result& r, const train_settings& s) {
    std::printf("\n== training summary ==\n");
    std::printf("preset           %s\n", s.preset.c_str());
    std::printf("stopped by       %s after %s of a %s budget%s\n", r.stop_reason.c_str(),
                train::format_duration(r.elapsed).c_str(), train::format_duration(r.budget).c_str(),
                r.resumed ? (" (resumed at step " + std::to_string(r.resumed_from_step) + ")").c_str() : "");
    std::printf("optimizer steps  %lld (%lld micro-steps, %lld skipped)\n", static_cast<long long>(r.steps),
                static_cast<long long>(r.micro_steps), static_cast<long long>(r.skipped));
    std::printf("tokens seen      %lld (%s tokens/s in this process)\n", static_cast<long long>(r.tokens),
                train::si_rate(r.tokens_per_s).c_str());
    if (r.mfu >= 0) std::printf("MFU              %.1f%%\n", 100 * r.mfu);
    std::printf("MLM loss         first step %.4f -> last step %.4f\n", r.first_loss, r.final_loss);
    if (std::isfinite(r.val_loss)) std::printf("validation loss  %.4f\n", r.val_loss);
    if (!r.checkpoint.empty()) std::printf("checkpoint       %s\n", r.checkpoint.string().c_str());
    if (!r.metrics.empty()) std::printf("metrics          %s\n", r.metrics.string().c_str());
    if (!r.plot.empty()) std::printf("loss plot        %s\n", r.plot.string().c_str());
    std::fflush(stdout);
}

template <bert_config C, class Backend, class Schedule>
train::train_result run_with(const train_settings& s, typename Backend::context& ctx, train::budget_clock& clock,
                             const Schedule& schedule) {
    namespace fs = std::filesystem;
    const fs::path dir(s.data);
    const auto summary = data::read_dataset_summary(dir);
    const int seq = summary.value("seq_len", 0);
    CRAM_CHECK(seq > 0, (dir / data::dataset_summary_name).string(), " has no seq_len");
    train::dataset_source train_data(dir, "train", seq);
    CRAM_CHECK(train_data.vocab_size() == C.vocab, "dataset ", s.data, " has a vocabulary of ", train_data.vocab_size(),
               " tokens but preset ", s.preset, " needs ", C.vocab, ": re-run `cram_bert_24h prepare` with --vocab-size ",
               C.vocab, ", or choose the preset that matches (", preset_names(), ")");
    std::unique_ptr<train::dataset_source> val;
    if (s.val_batches > 0 && summary.contains("splits") && summary["splits"].contains("val") &&
        summary["splits"]["val"].value("sequences", std::int64_t{0}) > 0)
        val = std::make_unique<train::dataset_source>(dir, "val", seq);

    train::trainer_options o;
    o.ramp = {s.micro_batch, s.batch_target, s.ramp_end};
    o.adamw.lr = s.lr;
    o.seed = s.seed;
    o.out = s.out;
    o.checkpoint_every = train::parse_duration(s.checkpoint_every);
    o.keep = s.keep;
    o.resume = s.resume;
    o.max_steps = s.max_steps;
    o.quiet = s.quiet;
    o.val_batches = s.val_batches;
    o.peak_flops = s.peak_flops;
    o.run_config = {{"preset", s.preset}};
    // where the vocabulary lives, for `glue` on this run's checkpoints
    o.run_info = {{"data_dir", fs::absolute(fs::path(s.data)).lexically_normal().string()}};
    if (!s.quiet)
        std::fprintf(stderr,
                     "train: %s (%zu parameters) on %s, %lld training sequences of %d tokens, micro-batch %d, "
                     "batch ramp to %d sequences at p = %.2f, %s schedule, budget %s\n",
                     s.preset.c_str(), bert<C, Backend>::parameter_count(), Backend::name,
                     static_cast<long long>(train_data.num_sequences()), seq, s.micro_batch,
                     o.ramp.final_accumulation() * s.micro_batch, s.ramp_end, Schedule::name,
                     train::format_duration(clock.budget()).c_str());
    return train::train_mlm<C, Backend>(ctx, train_data, o, clock, schedule, val.get());
}

template <bert_config C, class Backend>
train::train_result run_schedule(const train_settings& s, typename Backend::context& ctx, train::budget_clock& clock) {
    if (s.schedule == "budget-triangle2") return run_with<C, Backend>(s, ctx, clock, train::budget_triangle2{});
    if (s.schedule == "one-cycle") return run_with<C, Backend>(s, ctx, clock, train::one_cycle{});
    if (s.schedule == "linear") return run_with<C, Backend>(s, ctx, clock, train::linear_decay{});
    if (s.schedule == "cosine") return run_with<C, Backend>(s, ctx, clock, train::cosine_decay{});
    CRAM_THROW("unknown --schedule '", s.schedule, "' (budget-triangle2, one-cycle, linear, cosine)");
}

}  // namespace detail

// Checks the settings that do not need the dataset; throws with what to change.
inline void validate_settings(const train_settings& s) {
    namespace fs = std::filesystem;
    CRAM_CHECK(!s.data.empty(), "--data is required: a directory written by `cram_bert_24h prepare`");
    if (!fs::is_directory(s.data))
        CRAM_THROW("--data ", s.data, ": no such directory (make one with `cram_bert_24h prepare --corpus FILE... --out ",
                   s.data, "`)");
    CRAM_CHECK(!s.out.empty(), "--out is required: the run directory for checkpoints and metrics");
    preset_vocab(s.preset);  // throws on an unknown name
    train::parse_duration(s.budget);
    train::parse_duration(s.checkpoint_every);
    CRAM_CHECK(s.micro_batch >= 0, "--micro-batch must be positive (or 0 to pick one), got ", s.micro_batch);
    CRAM_CHECK(s.batch_target > 0, "--batch-target must be positive, got ", s.batch_target);
    CRAM_CHECK(s.ramp_end >= 0 && s.ramp_end <= 1, "--ramp-end is a budget fraction in [0, 1], got ", s.ramp_end);
    CRAM_CHECK(s.lr > 0, "--lr must be positive, got ", s.lr);
    CRAM_CHECK(s.keep >= 1, "--keep must be at least 1, got ", s.keep);
}

// Trains with the given backend and context (made by the caller, after s.start_time). Returns the exit code.
template <class Backend>
int run_training(const train_settings& s, typename Backend::context& ctx) {
    validate_settings(s);
    CRAM_CHECK(s.micro_batch > 0, "internal: the micro-batch must be resolved before run_training");
    train::budget_clock clock(train::parse_duration(s.budget), cram::steady_seconds,
                              s.start_time > 0 ? s.start_time : cram::steady_seconds());
    namespace P = cram::presets;
    train::train_result r;
    if (s.preset == "crammed_bert") r = detail::run_schedule<P::crammed_bert, Backend>(s, ctx, clock);
    else if (s.preset == "bert_base") r = detail::run_schedule<P::bert_base, Backend>(s, ctx, clock);
    else if (s.preset == "crammed_mini") r = detail::run_schedule<P::crammed_mini, Backend>(s, ctx, clock);
    else if (s.preset == "crammed_tiny") r = detail::run_schedule<P::crammed_tiny, Backend>(s, ctx, clock);
    else CRAM_THROW("unknown preset '", s.preset, "' (choose one of ", preset_names(), ")");
    if (!s.quiet) detail::print_summary(r, s);
    return 0;
}

}  // namespace cram::app
