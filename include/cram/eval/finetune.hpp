// GLUE fine-tuning per CRAMMING.md's protocol, generic over the backend: the pretrained encoder plus
// the GLUE head, AdamW (lr 4e-5, betas (0.9, 0.98), eps 1e-6, no decay), batch 16, 5 epochs, cosine
// decay after a 10% linear warm-up, dropout 0.1; the dev sets are scored after every epoch and the last
// epoch is the reported score. One call fine-tunes one task with one seed.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/rng.hpp"
#include "cram/eval/glue_inputs.hpp"
#include "cram/eval/glue_tasks.hpp"
#include "cram/eval/metrics.hpp"
#include "cram/model/classifier.hpp"
#include "cram/train/optimizer.hpp"

namespace cram::eval {

struct finetune_options {
    int epochs = 5;
    int batch = 16;
    float lr = 4e-5f;
    float warmup = 0.1f;   // share of all steps with a linear warm-up, then cosine decay to 0
    float dropout = 0.1f;  // hidden dropout in the encoder and the head's dropout
    float clip_norm = 0.0f;  // the protocol names no clipping; > 0 clips the global gradient norm
    std::size_t max_train = 0;  // > 0: use only the first N (shuffled) training examples (a protocol deviation)
    int eval_batch = 32;
    std::uint64_t seed = 0;
    bool from_scratch = false;  // random encoder: the no-pretraining baseline
};

// Learning-rate factor at optimizer step `step` (0-based) of `total`: linear warm-up over the first
// warmup*total steps, then cosine decay to zero.
inline double warmup_cosine(std::int64_t step, std::int64_t total, double warmup) {
    const double w = std::floor(warmup * double(total));
    const double s = double(step) + 1.0;
    if (s <= w) return s / w;
    if (total <= w) return 1.0;
    const double pi = 3.14159265358979323846;
    return 0.5 * (1.0 + std::cos(pi * (s - w) / (double(total) - w)));
}

// One task's data, tokenized once and shared by every seed.
struct prepared_task {
    glue_task_info info;
    std::vector<encoded_example> train;
    std::vector<int> train_labels;
    std::vector<float> train_scores;
    struct dev_set {
        std::string split;
        std::vector<encoded_example> examples;
        std::vector<int> labels;
        std::vector<double> scores;
    };
    std::vector<dev_set> dev;
};

template <class Tokenizer>
prepared_task prepare_task(const Tokenizer& tok, const std::filesystem::path& glue_dir, const glue_task_info& info,
                           int max_len = 128) {
    prepared_task t;
    t.info = info;
    const glue_split train = read_glue_split(glue_dir, info, "train");
    for (const auto& ex : train.examples) {
        t.train.push_back(encode_example(tok, ex, max_len));
        t.train_labels.push_back(ex.label);
        t.train_scores.push_back(ex.score);
    }
    for (const auto& split : info.dev_splits) {
        const glue_split dev = read_glue_split(glue_dir, info, split);
        prepared_task::dev_set d;
        d.split = split;
        for (const auto& ex : dev.examples) {
            d.examples.push_back(encode_example(tok, ex, max_len));
            d.labels.push_back(ex.label);
            d.scores.push_back(ex.score);
        }
        t.dev.push_back(std::move(d));
    }
    CRAM_CHECK(!t.train.empty(), "GLUE task ", info.name, ": no training examples in ", glue_dir.string());
    return t;
}

// Every metric the task reports, on one dev split.
inline std::map<std::string, double> score_predictions(const glue_task_info& info, const std::vector<float>& outputs,
                                                       const prepared_task::dev_set& d) {
    std::map<std::string, double> m;
    const std::size_t n = d.examples.size();
    if (info.regression()) {
        const std::vector<double> pred(outputs.begin(), outputs.begin() + std::ptrdiff_t(n));
        m["pearson"] = pearson(pred, d.scores);
        m["spearman"] = spearman(pred, d.scores);
    } else {
        std::vector<int> pred(n);
        for (std::size_t i = 0; i < n; ++i) {
            const float* row = outputs.data() + i * std::size_t(info.num_labels);
            pred[i] = int(std::max_element(row, row + info.num_labels) - row);
        }
        m["accuracy"] = accuracy(pred, d.labels);
        if (info.num_labels == 2) {
            m["f1"] = f1_positive(pred, d.labels);
            m["mcc"] = matthews(pred, d.labels);
        }
    }
    return m;
}

struct epoch_record {
    int epoch = 0;
    double train_loss = 0;
    double seconds = 0;
    std::map<std::string, std::map<std::string, double>> dev;  // split -> metric -> value
};

struct finetune_result {
    std::string task;
    std::uint64_t seed = 0;
    std::size_t train_examples = 0;
    std::int64_t steps = 0;
    std::vector<epoch_record> epochs;  // the last one is the reported score
};

// Called after every epoch (for progress lines and metrics logs).
using epoch_callback = std::function<void(const finetune_result&, const epoch_record&)>;

// Fine-tunes `encoder` (whose parameters are reset to `pretrained`, or initialised randomly when
// opts.from_scratch) with a fresh GLUE head on one task and one seed.
template <bert_config C, class Backend>
finetune_result finetune(bert<C, Backend>& encoder, const std::vector<typename Backend::param_t>& pretrained,
                         const prepared_task& task, const finetune_options& opts, const epoch_callback& on_epoch = {}) {
    auto& ctx = encoder.ctx();
    CRAM_CHECK(opts.batch > 0 && opts.batch <= encoder.max_batch() && opts.eval_batch <= encoder.max_batch(),
               "fine-tuning batch ", opts.batch, " / eval batch ", opts.eval_batch, " exceed the model's max batch ",
               encoder.max_batch());
    CRAM_CHECK(opts.epochs > 0, "epochs must be positive, got ", opts.epochs);
    if (opts.from_scratch)
        encoder.init(opts.seed + 1000);
    else
        encoder.load_parameters(pretrained.data());
    encoder.zero_grads();
    bert_classifier<C, Backend> head(encoder, task.info.num_labels);
    head.init(opts.seed + 2000);
    adamw_options ao;
    ao.lr = opts.lr;
    ao.beta1 = 0.9f;
    ao.beta2 = 0.98f;
    ao.eps = 1e-6f;
    ao.weight_decay = 0.0f;
    ao.clip_norm = opts.clip_norm;
    adamw_state<Backend> enc_opt(ctx, bert<C, Backend>::layout());
    adamw_state<Backend> head_opt(ctx, head.layout());

    // The training subset: a seeded shuffle, then the first max_train (all by default).
    std::vector<std::size_t> order(task.train.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    auto shuffle = [&](std::vector<std::size_t>& v, std::uint32_t stream) {
        const philox_stream rng(opts.seed, stream, 0x61u);
        for (std::size_t i = v.size(); i > 1; --i) {
            const std::uint32_t r = rng.at(std::uint32_t(v.size() - i));
            const std::size_t j = std::size_t((std::uint64_t(r) * i) >> 32);
            std::swap(v[i - 1], v[j]);
        }
    };
    if (opts.max_train > 0 && opts.max_train < order.size()) {
        shuffle(order, 0xFFFFu);
        order.resize(opts.max_train);
    }
    const std::int64_t per_epoch = (std::int64_t(order.size()) + opts.batch - 1) / opts.batch;
    const std::int64_t total = per_epoch * opts.epochs;

    finetune_result res;
    res.task = task.info.name;
    res.seed = opts.seed;
    res.train_examples = order.size();
    std::vector<std::int32_t> labels;
    std::vector<float> scores;
    std::vector<float> outputs;
    for (int epoch = 1; epoch <= opts.epochs; ++epoch) {
        const auto t0 = std::chrono::steady_clock::now();
        shuffle(order, std::uint32_t(epoch));
        double loss_sum = 0;
        for (std::int64_t b = 0; b < per_epoch; ++b) {
            const std::size_t begin = std::size_t(b) * std::size_t(opts.batch);
            const std::size_t count = std::min<std::size_t>(std::size_t(opts.batch), order.size() - begin);
            const host_token_batch hb = make_token_batch(task.train, order.data() + begin, count,
                                                         std::int32_t(C.pad_id));
            labels.resize(count);
            scores.resize(count);
            for (std::size_t i = 0; i < count; ++i) {
                labels[i] = task.train_labels[order[begin + i]];
                scores[i] = task.train_scores[order[begin + i]];
            }
            encoder.zero_grads();
            head.zero_grads();
            const std::uint64_t step_seed = opts.seed * 0x9E3779B97F4A7C15ull + std::uint64_t(res.steps) + 1;
            head.forward_backward(hb.view(), labels.data(), scores.data(), forward_options{opts.dropout, step_seed});
            loss_sum += head.take_loss() * double(count);
            float scale = 1.0f;
            if (opts.clip_norm > 0) {
                const double sq = Backend::sum_squares(ctx, encoder.grads(), index_t(encoder.buffer_size())) +
                                  Backend::sum_squares(ctx, head.grads(), index_t(head.buffer_size()));
                scale = clip_scale(std::sqrt(sq), opts.clip_norm);
            }
            const float lr = float(double(opts.lr) * warmup_cosine(res.steps, total, opts.warmup));
            ++res.steps;
            enc_opt.step(ctx, encoder.params(), encoder.grads(), ao, lr, long(res.steps), scale);
            head_opt.step(ctx, head.params(), head.grads(), ao, lr, long(res.steps), scale);
            encoder.sync_weights();
            head.sync_weights();
        }
        epoch_record rec;
        rec.epoch = epoch;
        rec.train_loss = loss_sum / double(std::max<std::size_t>(1, order.size()));
        for (const auto& d : task.dev) {
            outputs.assign(d.examples.size() * std::size_t(task.info.num_labels), 0.0f);
            std::vector<std::size_t> idx(d.examples.size());
            std::iota(idx.begin(), idx.end(), std::size_t{0});
            for (std::size_t begin = 0; begin < idx.size(); begin += std::size_t(opts.eval_batch)) {
                const std::size_t count = std::min<std::size_t>(std::size_t(opts.eval_batch), idx.size() - begin);
                const host_token_batch hb = make_token_batch(d.examples, idx.data() + begin, count,
                                                             std::int32_t(C.pad_id));
                head.predict(hb.view(), outputs.data() + begin * std::size_t(task.info.num_labels));
            }
            rec.dev[d.split] = score_predictions(task.info, outputs, d);
        }
        rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        res.epochs.push_back(rec);
        if (on_epoch) on_epoch(res, rec);
    }
    return res;
}

}  // namespace cram::eval
