// GLUE fine-tuning of one task with one seed, per CRAMMING.md's protocol, generic over the backend: a fresh
// GLUE head on the pretrained encoder (or a random one: the no-pretraining baseline), AdamW lr 4e-5, betas
// (0.9, 0.98), eps 1e-6, no weight decay, no clipping, batch 16, 5 epochs, cosine decay after a 10% linear
// warm-up, dropout 0.1; every dev split scored after every epoch (the last epoch is the reported one).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "cram/core/clock.hpp"
#include "cram/core/error.hpp"
#include "cram/eval/finetune_schedule.hpp"
#include "cram/eval/glue_inputs.hpp"
#include "cram/eval/glue_tasks.hpp"
#include "cram/eval/metrics.hpp"
#include "cram/model/bert.hpp"
#include "cram/model/classifier.hpp"
#include "cram/train/optimizer.hpp"

namespace cram::eval {

struct finetune_options {
    int epochs = 5;
    int batch = 16;
    float lr = 4e-5f;
    float beta1 = 0.9f, beta2 = 0.98f, eps = 1e-6f, weight_decay = 0.0f;
    // CRAMMING.md's protocol names no clipping; > 0 clips the global gradient norm (encoder + head) there.
    float clip_norm = 0.0f;
    double warmup_fraction = 0.1;  // linear warm-up over ceil(fraction * total steps), then cosine to 0
    float dropout = 0.1f;          // the encoder's hidden dropout and the head's dropout
    int max_len = 128;
    int eval_batch = 64;
    std::uint64_t seed = 0;
    bool from_scratch = false;  // random encoder: the no-pretraining baseline
    // Deviations from the protocol (for CPU runs), reported as such: a fixed subset of the training set
    // (the same for every seed), and a cap on optimizer steps (the schedule spans the capped run).
    std::size_t max_train = 0;
    std::int64_t max_steps = 0;
    int loss_every = 25;  // steps between loss reads (each one synchronises a device backend)
};

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
};

// Dev outputs (num_labels per example, in file order) of the current model, without dropout.
template <bert_config C, class Backend>
std::vector<float> predict_split(bert_classifier<C, Backend>& head, const dev_data& d, int labels, int eval_batch) {
    std::vector<float> out(d.examples.size() * std::size_t(labels));
    std::vector<float> tmp;
    for (std::size_t begin = 0; begin < d.by_length.size(); begin += std::size_t(eval_batch)) {
        const std::size_t count = std::min<std::size_t>(std::size_t(eval_batch), d.by_length.size() - begin);
        const host_token_batch hb =
            make_token_batch(d.examples, d.by_length.data() + begin, count, std::int32_t(C.pad_id), C.token_types > 0);
        tmp.resize(count * std::size_t(labels));
        head.predict(hb.view(), tmp.data());
        for (std::size_t i = 0; i < count; ++i)
            std::copy_n(tmp.data() + i * std::size_t(labels), labels,
                        out.data() + d.by_length[begin + i] * std::size_t(labels));
    }
    return out;
}

