// run_training<Backend>: the app's training run, written once over the backend (cpu_train.cpp and
// cuda_train.cu instantiate it, one translation unit each): maps the preset name to its config
// (with_preset) and the schedule name to its value, opens the dataset and runs cram::train::train_mlm
// with progress, metrics, checkpoints and a final summary. A stop signal ends it with a checkpoint and
// the exit code 128 + signal.
#pragma once

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "app_plan.hpp"
#include "app_presets.hpp"
#include "app_train.hpp"
#include "cram/core/error.hpp"
#include "cram/core/fp16.hpp"
#include "cram/core/signals.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/model/memory_plan.hpp"
#include "cram/data/mlm_source.hpp"
#include "cram/train/budget.hpp"
#include "cram/train/dataset_source.hpp"
#include "cram/train/schedule.hpp"
#include "cram/train/trainer.hpp"

namespace cram::app {

namespace detail {

// Whether this process prints: not with --quiet, and only rank 0 of a data-parallel job.
inline bool speaks(const train_settings& s) { return !s.quiet && (!s.ranks || s.ranks->root()); }

inline void print_summary(const train::train_result& r, const train_settings& s) {
    std::printf("\n== training summary ==\n");
    std::printf("preset           %s (recipe %s)\n", s.preset.c_str(), s.recipe.c_str());
    std::printf("stopped by       %s after %s of a %s budget%s\n", r.stop_reason.c_str(),
                train::format_duration(r.elapsed).c_str(), train::format_duration(r.budget).c_str(),
                r.resumed ? (" (resumed at step " + std::to_string(r.resumed_from_step) + ")").c_str() : "");
    std::printf("optimizer steps  %lld (%lld micro-steps, %lld skipped)\n", static_cast<long long>(r.steps),
                static_cast<long long>(r.micro_steps), static_cast<long long>(r.skipped));
    const int ranks = s.ranks ? s.ranks->size() : 1;
    std::printf("tokens seen      %lld (%s tokens/s %s)\n", static_cast<long long>(r.tokens),
                train::si_rate(r.tokens_per_s).c_str(),
                ranks > 1 ? ("over " + std::to_string(ranks) + " ranks").c_str() : "in this process");
    if (r.mfu >= 0) std::printf("MFU              %.1f%%\n", 100 * r.mfu);
    std::printf("MLM loss         first step %.4f -> last step %.4f\n", r.first_loss, r.final_loss);
    if (std::isfinite(r.val_loss)) std::printf("validation loss  %.4f\n", r.val_loss);
    if (!r.loss_scaler.is_null())
        std::printf("loss scale       %g at the end, %lld overflow steps skipped\n", r.loss_scaler["scale"].get<double>(),
                    static_cast<long long>(r.loss_scaler["overflows"].get<std::int64_t>()));
    if (!r.checkpoint.empty()) std::printf("checkpoint       %s\n", r.checkpoint.string().c_str());
    if (!r.metrics.empty()) std::printf("metrics          %s\n", r.metrics.string().c_str());
    if (!r.plot.empty()) std::printf("loss plot        %s\n", r.plot.string().c_str());
    if (r.signal)
        std::printf("interrupted      by %s: the checkpoint above holds every completed step; run the same command "
                    "with --resume to continue\n", signal_name(r.signal));
    std::fflush(stdout);
}

template <class Backend>
inline constexpr bool is_cpu = std::string_view(Backend::name) == "cpu";

// The throughput a plan assumes before anything was measured: the CPU tables, or the GPU's peak by name.
template <bert_config C, class Backend>
throughput planned_throughput(const train_settings& s, int seq) {
    if constexpr (is_cpu<Backend>)
        return estimate_cpu(s.preset, C, seq, cram::cpu_threads());
    if (s.peak_flops > 0) return estimate_gpu(gpu_class{"this GPU", s.peak_flops, 0}, C, seq);
    throughput t = estimate_gpu(find_gpu_class("a100"), C, seq);
    t.source = "estimated: this GPU's peak is not known by name, an A100's assumed (the warm-up measures it)";
    return t;
}

// The plan of this run at the planned throughput (printed, and recorded in metrics.jsonl).
template <bert_config C, class Backend>
plan_report start_plan(const train_settings& s, const std::string& dataset, std::int64_t sequences, int seq) {
    plan_context c;
    constexpr bool cpu = is_cpu<Backend>;
    c.device = Backend::name;
    c.threads = cpu ? cram::cpu_threads() : 0;
    c.gpu = !cpu;
    c.dataset = dataset;
    c.dataset_sequences = sequences;
    c.seq_len = seq;
    c.bytes_per_sequence = bytes_per_sequence<C, Backend>(seq);
    c.fixed_bytes = fixed_bytes<C, Backend>();
    throughput rate = planned_throughput<C, Backend>(s, seq);
    const int ranks = s.ranks ? s.ranks->size() : 1;
    if (ranks == 1) return make_plan(s, c, rate);
    // N data-parallel ranks: the job's unit is one micro-batch on every rank, at N times one rank's rate
    // (an upper bound: the gradient sums are not counted)
    train_settings job = s;
    job.micro_batch = s.micro_batch * ranks;
    rate.sequences_per_s *= ranks;
    rate.source += "; times " + std::to_string(ranks) + " data-parallel ranks, gradient sums not counted (the "
                   "micro-batch below is one on every rank)";
    return make_plan(job, c, rate);
}

// --precision on this backend: what the run computes in, and the trainer options that go with it. The CPU
// computes in fp32 and emulates fp16 (gradients through fp16, with the loss scaling a GPU's fp16 needs); a GPU
// backend computes in its act_t (bf16, or fp16 with dynamic loss scaling): cuda_train.cu picked it from the same
// setting and refused what the GPU cannot do (cuda_precision.hpp).
template <class Backend>
train::precision resolve_precision(const train_settings& s, train::trainer_options& o) {
    using train::precision;
    if constexpr (is_cpu<Backend>) {
        const precision p = s.precision == "auto" ? precision::fp32 : train::parse_precision(s.precision);
        CRAM_CHECK(p != precision::bf16, "--precision bf16: the CPU backend computes in fp32 (bf16 is the GPU's, sm_80 "
                   "and newer); use --precision fp32, or fp16 to emulate fp16 training's loss scaling");
        if (p == precision::fp16) {
            o.loss_scaling = train::loss_scaler_options{.init_scale = s.loss_scale};
            o.emulate_fp16_gradients = true;
        }
        return p;
    } else {
        if constexpr (std::is_same_v<typename Backend::act_t, cram::fp16>) {
            o.loss_scaling = train::loss_scaler_options{.init_scale = s.loss_scale};
            return precision::fp16;
        } else {
            return precision::bf16;
        }
    }
}

// The residual stream's type in words, for the log and state.json's run.residual.
template <class Backend>
std::string residual_words() {
    if constexpr (std::is_same_v<typename Backend::res_t, typename Backend::act_t>)
        return sizeof(typename Backend::act_t) == 4 ? "fp32 (as every activation)" : "16-bit (as the activations)";
    else
        return "fp32 (activations 16-bit)";
}

template <bert_config C, class Backend>
train::train_result run_with(const train_settings& s, typename Backend::context& ctx, train::budget_clock& clock,
                             const train::lr_schedule& schedule, train::trainer_observers observers) {
    namespace fs = std::filesystem;
    const fs::path dir(s.data);
    // held shared while training reads the shards: `prepare` into this directory refuses meanwhile
    const dir_lock dataset_lock = data::lock_dataset_for_reading(dir);
    const auto summary = data::read_dataset_summary(dir);
    const int seq = summary.value("seq_len", 0);
    CRAM_CHECK(seq > 0, (dir / data::dataset_summary_name).string(), " has no seq_len");
    const train::pretraining_recipe& recipe = recipe_of(s);
    ops::masking_options masking;
    masking.mask_fraction = recipe.mask_fraction;
    train::dataset_source train_data(dir, "train", seq, masking);
    CRAM_CHECK(train_data.vocab_size() == C.vocab, "dataset ", s.data, " has a vocabulary of ", train_data.vocab_size(),
               " tokens but preset ", s.preset, " needs ", C.vocab, ": re-run `cram_bert_24h prepare` with --vocab-size ",
               C.vocab, ", or choose the preset that matches (", preset_names_text(), ")");
    std::unique_ptr<train::dataset_source> val;
    if (s.val_batches > 0 && summary.contains("splits") && summary["splits"].contains("val") &&
        summary["splits"]["val"].value("sequences", std::int64_t{0}) > 0)
        val = std::make_unique<train::dataset_source>(dir, "val", seq, masking);

    train::trainer_options o;
    const auto target = batch_target_setting(s);
    const auto lr = lr_setting(s);
    o.ramp = {s.micro_batch, target.value_or(s.micro_batch), ramp_end_setting(s)};
    o.adamw = recipe.adamw;
    o.adamw.lr = lr.value_or(o.scaling.reference_lr);
    o.mask_fraction = recipe.mask_fraction;
    o.dropout = recipe.dropout;
    o.attention_dropout = recipe.attention_dropout;
    o.derive_batch_target = !target;
    o.derive_lr = !lr;
    o.seed = s.seed;
    o.model = find_preset(s.preset).options;  // the preset's init scale and padding id
    o.out = s.out;
    o.checkpoint_every = checkpoint_interval(s);
    o.keep = s.keep;
    o.resume = s.resume;
    o.max_steps = s.max_steps;
    o.quiet = s.quiet;
    o.val_batches = s.val_batches;
    o.peak_flops = s.peak_flops;
    o.comm = s.ranks;
    o.accumulation = grad_accumulation_setting(s);
    const train::precision precision = resolve_precision<Backend>(s, o);
    // the vocabulary's content is part of what a checkpoint must match (resume, glue): same size, other
    // tokens would silently mean other ids
    o.run_config = {{"preset", s.preset}, {"vocab_xxh64", train_data.source().vocab_xxh64()}};
    // recorded for the other recipes only, so that crammed checkpoints keep their fingerprints
    if (recipe.name != train::recipes::crammed.name)
        o.run_config.update({{"recipe", std::string(recipe.name)}, {"mask_fraction", recipe.mask_fraction}});
    const std::string attention = Backend::attention_kernels(ctx, seq, C.heads, C.head_dim());
    const std::string decoder = Backend::decoder_kernels(ctx, index_t(C.vocab));
    const std::string residual = residual_words<Backend>();
    // where the vocabulary lives, for `glue` on this run's checkpoints
    o.run_info = {{"data_dir", fs::absolute(fs::path(s.data)).lexically_normal().string()},
                  {"recipe", s.recipe},
                  {"precision", std::string(to_string(precision)) + (o.emulate_fp16_gradients ? " (emulated)" : "")},
                  {"attention", attention},
                  {"decoder", decoder},
                  {"residual", residual}};
    const plan_report plan = start_plan<C, Backend>(s, s.data, train_data.num_sequences(), seq);
    o.plan = plan.to_json();
    if (speaks(s)) {
        std::fprintf(stderr, "train: %s (%zu parameters) on %s, %lld training sequences of %d tokens\n", s.preset.c_str(),
                     bert<C, Backend>::parameter_count(), Backend::name,
                     static_cast<long long>(train_data.num_sequences()), seq);
        std::fprintf(stderr, "train: attention: %s\n", attention.c_str());
        std::fprintf(stderr, "train: MLM decoder: %s\n", decoder.c_str());
        std::fprintf(stderr, "train: residual stream: %s\n", residual.c_str());
        if (!s.resume) print_plan(stderr, plan);
        if (o.emulate_fp16_gradients)
            std::fprintf(stderr, "train: fp16 emulated on the CPU: the gradients pass through fp16 after every "
                         "micro-step, with dynamic loss scaling from %g (the matmuls still compute in fp32)\n", s.loss_scale);
    }
    return train::train_mlm<C, Backend>(ctx, train_data, o, clock, schedule, val.get(), std::move(observers));
}

// with_preset where bert<C, Backend> exists: a backend with a wider residual stream takes pre-norm presets only
// (residual_setting refused the others before), so the others are never instantiated with it.
template <class Backend, class Result, class F>
Result with_preset_for(const std::string& name, F&& f) {
    return with_preset(name, [&]<bert_config C>() -> Result {
        if constexpr (!bert_takes_residual_v<C, Backend>)
            CRAM_THROW("internal: preset ", name, " reached a backend whose residual stream it cannot take");
        else
            return f.template operator()<C>();
    });
}

// `plan --measure` for one preset (measure_rate below).
template <bert_config C, class Backend>
measured_rate measure_rate_with(const train_settings& s, typename Backend::context& ctx, int steps) {
    const double t0 = cram::steady_seconds();
    constexpr int seq = 128;
    std::mt19937 rng(1);
    std::uniform_int_distribution<std::int32_t> token(5, C.vocab - 1);
    std::vector<std::int32_t> tokens(std::size_t(s.micro_batch) * seq * std::size_t(steps + 1));
    for (auto& t : tokens) t = token(rng);
    ops::masking_options masking;
    masking.vocab = C.vocab;
    train::memory_source source(std::move(tokens), seq, masking);
    train::trainer_options o;
    o.ramp = {s.micro_batch, s.micro_batch, 0.6};
    o.model = find_preset(s.preset).options;
    resolve_precision<Backend>(s, o);  // fp16 times its loss scaling (and, on the CPU, the emulation) too
    o.quiet = true;
    o.val_batches = 0;
    o.max_steps = steps + 1;
    train::budget_clock clock(1e6, cram::steady_seconds, t0);
    double first = 0, last = 0;
    int n = 0;
    train::trainer_observers observers;
    observers.on_step = [&](const train::step_record&) {
        last = cram::steady_seconds();
        if (++n == 1) first = last;
    };
    train::train_mlm<C, Backend>(ctx, source, o, clock, {}, nullptr, std::move(observers));
    measured_rate m;
    m.micro_steps = n;
    const double per_step = (last - first) / std::max(1, n - 1);
    m.sequences_per_s = n > 1 ? double(n - 1) * s.micro_batch / (last - first) : 0;
    m.startup_s = std::max(0.0, first - t0 - per_step);
    return m;
}
}  // namespace detail

// `plan --measure`: a few optimizer steps of one micro-batch on random tokens, timed after the first (see
// measure_on_device in app_train.hpp).
template <class Backend>
measured_rate measure_rate(const train_settings& s, typename Backend::context& ctx, int steps) {
    CRAM_CHECK(steps >= 1 && s.micro_batch > 0, "internal: measure_rate needs steps and a micro-batch");
    return detail::with_preset_for<Backend, measured_rate>(
        s.preset, [&]<bert_config C>() { return detail::measure_rate_with<C, Backend>(s, ctx, steps); });
}

// Trains with the given backend and context (made by the caller, after s.start_time). Returns the exit code.
template <class Backend>
int run_training(const train_settings& s, typename Backend::context& ctx) {
    validate_settings(s);
    CRAM_CHECK(s.micro_batch > 0, "internal: the micro-batch must be resolved before run_training");
    const train::lr_schedule schedule = schedule_setting(s);
    // the test clock: budget time is micro-steps x a fixed step, so a resumed run replays exactly
    double simulated = 0;
    train::trainer_observers observers;
    train::time_source now = cram::steady_seconds;
    if (s.simulated_step_seconds > 0) {
        now = [&simulated] { return simulated; };
        // per micro-batch of the whole job: N data-parallel ranks run N at a time, so a run's clock (and its
        // schedule) does not depend on how many ranks ran it
        const double dt = s.simulated_step_seconds * (s.ranks ? s.ranks->size() : 1);
        observers.after_micro_step = [&simulated, dt] { simulated += dt; };
    }
    train::budget_clock clock(train::parse_duration(s.budget), now,
                              s.simulated_step_seconds > 0 ? 0.0 : (s.start_time > 0 ? s.start_time : cram::steady_seconds()));
    const auto r = detail::with_preset_for<Backend, train::train_result>(s.preset, [&]<bert_config C>() {
        return detail::run_with<C, Backend>(s, ctx, clock, schedule, std::move(observers));
    });
    if (detail::speaks(s)) detail::print_summary(r, s);
    if (r.signal && (!s.ranks || s.ranks->root())) {  // even with --quiet: how to continue
        std::fprintf(stderr, "train: stopped by %s; checkpoint %s written (continue with --resume)\n",
                     signal_name(r.signal), r.checkpoint.string().c_str());
    }
    return r.signal ? exit_code_for_signal(r.signal) : 0;
}

}  // namespace cram::app
