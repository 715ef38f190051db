// GLUE fine-tuning of one task with one seed, per CRAMMING.md's protocol, generic over the backend: a fresh
// GLUE head on the pretrained encoder (or a random one: the no-pretraining baseline), AdamW lr 4e-5, betas
// (0.9, 0.98), eps 1e-6, no weight decay, no clipping, batch 16, 5 epochs (the released protocol; the
// article's is batch 32, lr 2e-5: glue_protocol.hpp), cosine decay after a 10% linear warm-up, dropout 0.1
// (hidden, head and attention probabilities); every dev split scored after every epoch (the last epoch is the
// reported one).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cram/core/clock.hpp"
#include "cram/core/error.hpp"
#include "cram/eval/finetune_schedule.hpp"
#include "cram/eval/glue_inputs.hpp"
#include "cram/eval/glue_protocol.hpp"
#include "cram/eval/glue_tasks.hpp"
#include "cram/eval/metrics.hpp"
#include "cram/model/bert.hpp"
#include "cram/model/classifier.hpp"
#include "cram/model/batch_upload.hpp"
#include "cram/train/optimizer.hpp"
#include "cram/train/precision.hpp"
#include "cram/train/training_state.hpp"

namespace cram::eval {

struct finetune_options {
    // the released protocol's values (glue_protocol.hpp); finetune_options_for sets another protocol's
    int epochs = glue_protocols::released.epochs;
    int batch = glue_protocols::released.batch;
    float lr = float(glue_protocols::released.lr);
    float beta1 = 0.9f, beta2 = 0.98f, eps = 1e-6f, weight_decay = 0.0f;
    // CRAMMING.md's protocol names no clipping; > 0 clips the global gradient norm (encoder + head) there.
    float clip_norm = 0.0f;
    // linear warm-up over ceil(fraction * total steps), then cosine to 0
    double warmup_fraction = glue_protocols::released.warmup_fraction;
    float dropout = 0.1f;          // the encoder's hidden dropout and the head's dropout
    // dropout on the attention probabilities: the original cramming GLUE runs keep all of the model's dropout
    // layers on in fine-tuning (eval_in_train_mode), attention probabilities included (arch attention.dropout_prob)
    float attention_dropout = 0.1f;
    int max_len = 128;
    int eval_batch = 64;
    std::uint64_t seed = 0;
    bool from_scratch = false;  // random encoder: the no-pretraining baseline
    model_options model{};      // GLUE head width, init scale, padding id: the preset's <name>_options
    // Deviations from the protocol (for CPU runs), reported as such: a fixed subset of the training set
    // (the same for every seed), and a cap on optimizer steps (the schedule spans the capped run).
    std::size_t max_train = 0;
    std::int64_t max_steps = 0;
    int loss_every = 25;  // steps between loss reads (each one synchronises a device backend)
    // fp16 (train/precision.hpp): dynamic loss scaling, as in pretraining: a step whose gradients overflow is
    // skipped (the schedule moves on) and the scale backs off; unset: none (fp32, bf16).
    std::optional<train::loss_scaler_options> loss_scaling;
};

// Fine-tuning options that follow `protocol` (its batch, learning rate, epochs and warm-up; everything
// else as the defaults above, which both protocols share).
inline finetune_options finetune_options_for(const glue_protocol& protocol) {
    finetune_options o;
    o.batch = protocol.batch;
    o.lr = float(protocol.lr);
    o.epochs = protocol.epochs;
    o.warmup_fraction = protocol.warmup_fraction;
    return o;
}

// One dev split, tokenized, with an order by length so evaluation batches carry little padding.
struct dev_data {
    std::string split;
    std::vector<encoded_example> examples;
    std::vector<int> labels;
    std::vector<double> scores;
    std::vector<std::size_t> by_length;
    std::size_t skipped_rows = 0;
};

// One task tokenized once, shared by every seed.
struct task_data {
    glue_task_info info;
    std::vector<encoded_example> train;
    std::vector<int> train_labels;
    std::vector<float> train_scores;
    std::size_t train_skipped_rows = 0;
    std::vector<dev_data> dev;
};

template <class Tokenizer>
task_data load_task(const Tokenizer& tok, const std::filesystem::path& glue_dir, const glue_task_info& info,
                    int max_len = 128) {
    task_data t;
    t.info = info;
    const glue_split train = read_glue_split(glue_dir, info, "train");
    CRAM_CHECK(!train.examples.empty(), "GLUE task ", info.name, ": ", train.file.string(), " holds no examples");
    t.train_skipped_rows = train.skipped;
    for (const auto& ex : train.examples) {
        t.train.push_back(encode_example(tok, ex, info.pair, max_len));
        t.train_labels.push_back(ex.label);
        t.train_scores.push_back(ex.score);
    }
    for (const auto& split : info.dev_splits) {
        const glue_split dev = read_glue_split(glue_dir, info, split);
        CRAM_CHECK(!dev.examples.empty(), "GLUE task ", info.name, ": ", dev.file.string(), " holds no examples");
        dev_data d;
        d.split = split;
        d.skipped_rows = dev.skipped;
        for (const auto& ex : dev.examples) {
            d.examples.push_back(encode_example(tok, ex, info.pair, max_len));
            d.labels.push_back(ex.label);
            d.scores.push_back(ex.score);
        }
        d.by_length.resize(d.examples.size());
        std::iota(d.by_length.begin(), d.by_length.end(), std::size_t{0});
        std::stable_sort(d.by_length.begin(), d.by_length.end(), [&](std::size_t a, std::size_t b) {
            return d.examples[a].ids.size() < d.examples[b].ids.size();
        });
        t.dev.push_back(std::move(d));
    }
    return t;
}

// Every metric that makes sense for the task on one split: classification gets accuracy, and binary tasks
// F1 and MCC too (the task's headline metric is one of them); regression gets Pearson and Spearman.
// `outputs` holds num_labels values per example (logits, or the regression prediction).
inline std::map<std::string, double> score_outputs(const glue_task_info& info, const std::vector<float>& outputs,
                                                   const dev_data& d) {
    std::map<std::string, double> m;
    const std::size_t n = d.examples.size(), k = std::size_t(info.num_labels);
    CRAM_CHECK(outputs.size() == n * k, "score_outputs: ", outputs.size(), " outputs for ", n, " examples x ", k);
    if (info.regression) {
        const std::vector<double> pred(outputs.begin(), outputs.end());
        m["pearson"] = pearson(pred, d.scores);
        m["spearman"] = spearman(pred, d.scores);
        return m;
    }
    std::vector<int> pred(n);
    for (std::size_t i = 0; i < n; ++i) {
        const float* row = outputs.data() + i * k;
        pred[i] = int(std::max_element(row, row + k) - row);
    }
    m["accuracy"] = accuracy(pred, d.labels);
    if (k == 2) {
        m["f1"] = f1_positive(pred, d.labels);
        m["mcc"] = matthews(pred, d.labels);
    }
    return m;
}

struct epoch_score {
    int epoch = 0;
    std::int64_t steps = 0;   // optimizer steps done so far
    double train_loss = 0;    // mean over this epoch's examples
    double seconds = 0;       // training + evaluation of this epoch
    std::map<std::string, std::map<std::string, double>> dev;  // split -> metric -> value in [-1, 1]
};

struct finetune_run {
    std::string task;
    std::uint64_t seed = 0;
    std::size_t train_examples = 0;  // after max_train
    std::int64_t total_steps = 0;
    bool from_scratch = false;
    std::vector<epoch_score> epochs;  // the last one is the reported score
    std::int64_t overflow_steps = 0;  // fp16: steps skipped because their scaled gradients overflowed
    // Stopped early by finetune_callbacks::should_stop: not a result (its last epoch may be partial or
    // missing); the caller discards it. Runs that complete never look at this.
    bool stopped = false;
};

struct finetune_progress {
    const std::string& task;
    std::uint64_t seed;
    int epoch, epochs;
    std::int64_t step, total_steps;
    double loss;  // mean training loss since the previous report (NaN before the first read)
    double lr;
};

struct finetune_callbacks {
    std::function<void(const finetune_progress&)> on_step;                    // after every optimizer step
    std::function<void(const finetune_run&, const epoch_score&)> on_epoch;  // after every dev evaluation
    // Polled after every optimizer step (after on_step): true ends the run there, returned with `stopped`
    // set and without a dev evaluation. Only read, so a run it never stops is exactly the same run.
    std::function<bool()> should_stop;
};

// An encoder with a fresh GLUE head, and the one training state both train in (encoder tensors first, then
// the head's: bert_with_classifier_layout), so one AdamW step, one norm and one weight refresh serve both.
template <bert_config C, ops::backend Backend>
struct finetune_model {
    static std::size_t head_index() { return bert_layout<C>().tensors().size(); }

