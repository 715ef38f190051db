// The budgeted MLM trainer (CRAMMING.md "Training recipe") over any backend, in pieces: mlm_trainer's
// accumulate() runs the micro-batches of one optimizer step, apply() clips and steps (or skips a non-finite
// step; repeated ones stop the run), finish() writes the last checkpoint, the validation loss and the
// summary, and run() is the short loop over them. Budget progress p = elapsed / budget (start-up included)
// sets the batch (gradient accumulation in whole micro-batches up to the target at p = ramp_end) and the
// learning rate (an lr_schedule value); the stop is checked after every micro-step. The run directory's
// checkpoints (run_checkpoints.hpp) are written every N minutes and at the end; a resume restores
// parameters, moments, data position, step and the budget clock, so on the CPU it continues with exactly
// the losses of an unbroken run. SIGINT/SIGTERM/SIGHUP (cram/core/signals.hpp, once stop_on_signals is
// installed) stop the run after the current micro-step: the partial step is dropped, and the checkpoint is
// that of the last step boundary (elapsed budget included), so a resume continues exactly as if the run had
// not been interrupted. The run directory is locked (cram/core/dir_lock.hpp) for the trainer's lifetime.
//
// fp16 (trainer_options::loss_scaling, precision.hpp): the backward pass runs on the loss times the scaler's
// scale S, the norm and the update divide S out (folded into the clip's gradient scale), and a step whose
// gradients overflow while its loss is finite is skipped and halves S without counting as a bad step.
//
// Data parallelism (trainer_options::comm, cram/dist/): N ranks run one optimizer step's micro-batches
// between them, rank r the r-th block of consecutive ones (its data read from the global position and
// masked by global sequence index, its dropout keyed by the global micro-step), with the batch counted in
// sequences over all ranks (the ramp's micro-batches rounded up to a multiple of N). Gradients are summed
// over the ranks before the norm, the clip and AdamW, which therefore run identically everywhere. Rank 0's
// clock and any rank's stop signal are agreed after every micro-step, so all ranks take the same decisions
// and stop after the same micro-step. Only rank 0 writes (checkpoints, metrics, progress); a resume reads
// the checkpoint on rank 0 and broadcasts it, so a checkpoint resumes with any number of ranks.
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "cram/core/dir_lock.hpp"
#include "cram/core/error.hpp"
#include "cram/core/signals.hpp"
#include "cram/dist/communicator.hpp"
#include "cram/model/batch_upload.hpp"
#include "cram/model/bert.hpp"
#include "cram/model/config.hpp"
#include "cram/train/batch_source.hpp"
#include "cram/train/budget.hpp"
#include "cram/train/checkpoint.hpp"
#include "cram/train/grad_accumulation.hpp"
#include "cram/train/metrics.hpp"
#include "cram/train/optimizer.hpp"
#include "cram/train/plan.hpp"
#include "cram/train/precision.hpp"
#include "cram/train/run_checkpoints.hpp"
#include "cram/train/schedule.hpp"
#include "cram/train/training_state.hpp"