// Fine-tunes `encoder` on one task with one seed. The encoder's parameters are first replaced by
// `pretrained` (a host buffer in bert<C>::layout()), or re-initialised from the seed when
// opts.from_scratch; its max_batch must hold opts.batch and opts.eval_batch.
template <bert_config C, class Backend>
finetune_run finetune(bert<C, Backend>& encoder, const std::vector<typename Backend::param_t>* pretrained,
                      const task_data& task, const finetune_options& opts, const finetune_callbacks& cb = {}) {
    using detail::splitmix64;
    auto& ctx = encoder.ctx();
    CRAM_CHECK(opts.batch > 0 && opts.batch <= encoder.max_batch(), "fine-tuning batch ", opts.batch,
               " outside [1, ", encoder.max_batch(), "] (the encoder's max_batch)");
    CRAM_CHECK(opts.eval_batch > 0 && opts.eval_batch <= encoder.max_batch(), "evaluation batch ", opts.eval_batch,
               " outside [1, ", encoder.max_batch(), "] (the encoder's max_batch)");
    CRAM_CHECK(opts.max_len <= encoder.max_seq(), "GLUE inputs of up to ", opts.max_len, " tokens, the encoder holds ",
               encoder.max_seq());
    CRAM_CHECK(opts.epochs > 0, "epochs must be positive, got ", opts.epochs);
    const int labels = task.info.num_labels;
    const std::uint64_t seed_key = splitmix64(opts.seed ^ splitmix64(detail::name_key(task.info.name)));

    if (opts.from_scratch) {
        encoder.init(splitmix64(seed_key + 1));
    } else {
        const std::size_t need = encoder.buffer_size();
        CRAM_CHECK(pretrained && pretrained->size() == need, "fine-tuning needs the pretrained parameters (", need,
                   " values) or from_scratch");
        encoder.load_parameters(pretrained->data());
    }
    encoder.zero_grads();
    bert_classifier<C, Backend> head(encoder, labels);
    head.init(splitmix64(seed_key + 2));

    adamw_options ao;
    ao.lr = opts.lr;
    ao.beta1 = opts.beta1;
    ao.beta2 = opts.beta2;
    ao.eps = opts.eps;
    ao.weight_decay = opts.weight_decay;
    ao.clip_norm = opts.clip_norm;
    adamw_state<Backend> enc_opt(ctx, bert<C, Backend>::layout());
    adamw_state<Backend> head_opt(ctx, head.layout());

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
    std::vector<std::int32_t> lab;
    std::vector<float> tgt;
    std::int64_t step = 0;
    for (int epoch = 1; epoch <= epochs; ++epoch) {
        const stopwatch run_clock;
        batches.shuffle(epoch - 1);
        double loss_sum = 0;
        std::size_t loss_examples = 0, pending = 0;
        double last_loss = std::nan("");
        auto read_loss = [&] {
            if (pending == 0) return;
            last_loss = head.take_loss();
            loss_sum += last_loss * double(pending);
            loss_examples += pending;
            pending = 0;
        };
        for (std::int64_t b = 0; b < per_epoch && step < total; ++b) {
            const std::span<const std::size_t> idx = batches.batch(b);
            const std::size_t count = idx.size();
            const host_token_batch hb =
                make_token_batch(task.train, idx.data(), count, std::int32_t(C.pad_id), C.token_types > 0);
            lab.resize(count);
            tgt.resize(count);
            for (std::size_t i = 0; i < count; ++i) {
                lab[i] = task.train_labels[idx[i]];
                tgt[i] = task.train_scores[idx[i]];
            }
            encoder.zero_grads();
            head.zero_grads();
            head.forward_backward(hb.view(), lab.data(), tgt.data(),
                                  forward_options{opts.dropout, splitmix64(seed_key + 1000 + std::uint64_t(step))});
            pending += count;
            float scale = 1.0f;
            if (opts.clip_norm > 0) {
                const double sq = Backend::sum_squares(ctx, encoder.grads(), index_t(encoder.buffer_size())) +
                                  Backend::sum_squares(ctx, head.grads(), index_t(head.buffer_size()));
                scale = clip_scale(std::sqrt(sq), opts.clip_norm);
            }
            const double lr = double(opts.lr) * warmup_cosine_factor(step, total, warmup);
            ++step;
            enc_opt.step(ctx, encoder.params(), encoder.grads(), ao, float(lr), long(step), scale);
            head_opt.step(ctx, head.params(), head.grads(), ao, float(lr), long(step), scale);
            encoder.sync_weights();
            head.sync_weights();
            if (opts.loss_every > 0 && step % opts.loss_every == 0) read_loss();
            if (cb.on_step) cb.on_step({run.task, opts.seed, epoch, epochs, step, total, last_loss, lr});
        }
        read_loss();
        epoch_score rec;
        rec.epoch = epoch;
        rec.steps = step;
        rec.train_loss = loss_examples ? loss_sum / double(loss_examples) : std::nan("");
        for (const auto& d : task.dev)
            rec.dev[d.split] = score_outputs(task.info, predict_split(head, d, labels, opts.eval_batch), d);
        rec.seconds = run_clock.seconds();
        run.epochs.push_back(rec);
        if (cb.on_epoch) cb.on_epoch(run, rec);
    }
    return run;
}

}  // namespace cram::eval
