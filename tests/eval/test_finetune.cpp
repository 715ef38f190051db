// GLUE fine-tuning: the warm-up + cosine schedule at chosen steps against its formula worked out by hand,
// the training subset, scoring of logits, and a small model fine-tuned on the CPU on real SST-2 that must
// beat the majority class on the dev set (from scratch: no pretraining needed at this scale, see docs/glue.md).
#include <chrono>
#include <cmath>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "cram/cpu/backend.hpp"
#include "cram/data/wordpiece_trainer.hpp"
#include "cram/eval/finetune.hpp"
#include "cram/model/presets.hpp"
#include "test_support.hpp"

using namespace cram::eval;

TEST_CASE("warm-up + cosine schedule (Hugging Face's get_cosine_schedule_with_warmup)") {
    // 100 steps, 10% warm-up = 10 steps: factor s/10 for s < 10, then 0.5 (1 + cos(pi (s - 10) / 90))
    CHECK(warmup_steps(100, 0.1) == 10);
    CHECK(warmup_steps(101, 0.1) == 11);  // ceil, as TrainingArguments.get_warmup_steps
    CHECK(warmup_cosine_factor(0, 100, 10) == 0.0);
    CHECK(warmup_cosine_factor(5, 100, 10) == doctest::Approx(0.5));
    CHECK(warmup_cosine_factor(10, 100, 10) == doctest::Approx(1.0));
    CHECK(warmup_cosine_factor(55, 100, 10) == doctest::Approx(0.5));  // halfway through the decay: cos(pi/2) = 0
    CHECK(warmup_cosine_factor(40, 100, 10) == doctest::Approx(0.75));  // cos(pi/3) = 0.5
    CHECK(warmup_cosine_factor(99, 100, 10) == doctest::Approx(0.5 * (1 + std::cos(M_PI * 89.0 / 90.0))));
    CHECK(warmup_cosine_factor(100, 100, 10) == doctest::Approx(0.0));
    CHECK(warmup_cosine_factor(3, 4, 0) == doctest::Approx(0.5 * (1 + std::cos(M_PI * 0.75))));
}