namespace cram::train {

struct trainer_options {
    batch_ramp ramp{};             // micro-batch, target batch, ramp end
    adamw_options adamw{};         // the recipe's AdamW (lr is the peak the schedule scales)
    std::uint64_t seed = 0;        // parameter init, masking, dropout
    float dropout = 0.0f;            // hidden dropout in pretraining (0 in the crammed recipe; recipe.hpp)
    float attention_dropout = 0.0f;  // dropout on the attention probabilities in pretraining
    model_options model{};         // initialisation scale and padding id (the preset's <name>_options)
    std::filesystem::path out;     // run directory (checkpoints/, metrics.jsonl, loss.svg); empty: no files
    double checkpoint_every = 30 * 60;  // seconds of budget between periodic checkpoints; <= 0: end only
    int keep = 3;                  // checkpoints kept
    bool resume = false;           // continue from the newest checkpoint under out/checkpoints
    std::int64_t max_steps = 0;    // stop after this many optimizer steps (0: the budget alone decides)
    int max_bad_steps = 5;         // consecutive non-finite steps that stop the run
    double peak_flops = 0;         // device peak for MFU (0: unknown, not shown)
    float mask_fraction = 0.25f;   // the data's masking rate: the decoder's FLOPs per token with sparse prediction
    bool quiet = false;            // no progress lines
    double plain_progress_every = 10;  // seconds between plain progress lines when stderr is not a terminal
    int val_batches = 8;           // micro-batches of the validation split evaluated at the end (0: none)
    nlohmann::json run_config = nlohmann::json::object();  // preset, dataset, ...: part of the fingerprint
    nlohmann::json run_info = nlohmann::json::object();    // recorded in state.json as "run", not fingerprinted
                                                           // (e.g. the dataset path: a moved dataset may resume)
    // The budget-scaled recipe (plan.hpp): with derive_batch_target, ramp.target is ignored and derived from the
    // rate measured during the warm-up; with derive_lr, adamw.lr likewise. Both are then kept in every
    // checkpoint, so a resume continues with the values of the run it resumes.
    bool derive_batch_target = false;
    bool derive_lr = false;
    recipe_scaling scaling{};
    warmup_policy warmup{};
    nlohmann::json plan;  // the plan the caller made (plan.hpp), recorded in metrics.jsonl as the "plan" event
    // Data-parallel ranks (cram/dist/); null: this process alone. Not part of the fingerprint: a checkpoint
    // resumes with any number of ranks.
    dist::communicator* comm = nullptr;
    // How micro-batches add up (grad_accumulation.hpp); unset: pairwise with several ranks, else in place.
    std::optional<grad_accumulation> accumulation;
    // fp16 training (precision.hpp): dynamic loss scaling with these settings; unset: none (fp32, bf16).
    std::optional<loss_scaler_options> loss_scaling;
    // fp16 emulated on a host backend: the gradients pass through fp16 after every micro-step.
    bool emulate_fp16_gradients = false;
};

// Who wants to hear about progress besides the metrics file: after every micro-step (a simulated clock
// advances here in tests) and with every optimizer step's record (applied or skipped).
struct trainer_observers {
    std::function<void()> after_micro_step;
    std::function<void(const step_record&)> on_step;
};

struct train_result {
    std::int64_t steps = 0, micro_steps = 0, skipped = 0, sequences = 0, tokens = 0, data_position = 0;
    double elapsed = 0, budget = 0, this_process = 0, tokens_per_s = 0, mfu = -1;
    double first_loss = NAN, final_loss = NAN, val_loss = NAN;
    std::string stop_reason;  // "budget", "max_steps", or the signal's name ("SIGTERM")
    int signal = 0;           // the signal that stopped the run (0: none); the app exits with 128 + signal
    std::filesystem::path checkpoint, metrics, plot;
    nlohmann::json recipe;  // the batch target and peak lr the run used, and whether they were derived
    nlohmann::json loss_scaler;  // fp16: the final scale, clean steps and overflows (null without loss scaling)
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
        if (signal) j["signal"] = signal;
        if (mfu >= 0) j["mfu"] = mfu;
        if (!recipe.is_null()) j["recipe"] = recipe;
        if (!loss_scaler.is_null()) j["loss_scaler"] = loss_scaler;
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
                     {"batch_target", o.derive_batch_target ? nlohmann::json("auto") : nlohmann::json(o.ramp.target)},
                     {"ramp_end", o.ramp.ramp_end},
                     {"schedule", sched},
                     {"adamw",
                      {{"lr", o.derive_lr ? nlohmann::json("auto") : nlohmann::json(o.adamw.lr)},
                       {"beta1", o.adamw.beta1},
                       {"beta2", o.adamw.beta2},
                       {"eps", o.adamw.eps},
                       {"weight_decay", o.adamw.weight_decay},
                       {"clip_norm", o.adamw.clip_norm}}},
                     {"seed", o.seed},
                     {"data", {{"sequences", data.num_sequences()}, {"vocab_size", data.vocab_size()}}}};
    // recorded only when on, so that checkpoints of runs without dropout keep their fingerprints
    if (o.dropout > 0 || o.attention_dropout > 0)
        j["dropout"] = {{"hidden", o.dropout}, {"attention", o.attention_dropout}};
    // fp16 (likewise only when on): a run resumed in another precision would change what its steps compute
    if (o.loss_scaling || o.emulate_fp16_gradients)
        j["fp16"] = {{"loss_scaling", o.loss_scaling.has_value()}, {"emulated_gradients", o.emulate_fp16_gradients},
                     {"growth_interval", o.loss_scaling ? o.loss_scaling->growth_interval : 0}};
    for (const auto& [k, v] : o.run_config.items()) j[k] = v;
    return j;
}

namespace detail {
inline bool is_out_of_memory(const std::exception& e) {
    const std::string w = e.what();
    return w.find("out of memory") != std::string::npos || w.find("cudaErrorMemoryAllocation") != std::string::npos;
}
}  // namespace detail

// Trains cram::bert<C, Backend> on `data` until the clock's budget is spent (or max_steps). The clock is the
// caller's, started before anything else so that start-up counts against the budget. Everything an
// optimizer step changes lives in one training_state this trainer owns.
template <bert_config C, ops::backend Backend>
class mlm_trainer {
public:
    using model_t = bert<C, Backend>;
    using param_t = typename Backend::param_t;
    using context = typename Backend::context;

    // The gradients of one optimizer step's micro-batches, ready for apply(). A step the budget ended inside
    // has fewer micro-batches than planned: apply() rescales its gradients to their mean.
    struct accumulated {
        int micro_batches = 0;
        double loss = NAN;  // mean MLM loss over the step's masked tokens
        int planned = 0;    // the micro-batches the step was to accumulate (0: as many as it did)
        bool partial() const { return planned > micro_batches; }
    };
    enum class step_outcome { applied, skipped };

