// The budgeted MLM trainer (CRAMMING.md "Training recipe"): one readable loop over any backend.
// Budget progress p = elapsed / budget (start-up included) sets the batch (gradient accumulation in
// whole micro-batches up to the target at p = ramp_end) and the learning rate (an lr_schedule value);
// the stop is checked after every micro-step. AdamW with global-norm clipping from one pass over the
// flat gradient buffer; non-finite steps are skipped and logged, repeated ones stop the run; atomic
// checkpoints every N minutes and at the end; a resume restores parameters, moments, data position,
// step and the budget clock, so on the CPU it continues with exactly the losses of an unbroken run.
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/model/bert.hpp"
#include "cram/model/config.hpp"
#include "cram/train/batch_source.hpp"
#include "cram/train/budget.hpp"
#include "cram/train/checkpoint.hpp"
#include "cram/train/metrics.hpp"
#include "cram/train/optimizer.hpp"
#include "cram/train/schedule.hpp"

namespace cram::train {

struct trainer_options {
    batch_ramp ramp{};             // micro-batch, target batch, ramp end
    adamw_options adamw{};         // the recipe's AdamW (lr is the peak the schedule scales)
    std::uint64_t seed = 0;        // parameter init, masking, dropout
    std::filesystem::path out;     // run directory (checkpoints/, metrics.jsonl, loss.svg); empty: no files
    double checkpoint_every = 30 * 60;  // seconds of budget between periodic checkpoints; <= 0: end only
    int keep = 3;                  // checkpoints kept
    bool resume = false;           // continue from the newest checkpoint under out/checkpoints
    std::int64_t max_steps = 0;    // stop after this many optimizer steps (0: the budget alone decides)
    int max_bad_steps = 5;         // consecutive non-finite steps that stop the run
    double peak_flops = 0;         // device peak for MFU (0: unknown, not shown)
    bool quiet = false;            // no progress lines
    double plain_progress_every = 10;  // seconds between plain progress lines when stderr is not a terminal
    int val_batches = 8;           // micro-batches of the validation split evaluated at the end (0: none)
    nlohmann::json run_config = nlohmann::json::object();  // preset, dataset, ...: part of the fingerprint
    nlohmann::json run_info = nlohmann::json::object();    // recorded in state.json as "run", not fingerprinted
                                                           // (e.g. the dataset path: a moved dataset may resume)

    // test hooks: called after every micro-step (a deterministic clock advances here), with each step's
    // record, and with the host-visible gradient buffer before the norm (fault injection; CPU only)
    std::function<void()> after_micro_step;
    std::function<void(const step_record&)> on_step;
    std::function<void(float* grads, std::size_t n, std::int64_t step)> corrupt_gradients;
};

struct train_result {
    std::int64_t steps = 0, micro_steps = 0, skipped = 0, sequences = 0, tokens = 0, data_position = 0;
    double elapsed = 0, budget = 0, this_process = 0, tokens_per_s = 0, mfu = -1;
    double first_loss = NAN, final_loss = NAN, val_loss = NAN;
    std::string stop_reason;  // "budget", "max_steps"
    std::filesystem::path checkpoint, metrics, plot;
    bool resumed = false;
    std::int64_t resumed_from_step = 0;