    model_options options;
    train::training_state<Backend> state;
    bert<C, Backend> encoder;
    bert_classifier<C, Backend> head;

    finetune_model(typename Backend::context& ctx, int labels, int max_batch, int max_seq, const model_options& o)
        : options(o), state(ctx, bert_with_classifier_layout<C>(labels, o.classifier_hidden)),
          encoder(ctx, bind_bert<C, Backend>(state), max_batch, max_seq, o.pad_id),
          head(encoder, bind_classifier_head<Backend>(state, head_index()), labels, o) {}

    // Encoder parameters from `pretrained` (a host buffer in bert_layout<C>()) or, when null, a random encoder
    // drawn from encoder_seed; the head always starts random from head_seed. Each part draws exactly what it
    // would alone, so a seed means the same initial model whatever it is trained with.
    void start(const std::vector<typename Backend::param_t>* pretrained, std::uint64_t encoder_seed,
               std::uint64_t head_seed) {
        const param_layout& l = state.layout();
        std::vector<typename Backend::param_t> host(l.buffer_size(), typename Backend::param_t(0));
        if (pretrained) {
            CRAM_CHECK(pretrained->size() == bert_layout<C>().buffer_size(), "fine-tuning needs the pretrained parameters (",
                       bert_layout<C>().buffer_size(), " values), got ", pretrained->size());
            copy_tensors(bert_layout<C>(), pretrained->data(), l, host.data());
        } else {
            init_parameters(host.data(), l, encoder_seed, options.init_std, C.hidden, options.pad_id, 0, head_index());
        }
        init_parameters(host.data(), l, head_seed, options.init_std, C.hidden, -1, head_index(),
                        head_index() + classifier_tensor_count);
        state.load_params(host.data());
        state.zero_grads();
    }
};

// Dev outputs (num_labels per example, in file order) of the current model, without dropout.
template <bert_config C, ops::backend Backend>
std::vector<float> predict_split(bert_classifier<C, Backend>& head, batch_upload<Backend>& upload, const dev_data& d,
                                 int labels, int eval_batch, std::int32_t pad_id) {
    std::vector<float> out(d.examples.size() * std::size_t(labels));
    std::vector<float> tmp;
    for (std::size_t begin = 0; begin < d.by_length.size(); begin += std::size_t(eval_batch)) {
        const std::size_t count = std::min<std::size_t>(std::size_t(eval_batch), d.by_length.size() - begin);
        const host_token_batch hb =
            make_token_batch(d.examples, d.by_length.data() + begin, count, pad_id, C.token_types > 0);
        tmp.resize(count * std::size_t(labels));
        head.predict(upload(hb), tmp.data());
        for (std::size_t i = 0; i < count; ++i)
            std::copy_n(tmp.data() + i * std::size_t(labels), labels,
                        out.data() + d.by_length[begin + i] * std::size_t(labels));
    }
    return out;
}

// Fine-tunes a fresh GLUE head on the pretrained encoder `pretrained` (a host buffer in bert_layout<C>()),
// or on a random encoder drawn from the seed when opts.from_scratch, on one task with one seed. Host
// batches reach the backend only through batch_upload.
template <bert_config C, ops::backend Backend>
finetune_run finetune(typename Backend::context& ctx, const std::vector<typename Backend::param_t>* pretrained,
                      const task_data& task, const finetune_options& opts, const finetune_callbacks& cb = {}) {
    using detail::splitmix64;
    CRAM_CHECK(opts.batch > 0, "fine-tuning batch must be positive, got ", opts.batch);
    CRAM_CHECK(opts.eval_batch > 0, "evaluation batch must be positive, got ", opts.eval_batch);
    CRAM_CHECK(opts.max_len > 0 && opts.max_len <= C.max_seq, "GLUE inputs of up to ", opts.max_len,
               " tokens, the model holds ", C.max_seq);
    CRAM_CHECK(opts.epochs > 0, "epochs must be positive, got ", opts.epochs);
    CRAM_CHECK(opts.from_scratch || pretrained, "fine-tuning needs the pretrained parameters or from_scratch");
    const int labels = task.info.num_labels;
    const std::uint64_t seed_key = splitmix64(opts.seed ^ splitmix64(detail::name_key(task.info.name)));

    finetune_model<C, Backend> model(ctx, labels, std::max(opts.batch, opts.eval_batch), opts.max_len, opts.model);
    model.start(opts.from_scratch ? nullptr : pretrained, splitmix64(seed_key + 1), splitmix64(seed_key + 2));
    batch_upload<Backend> upload(ctx);

    train::adamw_options ao;
    ao.lr = opts.lr;
    ao.beta1 = opts.beta1;
    ao.beta2 = opts.beta2;
    ao.eps = opts.eps;
    ao.weight_decay = opts.weight_decay;
    ao.clip_norm = opts.clip_norm;

    epoch_batches batches(training_subset(task.train.size(), opts.max_train), opts.batch, splitmix64(seed_key + 100));
    const std::int64_t per_epoch = batches.batches_per_epoch();
    std::int64_t total = per_epoch * opts.epochs;
    if (opts.max_steps > 0) total = std::min(total, opts.max_steps);
    const std::int64_t warmup = warmup_steps(total, opts.warmup_fraction);
    const int epochs = int((total + per_epoch - 1) / per_epoch);

    finetune_run run;
    run.task = task.info.name;
    run.seed = opts.seed;
    run.train_examples = batches.examples();
    run.total_steps = total;
    run.from_scratch = opts.from_scratch;
    host_labeled_batch hb;
    std::int64_t step = 0, applied = 0;  // schedule steps, and the optimizer steps taken (AdamW's bias correction)
    std::optional<train::loss_scaler> scaler;
    if (opts.loss_scaling) scaler.emplace(*opts.loss_scaling);
    for (int epoch = 1; epoch <= epochs; ++epoch) {
        const stopwatch run_clock;
        batches.shuffle(epoch - 1);
        double loss_sum = 0;
        std::size_t loss_examples = 0, pending = 0;
        double last_loss = std::nan("");
        auto read_loss = [&] {
            if (pending == 0) return;
            last_loss = model.head.take_loss();
            loss_sum += last_loss * double(pending);
            loss_examples += pending;
            pending = 0;
        };
        for (std::int64_t b = 0; b < per_epoch && step < total; ++b) {
            const std::span<const std::size_t> idx = batches.batch(b);
            const std::size_t count = idx.size();
            hb.tokens = make_token_batch(task.train, idx.data(), count, std::int32_t(opts.model.pad_id), C.token_types > 0);
            // a classifier gets class labels, a regression head float targets: only the one it reads is sent
            hb.labels.clear();
            hb.targets.clear();
            for (const std::size_t i : idx) {
                if (task.info.regression)
                    hb.targets.push_back(task.train_scores[i]);
                else
                    hb.labels.push_back(task.train_labels[i]);
            }
            model.state.zero_grads();
            const double loss_scale = scaler ? scaler->scale() : 1.0;
            model.head.forward_backward(upload(hb),
                                        forward_options{opts.dropout, splitmix64(seed_key + 1000 + std::uint64_t(step)),
                                                        opts.attention_dropout},
                                        float(loss_scale));
            pending += count;
            // the norm is read only where something needs it (it synchronises a device backend)
            bool finite = true;
            float scale = 1.0f;
            if (scaler || opts.clip_norm > 0) {
                const double norm = model.state.grad_norm() / loss_scale;
                finite = std::isfinite(norm);
                if (scaler) scaler->update(finite);
                if (opts.clip_norm > 0) scale = train::clip_scale(norm, opts.clip_norm);
            }
            const double lr = double(opts.lr) * warmup_cosine_factor(step, total, warmup);
            ++step;
            if (finite || !scaler)
                model.state.adamw_step(ao, float(lr), long(++applied), float(scale / loss_scale));
            else
                ++run.overflow_steps;
            if (opts.loss_every > 0 && step % opts.loss_every == 0) read_loss();
            if (cb.on_step) cb.on_step({run.task, opts.seed, epoch, epochs, step, total, last_loss, lr});
            if (cb.should_stop && cb.should_stop()) {
                run.stopped = true;
                return run;
            }
        }
        read_loss();
        epoch_score rec;
        rec.epoch = epoch;
        rec.steps = step;
        rec.train_loss = loss_examples ? loss_sum / double(loss_examples) : std::nan("");
        for (const auto& d : task.dev)
            rec.dev[d.split] = score_outputs(
                task.info, predict_split(model.head, upload, d, labels, opts.eval_batch, std::int32_t(opts.model.pad_id)),
                d);
        rec.seconds = run_clock.seconds();
        run.epochs.push_back(rec);
        if (cb.on_epoch) cb.on_epoch(run, rec);
    }
    return run;
}

}  // namespace cram::eval