    // Checks the settings against the data, allocates the state and the model (counted in the budget), and
    // either restores the newest checkpoint (o.resume) or initialises the parameters.
    mlm_trainer(context& ctx, batch_source& data, const trainer_options& o, budget_clock& clock,
                const lr_schedule& schedule = {}, batch_source* val = nullptr, trainer_observers observers = {})
        : ctx_(ctx), data_(data), o_(o), clock_(clock), schedule_(schedule), val_(val),
          observers_(std::move(observers)), seq_(data.seq_len()), comm_(o.comm ? o.comm : &single_),
          ranks_(comm_->size()), out_(comm_->root() ? o.out : std::filesystem::path()),
          progress_(o.quiet || !comm_->root(), o.plain_progress_every),
          checkpoints_(out_, training_config<C>(o, schedule, clock.budget(), seq_, data), o.checkpoint_every,
                       o.keep),
          upload_(ctx), ramp_(o.ramp), peak_lr_(o.adamw.lr),
          accumulation_(o.accumulation.value_or(ranks_ > 1 ? grad_accumulation::pairwise : grad_accumulation::in_place)),
          scaling_(o.loss_scaling.has_value()), scaler_(o.loss_scaling.value_or(loss_scaler_options{})) {
        // one process per run directory, from before its checkpoints are read until the last is written
        // (rank 0's: the only one that writes; the condition is the same on every rank, as on_root needs)
        if (!o_.out.empty()) dist::on_root(*comm_, [&] { run_lock_ = dir_lock(out_, "run directory", "cram trainer"); });
        check_settings();
        CRAM_CHECK(ranks_ == 1 || (std::is_same_v<param_t, float>), "data-parallel training sums fp32 gradients; this "
                   "backend's parameters are ", sizeof(param_t) * 8, "-bit");
        allocate();
        res_.budget = clock_.budget();
        res_.stop_reason = "budget";
        // until the warm-up has measured the rate, a derived target is one micro-batch: where every ramp starts
        if (o_.derive_batch_target) ramp_.target = ramp_.micro_batch;
        // and the rate is the rule's for that batch (a derived target of one micro-batch changes nothing)
        if (o_.derive_lr) peak_lr_ = o_.scaling.lr_for(o_.derive_batch_target ? ramp_.micro_batch : o_.ramp.target);
        derived_ = !o_.derive_batch_target && !o_.derive_lr;
        if (derived_) recipe_ = derive_recipe(o_.scaling, 0, ramp_.micro_batch, o_.ramp.target, o_.adamw.lr);
        if (o_.resume)
            restore();
        else
            fresh_start();
        n_.accumulation = ramp_.accumulation(clock_.progress());
        open_metrics();
        if (!o_.plan.is_null() && !o_.plan.empty()) {
            nlohmann::json plan = o_.plan;
            plan["event"] = "plan";
            plan["micro_steps"] = n_.micro_steps;
            metrics_->write(plan);
        }
        start_this_ = clock_.this_process();
        start_sequences_ = n_.sequences;
        checkpoints_.mark(clock_.elapsed());
        smoothed_ = n_.last_loss;
        if (ranks_ > 1)
            progress_.message("train: " + std::to_string(ranks_) + " data-parallel ranks over " + comm_->transport() +
                              ", " + std::to_string(ramp_.micro_batch) + " sequences per micro-batch on each; " +
                              to_string(accumulation_) + " gradient accumulation");
    }

    // The run: optimizer steps until the budget or max_steps, periodic checkpoints, then finish().
    train_result run() {
        while (const auto a = accumulate())
            if (apply(*a) == step_outcome::applied) checkpoint_if_due();
        return finish();
    }

    // A periodic checkpoint when one is due and the run goes on (the last one is finish()'s).
    void checkpoint_if_due() {
        if (stopped_ || !checkpoints_.due(clock_.elapsed())) return;
        const auto where = save(clock_.elapsed());
        checkpoints_.mark(clock_.elapsed());
        if (!o_.quiet && !progress_.tty()) progress_.message("train: checkpoint " + where.string());
    }

    // Runs the micro-batches of one optimizer step (as many as the batch ramp asks for at the current
    // progress, and no more than the rest of the budget holds at the measured micro-step time) into zeroed
    // gradients. Nothing when the run is over. When the budget ends inside the step all the same (a slower
    // micro-step than measured), the step is returned partial, and apply() applies it: no computed work is
    // thrown away. A stop signal between two micro-steps ends the run too: the step's partial gradients are
    // dropped and the data rewound to the step's start, so the final checkpoint is the step boundary's and a
    // resume continues exactly.
    std::optional<accumulated> accumulate() {
        if (stopped_) return std::nullopt;
        agree();
        if (clock_.expired()) return std::nullopt;
        if (o_.max_steps > 0 && n_.step >= o_.max_steps) {  // also a resume of a run that already reached it
            res_.stop_reason = "max_steps";
            stopped_ = true;
            return std::nullopt;
        }
        boundary_elapsed_ = clock_.elapsed();
        boundary_position_ = data_.position();
        if (const int sig = stop_signal()) {
            stop_for_signal(sig);
            return std::nullopt;
        }
        derive_if_measured();
        // rounds: micro-batches per rank (the ramp's count rounded up to a multiple of the ranks)
        const int wanted = (ramp_.accumulation(clock_.progress()) + ranks_ - 1) / ranks_;
        const int rounds = accumulation_that_fits(wanted, clock_.remaining(), seconds_per_micro_step());
        const int planned = rounds * ranks_;
        n_.accumulation = planned;
        state_->zero_grads();
        if (pairwise_) pairwise_->begin(rounds);
        const std::int64_t first = std::int64_t(comm_->rank()) * rounds;  // this rank's first micro-batch of the step
        if (ranks_ > 1) data_.seek(boundary_position_ + first * ramp_.micro_batch);
        double busy = 0;
        int done = 0;
        while (done < rounds) {
            const double t0 = cram::steady_seconds();
            micro_step(planned, n_.micro_steps + first + done);
            if (o_.emulate_fp16_gradients) round_grads_to_fp16();
            if (pairwise_) pairwise_->after_micro_batch();
            if (ranks_ > 1) Backend::synchronize(ctx_);  // a device's queue included in this rank's busy time
            busy += cram::steady_seconds() - t0;
            ++done;
            agree();
            if (++process_micro_steps_ == 1) first_micro_end_ = clock_.this_process();
            if (clock_.expired()) {
                stopped_ = true;
                break;
            }
            if (const int sig = stop_signal(); sig && done < rounds) {
                (void)model_->take_mlm_loss_total();
                data_.seek(boundary_position_);
                stop_for_signal(sig);
                return std::nullopt;
            }
        }
        if (pairwise_ && done < rounds) pairwise_->finish_early();
        const int ran = done * ranks_;  // micro-batches over all ranks
        n_.micro_steps += ran;
        n_.sequences += std::int64_t(ran) * ramp_.micro_batch;
        if (ranks_ > 1) data_.seek(boundary_position_ + std::int64_t(ran) * ramp_.micro_batch);
        const auto loss = model_->take_mlm_loss_total();
        double totals[2] = {loss.sum, loss.count};
        if (ranks_ > 1) sum_over_ranks(totals, busy);
        return accumulated{ran, totals[1] > 0 ? totals[0] / totals[1] : 0.0, planned};
    }