TEST_CASE("training subset: all by default, a fixed subset shared by every seed otherwise") {
    const auto all = training_subset(10, 0);
    CHECK(all == std::vector<std::size_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    const auto some = training_subset(1000, 100);
    CHECK(some.size() == 100);
    CHECK(std::set<std::size_t>(some.begin(), some.end()).size() == 100);
    CHECK(some.back() < 1000);
    CHECK(some != training_subset(1000, 1000));  // not simply the first 100 rows
    CHECK(some.back() > 100);
    CHECK(some == training_subset(1000, 100));
}

TEST_CASE("scoring: argmax of logits, regression outputs as predictions") {
    dev_data d;
    d.examples.resize(4);
    d.labels = {1, 0, 1, 1};
    // logits (2 per example): argmax 1, 0, 0, 1 -> tp 2, fn 1, tn 1, fp 0
    const auto m = score_outputs(glue_task("MRPC"), {0.1f, 0.9f, 2.f, -1.f, 0.3f, 0.2f, -5.f, 5.f}, d);
    CHECK(m.at("accuracy") == doctest::Approx(0.75));
    CHECK(m.at("f1") == doctest::Approx(0.8));                        // 4 / (4 + 0 + 1)
    CHECK(m.at("mcc") == doctest::Approx(2.0 / std::sqrt(12.0)));  // (2*1 - 0*1) / sqrt(2 * 3 * 1 * 2)
    dev_data r;
    r.examples.resize(3);
    r.scores = {0.0, 2.5, 5.0};
    const auto s = score_outputs(glue_task("STS-B"), {1.f, 2.f, 4.f}, r);
    CHECK(s.at("spearman") == doctest::Approx(1.0));
    CHECK(s.at("pearson") < 1.0);
    CHECK_THROWS_AS(score_outputs(glue_task("MRPC"), {0.f, 1.f}, d), cram::error);
}

namespace {

// SST-2 tokenized with a 2048-token vocabulary from a third of its own training text (no pretraining anywhere).
task_data sst2_task() {
    const auto glue = cram::test::shared_data() / "glue";
    const auto& info = glue_task("SST-2");
    const auto train = read_glue_split(glue, info, "train");
    cram::data::word_counter counter;
    for (std::size_t i = 0; i < train.examples.size(); i += 3) counter.add_text(train.examples[i].a);
    cram::data::trainer_options to;
    to.vocab_size = 2048;
    const auto vocab = cram::data::train_wordpiece(counter.take(), to);
    const auto dir = cram::test::scratch_dir("sst2_vocab");
    cram::data::write_vocab_files(dir, vocab, cram::data::normalizer_options{}, 128);
    const auto tok = cram::data::wordpiece::load(dir / "vocab.txt");
    return load_task(tok, glue, info, 128);
}

constexpr cram::bert_config sst2_model{.vocab = 2048, .hidden = 64, .heads = 2, .layers = 2, .intermediate = 256,
                                       .max_seq = 128, .norm = cram::norm_placement::pre,
                                       .ffn = cram::ffn_kind::gelu_glu,
                                       .positions = cram::position_kind::scaled_sinusoidal};

// sst2_model from scratch with a 64-wide head at lr 1e-3 (a tiny model far from the protocol's pretrained 4e-5).
finetune_options from_scratch_options(int epochs, std::size_t max_train) {
    finetune_options o;
    o.model.classifier_hidden = 64;
    o.from_scratch = true;
    o.epochs = epochs;
    o.max_train = max_train;
    o.lr = 1e-3f;
    return o;
}

}  // namespace

TEST_CASE("a small model fine-tuned on SST-2 on the CPU beats the majority class on dev") {
    if (!cram::test::have_shared_data("glue/SST-2/train.tsv")) return;
    const auto t0 = std::chrono::steady_clock::now();
    const task_data task = sst2_task();
    REQUIRE(task.dev.size() == 1);
    REQUIRE(task.dev[0].examples.size() == 872);

    constexpr cram::bert_config C = sst2_model;
    using backend = cram::cpu::backend<float>;
    backend::context ctx;
    finetune_options o = from_scratch_options(2, 4000);
    int epochs_seen = 0;
    finetune_callbacks cb;
    cb.on_epoch = [&](const finetune_run&, const epoch_score&) { ++epochs_seen; };
    const auto r = finetune<C, backend>(ctx, nullptr, task, o, cb);
    REQUIRE(r.epochs.size() == 2);
    CHECK(epochs_seen == 2);
    CHECK(r.train_examples == 4000);
    CHECK(r.total_steps == 500);
    const auto& dev = task.dev.front();
    std::size_t positives = 0;
    for (int y : dev.labels) positives += y == 1;
    const double majority = double(std::max(positives, dev.labels.size() - positives)) / double(dev.labels.size());
    const double acc = r.epochs.back().dev.at("dev").at("accuracy");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("SST-2 dev accuracy " << acc << " vs majority class " << majority << " (" << r.train_examples
                                  << " training examples, " << r.total_steps << " steps, train loss "
                                  << r.epochs.back().train_loss << ", " << secs << " s)");
    CHECK(std::isfinite(r.epochs.back().train_loss));
    CHECK(r.epochs.back().train_loss < r.epochs.front().train_loss);
    CHECK(acc > majority + 0.05);
}

TEST_CASE("fine-tuning defaults follow the original's GLUE runs: dropout 0.1, attention dropout 0.1") {
    const finetune_options o;
    CHECK(o.dropout == 0.1f);
    CHECK(o.attention_dropout == 0.1f);  // eval_in_train_mode keeps the attention-probability dropout on
    CHECK(o.weight_decay == 0.0f);
}

TEST_CASE("STS-B head: the loss is the mean squared error and its gradient 2 (pred - target) / n, by hand") {
    // The original's regression loss is torch.nn.MSELoss (mean of squares); 0.5 * squared error would halve
    // the gradient. The output bias enters every prediction with weight 1, so its gradient is
    // sum_i 2 (pred_i - target_i) / n, and the loss is sum_i (pred_i - target_i)^2 / n.
    constexpr cram::bert_config C = cram::presets::test_pre_glu;
    using backend = cram::cpu::backend<double>;
    backend::context ctx;
    finetune_model<C, backend> m(ctx, 1, 3, 6, cram::presets::test_pre_glu_options);
    m.start(nullptr, 1, 2);
    cram::host_labeled_batch lb;
    lb.tokens.batch = 3;
    lb.tokens.seq = 6;
    for (int i = 0; i < 18; ++i) lb.tokens.ids.push_back(5 + i % 7);
    lb.tokens.lengths = {6, 4, 2};
    lb.targets = {0.5f, 4.0f, 2.25f};
    std::vector<float> pred(3);
    m.head.predict(lb.tokens.view(), pred.data());
    double want_loss = 0, want_dbias = 0;
    for (int i = 0; i < 3; ++i) {
        const double d = double(pred[std::size_t(i)]) - double(lb.targets[std::size_t(i)]);
        want_loss += d * d / 3;
        want_dbias += 2 * d / 3;
    }
    m.state.zero_grads();
    m.head.forward_backward(lb.view(), cram::forward_options{});  // no dropout: the same outputs as predict
    CHECK(m.head.take_loss() == doctest::Approx(want_loss).epsilon(1e-5));
    const auto* bias = m.state.layout().find("classifier.out.bias");
    REQUIRE(bias);
    CHECK(m.state.grads()[bias->offset] == doctest::Approx(want_dbias).epsilon(1e-5));
}

TEST_CASE("fine-tuning with fp16's loss scaling: a power-of-two scale is undone exactly; overflows skip and back off") {
    if (!cram::test::have_shared_data("glue/SST-2/train.tsv")) return;
    const task_data task = sst2_task();
    using backend = cram::cpu::backend<float>;
    auto run = [&](std::optional<cram::train::loss_scaler_options> scaling) {
        backend::context ctx;
        finetune_options o = from_scratch_options(1, 256);
        o.loss_every = 1;
        o.loss_scaling = scaling;
        std::vector<double> losses;
        finetune_callbacks cb;
        cb.on_step = [&](const finetune_progress& p) { losses.push_back(p.loss); };
        const auto r = finetune<sst2_model, backend>(ctx, nullptr, task, o, cb);
        return std::pair{r, losses};
    };
    const auto [plain, plain_losses] = run(std::nullopt);
    const auto [scaled, scaled_losses] = run(cram::train::loss_scaler_options{.init_scale = 1024});
    REQUIRE(plain_losses.size() == 16);  // 256 examples in batches of 16
    CHECK(scaled_losses == plain_losses);  // every step's loss, bit for bit
    CHECK(scaled.epochs.back().dev.at("dev").at("accuracy") == plain.epochs.back().dev.at("dev").at("accuracy"));
    CHECK(scaled.overflow_steps == 0);
    // a scale of 2^135 is beyond fp32 itself (its largest power of two is 2^127): the gradients of the first steps
    // are not finite, each is skipped and halves the scale, 2^135 ... 2^128 (eight steps), and from 2^127 on they
    // fit (a run that starts at 2^127 has no overflow at all); the schedule still spans the run, and training
    // ends with finite numbers
    const auto [forced, forced_losses] = run(cram::train::loss_scaler_options{.init_scale = 0x1p135});
    CHECK(forced.overflow_steps >= 8);
    CHECK(forced.overflow_steps < 16);
    CHECK(forced.total_steps == plain.total_steps);
    CHECK(std::isfinite(forced.epochs.back().train_loss));
    CHECK(std::isfinite(forced.epochs.back().dev.at("dev").at("accuracy")));
}