    nlohmann::json to_json() const {
        auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
        nlohmann::json j{{"event", "summary"},  {"steps", steps},           {"micro_steps", micro_steps},
                         {"skipped_steps", skipped}, {"sequences", sequences}, {"tokens", tokens},
                         {"elapsed_s", elapsed}, {"budget_s", budget},        {"this_process_s", this_process},
                         {"tokens_per_s", tokens_per_s}, {"first_loss", num(first_loss)},
                         {"final_loss", num(final_loss)}, {"val_loss", num(val_loss)},
                         {"stop_reason", stop_reason}, {"checkpoint", checkpoint.string()},
                         {"resumed", resumed},   {"resumed_from_step", resumed_from_step}};
        if (mfu >= 0) j["mfu"] = mfu;
        return j;
    }
};

// The configuration a checkpoint must match to be resumed (fingerprinted). Model structure, recipe and
// data identity; not the run directory, max_steps, threads or logging.
template <bert_config C>
nlohmann::json training_config(const trainer_options& o, const lr_schedule& schedule, double budget, int seq,
                               const batch_source& data) {
    nlohmann::json model{{"vocab", C.vocab},     {"hidden", C.hidden},         {"heads", C.heads},
                         {"layers", C.layers},   {"intermediate", C.intermediate}, {"max_seq", C.max_seq},
                         {"norm", C.norm == norm_placement::pre ? "pre" : "post"},
                         {"ffn", C.ffn == ffn_kind::gelu_glu ? "gelu_glu" : "gelu"},
                         {"positions", C.positions == position_kind::learned ? "learned" : "scaled_sinusoidal"},
                         {"biases", {C.qkv_bias, C.attn_out_bias, C.ffn_bias, C.decoder_bias}},
                         {"token_types", C.token_types}, {"head_transform", C.head_transform},
                         {"tied_decoder", C.tied_decoder}, {"sparse_prediction", C.sparse_prediction}};
    // only the parameters the shape reads, under the keys the policy types used: old fingerprints still match
    nlohmann::json sched{{"name", std::string(schedule.name())}};
    for (const auto& [key, value] : schedule.parameters()) sched[key] = value;
    nlohmann::json j{{"model", model},
                     {"seq_len", seq},
                     {"budget_s", budget},
                     {"micro_batch", o.ramp.micro_batch},
                     {"batch_target", o.ramp.target},
                     {"ramp_end", o.ramp.ramp_end},
                     {"schedule", sched},
                     {"adamw",
                      {{"lr", o.adamw.lr},
                       {"beta1", o.adamw.beta1},
                       {"beta2", o.adamw.beta2},
                       {"eps", o.adamw.eps},
                       {"weight_decay", o.adamw.weight_decay},
                       {"clip_norm", o.adamw.clip_norm}}},
                     {"seed", o.seed},
                     {"data", {{"sequences", data.num_sequences()}, {"vocab_size", data.vocab_size()}}}};
    for (const auto& [k, v] : o.run_config.items()) j[k] = v;
    return j;
}

namespace detail {
inline bool is_out_of_memory(const std::exception& e) {
    const std::string w = e.what();
    return w.find("out of memory") != std::string::npos || w.find("cudaErrorMemoryAllocation") != std::string::npos;
}
}  // namespace detail

// Trains cram::bert<C, Backend> on `data` until the clock's budget is spent (or max_steps). The clock is
// the caller's, started before anything else so that start-up counts against the budget.
template <bert_config C, class Backend>
train_result train_mlm(typename Backend::context& ctx, batch_source& data, const trainer_options& o,
                       budget_clock& clock, const lr_schedule& schedule = {}, batch_source* val = nullptr) {
    using model_t = bert<C, Backend>;
    using param_t = typename Backend::param_t;
    namespace fs = std::filesystem;
    o.ramp.validate();
    const int micro = o.ramp.micro_batch;
    const int seq = data.seq_len();
    CRAM_CHECK(seq > 0 && seq <= C.max_seq, "the dataset's sequences have ", seq, " tokens but this model supports at most ",
               C.max_seq, " (re-run prepare with --seq-len ", C.max_seq, ")");
    CRAM_CHECK(data.vocab_size() == C.vocab, "the dataset's vocabulary has ", data.vocab_size(),
               " tokens but the model needs exactly ", C.vocab,
               " (re-run prepare with --vocab-size ", C.vocab, ", or pick a preset with a vocabulary of ",
               data.vocab_size(), ")");
    CRAM_CHECK(o.keep >= 1, "--keep must be at least 1, got ", o.keep);
    CRAM_CHECK(o.max_bad_steps >= 1, "max_bad_steps must be at least 1");

    progress_line progress(o.quiet, o.plain_progress_every);
    const nlohmann::json config = training_config<C>(o, schedule, clock.budget(), seq, data);
    const std::string fingerprint = config_fingerprint(config);
    const fs::path ckpt_dir = o.out.empty() ? fs::path() : o.out / "checkpoints";

    // ---- model, optimizer, device batch buffers (allocation counts against the budget) ----------
    std::unique_ptr<model_t> model;
    std::unique_ptr<adamw_state<Backend>> opt;
    const std::size_t max_tokens = std::size_t(micro) * std::size_t(seq);
    typename Backend::template buffer<std::int32_t> d_ids, d_pos, d_tgt;
    try {
        model = std::make_unique<model_t>(ctx, micro, seq);
        opt = std::make_unique<adamw_state<Backend>>(ctx, model_t::layout());
        d_ids = typename Backend::template buffer<std::int32_t>(max_tokens);
        d_pos = typename Backend::template buffer<std::int32_t>(max_tokens);
        d_tgt = typename Backend::template buffer<std::int32_t>(max_tokens);
    } catch (const std::bad_alloc&) {
        CRAM_THROW("out of memory allocating the model for a micro-batch of ", micro, " sequences of ", seq,
                   " tokens: lower --micro-batch (the batch target is still reached by gradient accumulation)");
    } catch (const std::exception& e) {
        if (detail::is_out_of_memory(e))
            CRAM_THROW("out of memory allocating the model for a micro-batch of ", micro, " sequences of ", seq,
                       " tokens: lower --micro-batch (", e.what(), ")");
        throw;
    }
    const param_layout& layout = model_t::layout();
    const std::size_t n = layout.buffer_size();

    train_result res;
    res.budget = clock.budget();
    std::int64_t step = 0, micro_steps = 0, skipped = 0, sequences = 0;
    double last_loss = NAN;
    if (o.resume) {
        CRAM_CHECK(!ckpt_dir.empty(), "--resume needs a run directory (--out)");
        auto loaded = load_latest_checkpoint<param_t>(ckpt_dir, layout);
        if (!loaded)
            CRAM_THROW("--resume: no complete checkpoint under ", ckpt_dir.string(),
                       " (start without --resume, or point --out at the run to continue)");
        const auto& st = loaded->state;
        if (st.value("config_fingerprint", std::string()) != fingerprint) {
            const auto diffs = config_differences(st.value("config", nlohmann::json::object()), config);
            std::string what;
            for (const auto& d : diffs) what += "\n  " + d;
            CRAM_THROW("--resume: checkpoint ", loaded->dir.string(),
                       " was written by a different training configuration; differences:",
                       diffs.empty() ? std::string("\n  (fingerprint only)") : what,
                       "\nrun with the checkpoint's settings, or start a new run in another --out directory");
        }
        model->load_parameters(loaded->params.data());
        Backend::to_device(ctx, opt->m(), loaded->m.data(), index_t(n));
        Backend::to_device(ctx, opt->v(), loaded->v.data(), index_t(n));
        step = st.at("step").template get<std::int64_t>();
        micro_steps = st.at("micro_steps").template get<std::int64_t>();
        skipped = st.value("skipped_steps", std::int64_t{0});
        sequences = st.value("sequences", std::int64_t{0});
        data.seek(st.at("data_position").template get<std::int64_t>());
        clock.add_spent(st.at("elapsed_s").template get<double>());
        last_loss = st.contains("loss") && st["loss"].is_number() ? st["loss"].template get<double>() : NAN;
        res.resumed = true;
        res.resumed_from_step = step;
        progress.message("train: resumed " + loaded->dir.string() + " at step " + std::to_string(step) + ", " +
                         format_duration(clock.spent_before()) + " of the budget already spent");
        if (clock.expired())
            CRAM_THROW("--resume: the checkpoint has already spent the whole budget (",
                       format_duration(clock.spent_before()), " of ", format_duration(clock.budget()),
                       "); nothing left to train");
    } else {
        if (!ckpt_dir.empty() && !list_checkpoints(ckpt_dir).empty())
            CRAM_THROW("run directory ", o.out.string(), " already holds checkpoints: pass --resume to continue it, "
                       "or choose a new --out");
        model->init(o.seed);
    }

    std::unique_ptr<metrics_log> metrics;
    if (!o.out.empty()) {
        fs::create_directories(o.out);
        metrics = std::make_unique<metrics_log>(o.out / "metrics.jsonl", o.resume, step);
        res.metrics = o.out / "metrics.jsonl";
        res.plot = o.out / "loss.svg";
    } else {
        metrics = std::make_unique<metrics_log>();
    }

    std::vector<param_t> host_params, host_m, host_v;
    const double ftok = flops_per_token(C, seq);
    int accumulation = o.ramp.accumulation(clock.progress());
    auto state_json = [&](double elapsed) {
        return nlohmann::json{{"format", "cram-train-state"},
                              {"version", 1},
                              {"step", step},
                              {"micro_steps", micro_steps},
                              {"skipped_steps", skipped},
                              {"sequences", sequences},
                              {"tokens", sequences * seq},
                              {"elapsed_s", elapsed},
                              {"budget_s", clock.budget()},
                              {"progress", clock.progress_at(elapsed)},
                              {"seed", o.seed},
                              {"data_position", data.position()},
                              {"accumulation", accumulation},
                              {"batch_sequences", accumulation * micro},
                              {"adam_step", step},
                              {"loss", std::isfinite(last_loss) ? nlohmann::json(last_loss) : nlohmann::json(nullptr)},
                              {"backend", Backend::name},
                              {"config", config},
                              {"config_fingerprint", fingerprint},
                              {"run", o.run_info}};
    };
    auto save = [&]() -> fs::path {
        if (ckpt_dir.empty()) return {};
        host_params.resize(n);
        host_m.resize(n);
        host_v.resize(n);
        model->store_parameters(host_params.data());
        Backend::to_host(ctx, host_m.data(), opt->m(), index_t(n));
        Backend::to_host(ctx, host_v.data(), opt->v(), index_t(n));
        const double elapsed = clock.elapsed();
        return save_checkpoint(ckpt_dir, step, layout, host_params.data(), host_m.data(), host_v.data(),
                               state_json(elapsed), o.keep, {{"cram.step", std::to_string(step)}});
    };
    auto write_plot = [&] {
        if (!res.plot.empty())
            write_loss_plot(res.plot, metrics->curve(), "MLM loss, " + format_duration(clock.budget()) + " budget");
    };

    // ---- the loop ------------------------------------------------------------------------------
    const double start_this = clock.this_process();
    const std::int64_t start_sequences = sequences;
    double last_checkpoint = clock.elapsed();
    double smoothed = last_loss, ema = 0, ema_weight = 0;
    int bad_streak = 0;
    std::int64_t micro_index = micro_steps;
    res.stop_reason = "budget";
    bool stop = false;
    while (!stop) {
        if (clock.expired()) break;
        accumulation = o.ramp.accumulation(clock.progress());
        model->zero_grads();
        int done = 0;
        for (int a = 0; a < accumulation; ++a) {
            const host_mlm_batch hb = data.next_batch(micro, o.seed);
            const index_t nt = index_t(hb.ids.size()), nm = index_t(hb.masked_positions.size());
            Backend::to_device(ctx, d_ids.data(), hb.ids.data(), nt);
            Backend::to_device(ctx, d_pos.data(), hb.masked_positions.data(), nm);
            Backend::to_device(ctx, d_tgt.data(), hb.masked_targets.data(), nm);
            const mlm_batch b{hb.batch, hb.seq, d_ids.data(), nullptr, int(nm), d_pos.data(), d_tgt.data()};
            model->mlm_forward_backward(b, forward_options{0.0f, o.seed ^ (0x9E3779B97F4A7C15ull * std::uint64_t(micro_index + 1))},
                                        1.0f / float(accumulation));
            ++micro_index;
            ++done;
            if (o.after_micro_step) o.after_micro_step();
            if (clock.expired()) {
                stop = true;
                break;
            }
        }
        micro_steps += done;
        sequences += std::int64_t(done) * micro;
        if (done < accumulation) {
            // the budget ran out inside an accumulation: at p = 1 the step would not move the weights
            // anyway (the schedules end at 0), and a partial batch is not the recipe's step; drop it
            model->take_mlm_loss();
            break;
        }
        const double loss = model->take_mlm_loss();
        if (o.corrupt_gradients) {
            if constexpr (std::is_same_v<param_t, float> && Backend::weights_alias_params)
                o.corrupt_gradients(model->grads(), n, step);
        }
        const double norm = std::sqrt(Backend::sum_squares(ctx, model->grads(), index_t(n)));
        const double elapsed = clock.elapsed();
        const double p = clock.progress_at(elapsed);
        const double lr = double(o.adamw.lr) * schedule(p);
        step_record r;
        r.elapsed = elapsed;
        r.progress = p;
        r.loss = loss;
        r.grad_norm = norm;
        r.lr = lr;
        r.batch = accumulation * micro;
        r.accumulation = accumulation;
        r.micro_steps = micro_steps;
        r.sequences = sequences;
        r.tokens = sequences * seq;
        r.data_position = data.position();
        const double dt = clock.this_process() - start_this;
        r.tokens_per_s = dt > 0 ? double(sequences - start_sequences) * seq / dt : 0;
        if (o.peak_flops > 0) r.mfu = r.tokens_per_s * ftok / o.peak_flops;
        if (!std::isfinite(loss) || !std::isfinite(norm)) {
            ++skipped;
            ++bad_streak;
            r.step = step;
            r.skipped = skipped;
            r.skipped_step = true;
            metrics->write(r.to_json());
            if (o.on_step) o.on_step(r);
            progress.message("train: warning: step " + std::to_string(step + 1) + " skipped: non-finite " +
                             (!std::isfinite(loss) ? "loss" : "gradient norm") + " (" + std::to_string(bad_streak) +
                             " in a row)");
            if (bad_streak >= o.max_bad_steps) {
                const auto ck = ckpt_dir.empty() ? std::vector<fs::path>{} : list_checkpoints(ckpt_dir);
                write_plot();
                CRAM_THROW("training diverged: ", bad_streak, " optimizer steps in a row had a non-finite loss or "
                           "gradient norm (at step ", step + 1, ", ", format_duration(elapsed), " into the budget). ",
                           ck.empty() ? std::string("No checkpoint was written yet")
                                      : "The last good checkpoint is " + ck.front().string() + " (untouched)",
                           "; lower --lr or check the data");
            }
            continue;
        }
        bad_streak = 0;
        const float scale = clip_scale(norm, o.adamw.clip_norm);
        opt->step(ctx, model->params(), model->grads(), o.adamw, float(lr), long(step + 1), scale);
        model->sync_weights();
        ++step;
        last_loss = loss;
        if (!std::isfinite(res.first_loss)) res.first_loss = loss;
        // bias-corrected exponential average (as Adam's moments): meaningful from the first step
        ema = 0.9 * ema + 0.1 * loss;
        ema_weight = 0.9 * ema_weight + 0.1;
        smoothed = ema / ema_weight;
        r.step = step;
        r.clip_scale = scale;
        r.skipped = skipped;
        metrics->write(r.to_json());
        if (o.on_step) o.on_step(r);
        progress.update(r, clock.budget(), smoothed);
        res.tokens_per_s = r.tokens_per_s;
        res.mfu = r.mfu;
        if (o.max_steps > 0 && step >= o.max_steps) {
            res.stop_reason = "max_steps";
            break;
        }
        if (o.checkpoint_every > 0 && !stop && clock.elapsed() - last_checkpoint >= o.checkpoint_every) {
            const auto where = save();
            last_checkpoint = clock.elapsed();
            if (!o.quiet && !progress.tty())
                progress.message("train: checkpoint " + where.string());
        }
    }
    progress.newline();

    // ---- the end: checkpoint, plot, validation (after the budget: evaluation is not training) ----
    res.elapsed = clock.elapsed();
    res.this_process = clock.this_process();
    res.steps = step;
    res.micro_steps = micro_steps;
    res.skipped = skipped;
    res.sequences = sequences;
    res.tokens = sequences * seq;
    res.data_position = data.position();
    res.final_loss = last_loss;
    if (res.this_process > 0 && res.tokens_per_s == 0)
        res.tokens_per_s = double(sequences - start_sequences) * seq / res.this_process;
    res.checkpoint = save();
    if (val && o.val_batches > 0) {
        val->seek(0);
        const int vb = std::min<std::int64_t>(micro, std::max<std::int64_t>(1, val->num_sequences()));
        const int batches = int(std::min<std::int64_t>(o.val_batches, (val->num_sequences() + vb - 1) / vb));
        for (int i = 0; i < batches; ++i) {
            const host_mlm_batch hb = val->next_batch(vb, o.seed + 1);
            const index_t nt = index_t(hb.ids.size()), nm = index_t(hb.masked_positions.size());
            Backend::to_device(ctx, d_ids.data(), hb.ids.data(), nt);
            Backend::to_device(ctx, d_pos.data(), hb.masked_positions.data(), nm);
            Backend::to_device(ctx, d_tgt.data(), hb.masked_targets.data(), nm);
            model->mlm_forward(mlm_batch{hb.batch, hb.seq, d_ids.data(), nullptr, int(nm), d_pos.data(), d_tgt.data()});
        }
        if (batches > 0) res.val_loss = model->take_mlm_loss();
    }
    metrics->write(res.to_json());
    write_plot();
    return res;
}

}  // namespace cram::train