    // Clips and applies the accumulated gradients (AdamW at the schedule's learning rate), or skips a step
    // whose loss or gradient norm is not finite; max_bad_steps skips in a row stop the run with an error that
    // names the last good checkpoint. Records the step in the metrics and on the progress line.
    // A partial step (the budget ended inside it) is applied as the mean of the micro-batches it has: its
    // gradients, scaled by 1 / planned in each micro-step, are rescaled by planned / micro_batches before
    // clipping; its learning rate is the schedule's where the step began, since at the budget's end every
    // schedule is at 0.
    step_outcome apply(const accumulated& a) {
        const double rescale = a.partial() ? double(a.planned) / a.micro_batches : 1.0;
        const double loss_scale = scaling_ ? scaler_.scale() : 1.0;  // the gradients hold loss_scale x their value
        const double norm = state_->grad_norm() * rescale / loss_scale;
        step_record r = record(a, norm);
        if (scaling_) r.loss_scale = loss_scale;
        if (!std::isfinite(a.loss) || !std::isfinite(norm)) {
            // with a finite loss, non-finite gradients are fp16's overflow: the scale backs off, the run goes on,
            // until the scale is at its minimum and it can no longer be the scale's fault
            if (scaling_ && std::isfinite(a.loss) && !scaler_.at_minimum()) {
                overflow(r);
                return step_outcome::skipped;
            }
            if (scaling_) scaler_.update(false);
            skip(r, a.loss);
            return step_outcome::skipped;
        }
        bad_streak_ = 0;
        if (scaling_) scaler_.update(true);
        const float scale = clip_scale(norm, o_.adamw.clip_norm);
        state_->adamw_step(o_.adamw, float(r.lr), long(n_.step + 1), float(scale * rescale / loss_scale));
        ++n_.step;
        n_.last_loss = a.loss;
        if (!std::isfinite(res_.first_loss)) res_.first_loss = a.loss;
        // bias-corrected exponential average (as Adam's moments): meaningful from the first step
        ema_ = 0.9 * ema_ + 0.1 * a.loss;
        ema_weight_ = 0.9 * ema_weight_ + 0.1;
        smoothed_ = ema_ / ema_weight_;
        r.step = n_.step;
        r.clip_scale = scale;
        r.skipped = n_.skipped;
        publish(r);
        progress_.update(r, clock_.budget(), smoothed_);
        res_.tokens_per_s = r.tokens_per_s;
        res_.mfu = r.mfu;
        return step_outcome::applied;
    }

    // After the last step: the final checkpoint, the loss plot and the validation loss (evaluation is not
    // training: it runs after the budget), and the summary line of the metrics.
    // After a stop signal: no validation (the user asked to stop), and the checkpoint and summary carry the
    // budget spent up to the last step boundary.
    train_result finish() {
        progress_.newline();
        res_.elapsed = res_.signal ? boundary_elapsed_ : clock_.elapsed();
        res_.this_process = clock_.this_process();
        res_.steps = n_.step;
        res_.micro_steps = n_.micro_steps;
        res_.skipped = n_.skipped;
        res_.sequences = n_.sequences;
        res_.tokens = n_.sequences * seq_;
        res_.data_position = data_.position();
        res_.final_loss = n_.last_loss;
        derived_recipe used = recipe_;
        if (!derived_) used = derive_recipe(o_.scaling, 0, ramp_.micro_batch, ramp_.target, peak_lr_);
        res_.recipe = used.to_json();
        if (!derived_) res_.recipe["not_derived"] = "the budget ended inside the warm-up";
        if (scaling_) res_.loss_scaler = scaler_.to_json();
        if (res_.this_process > 0 && res_.tokens_per_s == 0)
            res_.tokens_per_s = double(n_.sequences - start_sequences_) * seq_ / res_.this_process;
        res_.checkpoint = save(res_.elapsed);
        // no rank leaves before rank 0's checkpoint is on disk: a launcher ends the whole job when one rank
        // exits with a non-zero code (as after a stop signal)
        comm_->barrier();
        if (!res_.signal && comm_->root()) res_.val_loss = validation_loss();
        metrics_->write(res_.to_json());
        write_plot();
        return res_;
    }

