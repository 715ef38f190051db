// GLUE fine-tuning on the GPU through the entry point users run (cram::eval::finetune, as `glue --device cuda`
// calls it): host batches go through batch_upload, encoder and head train in one state. A small synthetic
// task (is token 7 in the sentence?) run from the same random encoder on both backends: the GPU must learn it
// as the CPU oracle does. Also, at compile time: a host batch handed to a CUDA model does not compile.
#include <cstdint>
#include <vector>

#include "cram/cpu/backend.hpp"
#include "cram/cuda/backend.hpp"
#include "cram/eval/finetune.hpp"
#include "cram/eval/glue_tasks.hpp"
#include "cram/model/bert.hpp"
#include "cuda_test_support.hpp"

namespace {

using cram::cuda_test::device_context;
using cram::bert_config;
using gpu = cram::cuda::backend;
using cpu = cram::cpu::backend<float>;
constexpr bert_config tiny{.vocab = 64, .hidden = 32, .heads = 2, .layers = 2, .intermediate = 64, .max_seq = 32};

// The emulated device (docs/cuda.md) runs each kernel thread as a fiber: there the task has half the sentences,
// each 4 to 11 tokens long, at a higher learning rate (48 steps; the CPU oracle learns it at every seed from 1 to
// 10, as it learns the full task, 96 steps at 2e-3, at every seed from 1 to 10).
#if defined(CRAM_CUDA_EMULATED)
constexpr int train_sentences = 256, min_words = 4, word_span = 8;
constexpr float finetune_lr = 1e-2f;
#else
constexpr int train_sentences = 512, min_words = 6, word_span = 20;
constexpr float finetune_lr = 2e-3f;
#endif

// Views are typed by memory space: the CUDA model takes device batches only, the CPU model host ones.
template <class Model, class Batch>
concept encodes = requires(Model& m, const Batch& b) { m.encode(b); };
static_assert(encodes<cram::bert<tiny, gpu>, cram::token_batch<cram::cuda::device_memory>>);
static_assert(!encodes<cram::bert<tiny, gpu>, cram::token_batch<cram::host_memory>>);
static_assert(encodes<cram::bert<tiny, cpu>, cram::token_batch<cram::host_memory>>);
static_assert(!encodes<cram::bert<tiny, cpu>, cram::token_batch<cram::cuda::device_memory>>);

cram::eval::encoded_example sentence(cram::philox_stream& rng, bool with_seven) {
    cram::eval::encoded_example e;
    const int len = min_words + int(rng.next_below(word_span));
    e.ids.push_back(2);  // [CLS]
    for (int i = 0; i < len; ++i) {
        std::int32_t t = 8 + std::int32_t(rng.next_below(tiny.vocab - 8));
        e.ids.push_back(t);
    }
    // up to four 7s: with one among up to 25 tokens, 96 steps at 2e-3 stay on the loss plateau at ln 2 (the CPU
    // oracle as well: majority-class accuracy on dev), so the learning checks below failed on every backend
    if (with_seven)
        for (int r = 0; r < 4; ++r) e.ids[1 + rng.next_below(std::uint32_t(len))] = 7;
    e.ids.push_back(3);  // [SEP]
    e.type_ids.assign(e.ids.size(), 0);
    return e;
}

cram::eval::task_data synthetic_task() {
    cram::eval::task_data t;
    t.info = cram::eval::glue_task("SST-2");  // a binary single-sentence task's metrics and name
    cram::philox_stream rng(31, 0, 0);
    for (int i = 0; i < train_sentences; ++i) {
        const bool y = i % 2 == 0;
        t.train.push_back(sentence(rng, y));
        t.train_labels.push_back(y);
        t.train_scores.push_back(0.0f);
    }
    cram::eval::dev_data d;
    d.split = "dev";
    for (int i = 0; i < 128; ++i) {
        const bool y = i % 3 == 0;
        d.examples.push_back(sentence(rng, y));
        d.labels.push_back(y);
        d.scores.push_back(0.0);
        d.by_length.push_back(std::size_t(i));
    }
    t.dev.push_back(std::move(d));
    return t;
}

TEST_CASE("cuda: eval::finetune learns a synthetic binary task end to end, as the CPU oracle does") {
    CRAM_REQUIRE_GPU();
    const auto task = synthetic_task();
    cram::eval::finetune_options o;
    o.from_scratch = true;
    o.epochs = 3;
    o.lr = finetune_lr;
    o.batch = 16;
    o.eval_batch = 32;
    o.max_len = tiny.max_seq;
    o.seed = 4;
    o.model.classifier_hidden = 32;
    const auto rg = cram::eval::finetune<tiny, gpu>(ctx, nullptr, task, o);
    cpu::context cctx;
    const auto rc = cram::eval::finetune<tiny, cpu>(cctx, nullptr, task, o);
    REQUIRE(rg.epochs.size() == 3);
    REQUIRE(rc.epochs.size() == 3);
    const double acc_g = rg.epochs.back().dev.at("dev").at("accuracy");
    const double acc_c = rc.epochs.back().dev.at("dev").at("accuracy");
    INFO("dev accuracy gpu " << acc_g << " cpu " << acc_c << "; train loss gpu " << rg.epochs.front().train_loss
                             << " -> " << rg.epochs.back().train_loss << ", cpu " << rc.epochs.front().train_loss
                             << " -> " << rc.epochs.back().train_loss);
    // the same initial model (same seed) on both: the first epoch's loss agrees up to bf16 noise
    CHECK(std::abs(rg.epochs.front().train_loss - rc.epochs.front().train_loss) <=
          0.05 * rc.epochs.front().train_loss);
    CHECK(rg.epochs.back().train_loss < rg.epochs.front().train_loss);
    CHECK(acc_g > 0.8);  // the majority class is 2/3
    CHECK(std::abs(acc_g - acc_c) <= 0.1);
}

}  // namespace