    // The training state (parameters, gradients, moments): between accumulate() and apply() the gradients are
    // the step's, which is where fault-injection tests reach in.
    training_state<Backend>& state() { return *state_; }
    const training_counters& counters() const { return n_; }
    // The batch ramp and peak learning rate in force (derived ones once the warm-up has measured the rate).
    const batch_ramp& ramp() const { return ramp_; }
    float peak_lr() const { return peak_lr_; }
    const derived_recipe& recipe() const { return recipe_; }
    bool recipe_derived() const { return derived_; }

private:
    // The agreement point of data-parallel ranks (nothing for one process): every rank's clock is pinned to
    // rank 0's time in its process (the budget spent before it came from the same checkpoint on every rank)
    // and a stop signal any rank received stops all (the highest-numbered if they differ).
    void agree() {
        if (ranks_ == 1) return;
        double v[2] = {comm_->root() ? clock_.live_this_process() : -HUGE_VAL, double(cram::stop_requested())};
        comm_->max(v, 2);
        clock_.pin_this_process(v[0]);
        agreed_signal_ = int(v[1]);
    }
    int stop_signal() const { return ranks_ > 1 ? agreed_signal_ : cram::stop_requested(); }

    void round_grads_to_fp16() {
        if constexpr (std::is_same_v<typename Backend::memory_space, host_memory>)
            state_->round_grads_to_fp16();
        else
            CRAM_THROW("fp16 gradient emulation is for the CPU backend; a GPU trains in fp16 itself");
    }

    // The step's gradients and loss totals summed over the ranks, the time the gradient sum took, and the
    // spread of the ranks' compute times (`busy`: this rank's micro-steps alone, without the waits).
    void sum_over_ranks(double (&loss_totals)[2], double busy) {
        const double t0 = cram::steady_seconds();
        if constexpr (std::is_same_v<param_t, float>) comm_->sum_gradients(state_->grads(), state_->size());
        allreduce_s_ = cram::steady_seconds() - t0;
        comm_->sum(loss_totals, 2);
        double spread[2] = {busy, -busy};
        comm_->max(spread, 2);
        rank_spread_s_ = spread[0] + spread[1];
    }

    // Budget seconds per micro-step in this process (its first micro-step is not timed: caches, allocation,
    // kernel selection); before two micro-steps, the value the checkpoint recorded; 0 when unknown.
    double seconds_per_micro_step() const {
        if (process_micro_steps_ >= 2)
            return (clock_.this_process() - first_micro_end_) / double(process_micro_steps_ - 1);
        return restored_micro_step_seconds_;
    }

    // At a step boundary after the warm-up (warmup_policy): the recipe's values the user left to the budget,
    // from the measured rate and the sequences the rest of the budget holds at it (plan.hpp).
    void derive_if_measured() {
        if (derived_ || process_micro_steps_ < 1) return;
        const std::int64_t timed = process_micro_steps_ - 1;
        const double process = clock_.this_process();
        if (!o_.warmup.done(timed, process, clock_.budget())) return;
        const int micro = ramp_.micro_batch;
        const double rate = double(timed) * micro * ranks_ / (process - first_micro_end_);
        recipe_ = derive_after_warmup(o_.scaling, double(n_.sequences), rate, clock_.remaining(), clock_.elapsed(),
                                      micro, o_.derive_batch_target ? std::nullopt : std::optional<int>(o_.ramp.target),
                                      o_.derive_lr ? std::nullopt : std::optional<float>(o_.adamw.lr));
        ramp_.target = recipe_.batch_target;
        peak_lr_ = recipe_.lr;
        derived_ = true;
        nlohmann::json j = recipe_.to_json();
        j["event"] = "derived";
        j["micro_steps"] = n_.micro_steps;
        j["reason"] = recipe_.reason(o_.scaling);
        metrics_->write(j);
        progress_.message("train: after a " + format_duration(process) + " warm-up: " + recipe_.reason(o_.scaling));
    }

    void check_settings() const {
        o_.ramp.validate();
        schedule_.validate();
        CRAM_CHECK(o_.dropout >= 0 && o_.dropout < 1 && o_.attention_dropout >= 0 && o_.attention_dropout < 1,
                   "dropout rates must be in [0, 1), got ", o_.dropout, " (hidden) and ", o_.attention_dropout,
                   " (attention)");
        CRAM_CHECK(seq_ > 0 && seq_ <= C.max_seq, "the dataset's sequences have ", seq_,
                   " tokens but this model supports at most ", C.max_seq, " (re-run prepare with --seq-len ",
                   C.max_seq, ")");
        CRAM_CHECK(data_.vocab_size() == C.vocab, "the dataset's vocabulary has ", data_.vocab_size(),
                   " tokens but the model needs exactly ", C.vocab, " (re-run prepare with --vocab-size ", C.vocab,
                   ", or pick a preset with a vocabulary of ", data_.vocab_size(), ")");
        CRAM_CHECK(o_.max_bad_steps >= 1, "max_bad_steps must be at least 1");
    }

    void allocate() {
        const int micro = ramp_.micro_batch;
        try {
            state_ = std::make_unique<training_state<Backend>>(ctx_, model_t::layout());
            model_ = std::make_unique<model_t>(ctx_, bind_bert<C, Backend>(*state_), micro, seq_, o_.model.pad_id);
            if (accumulation_ == grad_accumulation::pairwise)
                pairwise_ = std::make_unique<pairwise_accumulator<Backend>>(ctx_, state_->grads(), state_->size());
        } catch (const std::bad_alloc&) {
            CRAM_THROW("out of memory allocating the model for a micro-batch of ", micro, " sequences of ", seq_,
                       " tokens: lower --micro-batch (the batch target is still reached by gradient accumulation)");
        } catch (const std::exception& e) {
            if (detail::is_out_of_memory(e))
                CRAM_THROW("out of memory allocating the model for a micro-batch of ", micro, " sequences of ", seq_,
                           " tokens: lower --micro-batch (", e.what(), ")");
            throw;
        }
    }

    // Rank 0 reads and verifies the checkpoint; the other ranks get its tensors and state from it.
    void restore() {
        loaded_checkpoint<param_t> loaded;
        dist::on_root(*comm_, [&] { loaded = checkpoints_.template resume<param_t>(model_t::layout()); });
        if (ranks_ > 1) {
            for (auto* t : {&loaded.params, &loaded.m, &loaded.v}) dist::broadcast_sequence(*comm_, *t);
            std::string state_text = comm_->root() ? loaded.state.dump() : std::string(), dir = loaded.dir.string();
            dist::broadcast_sequence(*comm_, state_text);
            dist::broadcast_sequence(*comm_, dir);
            if (!comm_->root()) {
                loaded.state = nlohmann::json::parse(state_text);
                loaded.dir = dir;
            }
        }
        state_->load_params(loaded.params.data());
        state_->load_moments(loaded.m.data(), loaded.v.data());
        const auto file = loaded.dir / checkpoint_paths::state;
        n_ = training_counters::from_state(loaded.state, file);
        const json_fields f(loaded.state, file);
        data_.seek(f.integer("data_position", 0));
        clock_.add_spent(f.number("elapsed_s"));
        restore_recipe(loaded.state, file);
        if (scaling_ && loaded.state.contains("loss_scaler")) scaler_.restore(loaded.state["loss_scaler"], file.string());
        res_.resumed = true;
        res_.resumed_from_step = n_.step;
        progress_.message("train: resumed " + loaded.dir.string() + " at step " + std::to_string(n_.step) + ", " +
                          format_duration(clock_.spent_before()) + " of the budget already spent");
        // a run killed after its last step (during validation or the summary): nothing is left to train,
        // and run() goes straight to finish(), which writes the final checkpoint, validation and summary
        if (clock_.expired())
            progress_.message("train: the checkpoint has already spent the whole budget (" +
                              format_duration(clock_.spent_before()) + " of " + format_duration(clock_.budget()) +
                              "): nothing left to train; writing the validation loss and the summary");
    }

    // The derived recipe of the run being resumed (state.json "recipe"; absent before the warm-up ended, and in
    // checkpoints written before the budget-scaled recipe, whose values are the fixed ones in the config).
    void restore_recipe(const nlohmann::json& state, const std::filesystem::path& file) {
        restored_micro_step_seconds_ = json_fields(state, file).number_or("seconds_per_micro_step", 0.0);
        if (!state.contains("recipe") || (!o_.derive_batch_target && !o_.derive_lr)) return;
        const json_fields f(state["recipe"], file);
        derived_recipe d;
        d.batch_target = int(f.integer("batch_target", 1));
        d.lr = float(f.number("lr"));
        d.target_derived = o_.derive_batch_target;
        d.lr_derived = o_.derive_lr;
        d.sequences_per_s = f.number_or("sequences_per_s", 0.0);
        d.projected_sequences = f.number_or("projected_sequences", 0.0);
        d.at_elapsed = f.number_or("at_elapsed_s", 0.0);
        CRAM_CHECK(d.batch_target >= ramp_.micro_batch && d.lr > 0 && std::isfinite(d.lr), file.string(),
                   ": the recorded recipe (batch target ", d.batch_target, ", lr ", d.lr, ") is not valid for a "
                   "micro-batch of ", ramp_.micro_batch);
        recipe_ = d;
        ramp_.target = d.batch_target;
        peak_lr_ = d.lr;
        derived_ = true;
    }

    void fresh_start() {
        dist::on_root(*comm_, [&] { checkpoints_.refuse_existing(out_); });
        o_.model.validate(C.vocab);
        state_->init(o_.seed, o_.model.init_std, C.hidden, o_.model.pad_id);
    }

    void open_metrics() {
        namespace fs = std::filesystem;
        if (out_.empty()) {
            metrics_ = std::make_unique<metrics_log>();
            return;
        }
        fs::create_directories(out_);
        metrics_ = std::make_unique<metrics_log>(out_ / "metrics.jsonl", o_.resume, n_.step, n_.micro_steps);
        res_.metrics = out_ / "metrics.jsonl";
        res_.plot = out_ / "loss.svg";
    }

    // One micro-batch forward and backward into the gradients, scaled for an accumulation of `accumulation`.
    // Each micro-step draws its dropout seed from its global index, so a resumed run repeats an unbroken one.
    void micro_step(int accumulation, std::int64_t index) {
        const host_mlm_batch hb = data_.next_batch(ramp_.micro_batch, o_.seed);
        const std::uint64_t dropout_seed = o_.seed ^ (0x9E3779B97F4A7C15ull * std::uint64_t(index + 1));
        const double loss_scale = scaling_ ? scaler_.scale() : 1.0;
        model_->mlm_forward_backward(upload_(hb), forward_options{o_.dropout, dropout_seed, o_.attention_dropout},
                                     float(loss_scale / accumulation));
        if (observers_.after_micro_step) observers_.after_micro_step();
    }

    step_record record(const accumulated& a, double norm) const {
        step_record r;
        r.elapsed = clock_.elapsed();
        r.progress = clock_.progress_at(r.elapsed);
        r.loss = a.loss;
        r.grad_norm = norm;
        // the sequences trained before this step: what a sequence-counting schedule (polynomial-decay) reads
        const double before = double(n_.sequences - std::int64_t(a.micro_batches) * ramp_.micro_batch);
        r.lr = double(peak_lr_) * schedule_(a.partial() ? clock_.progress_at(boundary_elapsed_) : r.progress, before);
        r.batch = a.micro_batches * ramp_.micro_batch;
        r.accumulation = a.micro_batches;
        r.partial_step = a.partial();
        r.micro_steps = n_.micro_steps;
        r.sequences = n_.sequences;
        r.tokens = n_.sequences * seq_;
        r.data_position = data_.position();
        const double dt = clock_.this_process() - start_this_;
        r.tokens_per_s = dt > 0 ? double(n_.sequences - start_sequences_) * seq_ / dt : 0;
        if (o_.peak_flops > 0) r.mfu = r.tokens_per_s * flops_per_token(C, seq_, o_.mask_fraction) /
                                           (o_.peak_flops * ranks_);
        r.ranks = ranks_;
        r.allreduce_s = allreduce_s_;
        r.rank_spread_s = rank_spread_s_;
        return r;
    }

    void skip(step_record& r, double loss) {
        ++n_.skipped;
        ++bad_streak_;
        r.step = n_.step;
        r.skipped = n_.skipped;
        r.skipped_step = true;
        publish(r);
        progress_.message("train: warning: step " + std::to_string(n_.step + 1) + " skipped: non-finite " +
                          (!std::isfinite(loss) ? "loss" : "gradient norm") + " (" + std::to_string(bad_streak_) +
                          " in a row)");
        if (bad_streak_ >= o_.max_bad_steps) {
            const auto ck = checkpoints_.list();
            write_plot();
            CRAM_THROW("training diverged: ", bad_streak_, " optimizer steps in a row had a non-finite loss or "
                       "gradient norm (at step ", n_.step + 1, ", ", format_duration(r.elapsed), " into the budget). ",
                       ck.empty() ? std::string("No checkpoint was written yet")
                                  : "The last good checkpoint is " + ck.front().string() + " (untouched)",
                       "; lower --lr or check the data");
        }
    }

    // A step whose scaled gradients overflowed fp16 (a finite loss): skipped, the scale backs off. Not a bad
    // step: the streak that stops a diverging run is left as it was.
    void overflow(step_record& r) {
        ++n_.skipped;
        scaler_.update(false);
        r.step = n_.step;
        r.skipped = n_.skipped;
        r.skipped_step = true;
        r.overflow = true;
        publish(r);
        constexpr std::int64_t told = 5;  // the first few on the terminal; every one in metrics.jsonl
        if (scaler_.overflows() <= told)
            progress_.message("train: step " + std::to_string(n_.step + 1) + " skipped: the gradients overflowed fp16 at "
                              "loss scale " + format_scale(r.loss_scale) + "; the scale is now " +
                              format_scale(scaler_.scale()) +
                              (scaler_.overflows() == told ? " (further overflows: metrics.jsonl only)" : ""));
    }
    static std::string format_scale(double s) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", s);
        return buf;
    }

    void publish(const step_record& r) {
        metrics_->write(r.to_json());
        if (observers_.on_step) observers_.on_step(r);
    }

    nlohmann::json state_json(double elapsed) const {
        const int micro = ramp_.micro_batch;
        nlohmann::json j{{"format", "cram-train-state"},
                              {"version", 1},
                              {"step", n_.step},
                              {"micro_steps", n_.micro_steps},
                              {"skipped_steps", n_.skipped},
                              {"sequences", n_.sequences},
                              {"tokens", n_.sequences * seq_},
                              {"elapsed_s", elapsed},
                              {"budget_s", clock_.budget()},
                              {"progress", clock_.progress_at(elapsed)},
                              {"seed", o_.seed},
                              {"data_position", data_.position()},
                              {"accumulation", n_.accumulation},
                              {"batch_sequences", n_.accumulation * micro},
                              {"adam_step", n_.step},
                              {"loss", std::isfinite(n_.last_loss) ? nlohmann::json(n_.last_loss) : nlohmann::json(nullptr)},
                              {"backend", Backend::name},
                              {"config", checkpoints_.config()},
                              {"config_fingerprint", checkpoints_.fingerprint()},
                              {"run", o_.run_info},
                              {"seconds_per_micro_step", seconds_per_micro_step()},
                              {"ranks", ranks_},
                              {"grad_accumulation", to_string(accumulation_)}};
        if (derived_ && (o_.derive_batch_target || o_.derive_lr)) j["recipe"] = recipe_.to_json();
        if (scaling_) j["loss_scaler"] = scaler_.to_json();
        return j;
    }

    std::filesystem::path save(double elapsed) {
        if (!checkpoints_.enabled()) return {};
        const std::size_t n = state_->size();
        host_params_.resize(n);
        host_m_.resize(n);
        host_v_.resize(n);
        state_->store_params(host_params_.data());
        state_->store_moments(host_m_.data(), host_v_.data());
        return checkpoints_.save(n_.step, model_t::layout(), host_params_.data(), host_m_.data(), host_v_.data(),
                                 state_json(elapsed));
    }

    void stop_for_signal(int sig) {
        stopped_ = true;
        res_.signal = sig;
        res_.stop_reason = signal_name(sig);
        progress_.message(std::string("train: stopping on ") + signal_name(sig) + " at step " + std::to_string(n_.step) +
                          " (the partial step is dropped; writing the checkpoint)");
    }

    // Mean MLM loss over the first val_batches micro-batches of the validation split (NaN without one).
    double validation_loss() {
        if (!val_ || o_.val_batches <= 0) return NAN;
        val_->seek(0);
        const int micro = ramp_.micro_batch;
        const int vb = int(std::min<std::int64_t>(micro, std::max<std::int64_t>(1, val_->num_sequences())));
        const int batches = int(std::min<std::int64_t>(o_.val_batches, (val_->num_sequences() + vb - 1) / vb));
        for (int i = 0; i < batches; ++i) model_->mlm_forward(upload_(val_->next_batch(vb, o_.seed + 1)));
        return batches > 0 ? model_->take_mlm_loss() : NAN;
    }

    void write_plot() {
        if (!res_.plot.empty())
            write_loss_plot(res_.plot, metrics_->curve(), "MLM loss, " + format_duration(clock_.budget()) + " budget");
    }

    context& ctx_;
    batch_source& data_;
    const trainer_options o_;
    budget_clock& clock_;
    lr_schedule schedule_;
    batch_source* val_;
    trainer_observers observers_;
    int seq_;
    dist::single_process single_;  // the communicator when o.comm is null
    dist::communicator* comm_;
    int ranks_;
    std::filesystem::path out_;  // o.out on rank 0; empty on the others, which write nothing
    progress_line progress_;
    run_checkpoints checkpoints_;
    std::unique_ptr<training_state<Backend>> state_;
    std::unique_ptr<model_t> model_;
    batch_upload<Backend> upload_;
    std::unique_ptr<metrics_log> metrics_;
    training_counters n_;
    train_result res_;
    std::vector<param_t> host_params_, host_m_, host_v_;  // checkpoint staging, reused
    dir_lock run_lock_;
    batch_ramp ramp_;          // o.ramp, with the derived target once measured
    float peak_lr_;            // o.adamw.lr, or the derived one
    derived_recipe recipe_;    // what the warm-up derived (or the user's values)
    bool derived_ = false;     // the recipe is final: the user's, derived, or restored
    std::int64_t process_micro_steps_ = 0;  // micro-steps run by this process
    double first_micro_end_ = 0;            // this process's clock when its first micro-step ended
    double restored_micro_step_seconds_ = 0;  // the checkpoint's measured micro-step time
    double boundary_elapsed_ = 0;        // budget spent when the current step began
    std::int64_t boundary_position_ = 0;  // the data position then
    double start_this_ = 0, smoothed_ = NAN, ema_ = 0, ema_weight_ = 0;
    std::int64_t start_sequences_ = 0;
    int bad_streak_ = 0;
    bool stopped_ = false;
    grad_accumulation accumulation_;
    std::unique_ptr<pairwise_accumulator<Backend>> pairwise_;  // with pairwise accumulation
    bool scaling_;                          // fp16: dynamic loss scaling
    loss_scaler scaler_;
    int agreed_signal_ = 0;                 // data-parallel: the stop signal any rank received
    double allreduce_s_ = 0, rank_spread_s_ = 0;  // data-parallel: the last step's
};

// The whole run in one call: mlm_trainer(...).run().
template <bert_config C, ops::backend Backend>
train_result train_mlm(typename Backend::context& ctx, batch_source& data, const trainer_options& o,
                       budget_clock& clock, const lr_schedule& schedule = {}, batch_source* val = nullptr,
                       trainer_observers observers = {}) {
    return mlm_trainer<C, Backend>(ctx, data, o, clock, schedule, val, std::move(observers)).run();
}

}  // namespace cram::train
