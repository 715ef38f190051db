// GLUE fine-tuning and report: the warm-up + cosine schedule at chosen steps against its formula,
// medians and both averages on hand-made results, and a small model fine-tuned on the CPU on real SST-2
// beating the majority class on the dev set.
#include <cmath>
#include <numbers>
#include <vector>

#include "cram/cram.hpp"
#include "cram/eval/finetune.hpp"
#include "cram/eval/report.hpp"
#include "test_support.hpp"

using cram::eval::finetune_result;

TEST_CASE("warm-up + cosine factor at chosen steps") {
    // total 100 steps, 10 warm-up steps: factor(s) = (s+1)/10 for s < 10, then 0.5(1 + cos(pi (s+1-10)/90))
    CHECK(cram::eval::warmup_cosine(0, 100, 0.1) == doctest::Approx(0.1));
    CHECK(cram::eval::warmup_cosine(4, 100, 0.1) == doctest::Approx(0.5));
    CHECK(cram::eval::warmup_cosine(9, 100, 0.1) == doctest::Approx(1.0));
    CHECK(cram::eval::warmup_cosine(10, 100, 0.1) == doctest::Approx(0.5 * (1 + std::cos(std::numbers::pi / 90))));
    CHECK(cram::eval::warmup_cosine(54, 100, 0.1) == doctest::Approx(0.5));  // halfway through the decay
    CHECK(cram::eval::warmup_cosine(99, 100, 0.1) == doctest::Approx(0.0).epsilon(1e-12));
}

namespace {
finetune_result result(const std::string& task, std::uint64_t seed,
                       std::map<std::string, std::map<std::string, double>> dev) {
    finetune_result r;
    r.task = task;
    r.seed = seed;
    r.train_examples = 10;
    cram::eval::epoch_record early;  // an earlier epoch that must not be reported
    early.epoch = 1;
    for (auto& [split, m] : dev)
        for (auto& [metric, v] : m) early.dev[split][metric] = 0.0;
    r.epochs.push_back(early);
    cram::eval::epoch_record last;
    last.epoch = 2;
    last.dev = std::move(dev);
    r.epochs.push_back(last);
    return r;
}
}  // namespace

TEST_CASE("report: medians over seeds of the last epoch, cramming and leaderboard averages") {
    std::vector<finetune_result> runs{
        result("RTE", 0, {{"dev", {{"accuracy", 0.50}}}}),
        result("RTE", 1, {{"dev", {{"accuracy", 0.60}}}}),
        result("RTE", 2, {{"dev", {{"accuracy", 0.55}}}}),  // median of {0.50, 0.60, 0.55} = 0.55
        result("MRPC", 0, {{"dev", {{"accuracy", 0.70}, {"f1", 0.80}, {"mcc", 0.1}}}}),
        result("MRPC", 1, {{"dev", {{"accuracy", 0.74}, {"f1", 0.84}, {"mcc", 0.2}}}}),  // even count: mean of two
        result("STS-B", 0, {{"dev", {{"pearson", 0.30}, {"spearman", 0.20}}}}),
    };
    const auto s = cram::eval::summarize(runs);
    REQUIRE(s.size() == 3);
    CHECK(s[0].task == "RTE");
    CHECK(s[0].seeds == 3);
    CHECK(s[0].median_dev.at("dev").at("accuracy") == doctest::Approx(0.55));
    CHECK(s[1].median_dev.at("dev").at("f1") == doctest::Approx(0.82));
    CHECK(s[1].median_dev.at("dev").at("accuracy") == doctest::Approx(0.72));
    // cramming: RTE acc 55, MRPC F1 82, STS-B Pearson 30 -> (55 + 82 + 30) / 3 = 55.667, 3 of 9
    const auto ca = cram::eval::cramming_average(s);
    CHECK(ca.have == 3);
    CHECK(ca.partial());
    CHECK(ca.value == doctest::Approx(167.0 / 3.0));
    // leaderboard: RTE 55, MRPC mean(82, 72) = 77, STS-B mean(30, 20) = 25 -> 157 / 3
    const auto la = cram::eval::leaderboard_average(s);
    CHECK(la.have == 3);
    CHECK(la.value == doctest::Approx(157.0 / 3.0));
    const std::string md = cram::eval::report_markdown(s, "t", "");
    CHECK(md.find("partial: 3 of 9") != std::string::npos);
    CHECK(md.find("crammed BERT, 24 h A6000 (released model)") != std::string::npos);
    const auto j = cram::eval::report_json(s, runs, {});
    CHECK(j["cramming_columns"]["RTE"].get<double>() == doctest::Approx(55.0));
    CHECK(j["published"].size() == 4);
}

TEST_CASE("a small model fine-tuned on SST-2 on the CPU beats the majority class") {
    if (!cram::test::have_shared_data("glue/SST-2/train.tsv")) return;
    const auto glue = cram::test::shared_data() / "glue";
    const auto& info = cram::eval::glue_task("SST-2");
    // a vocabulary from the task's own training text (no pretraining anywhere)
    const auto train = cram::eval::read_glue_split(glue, info, "train");
    cram::data::word_counter counter;
    for (std::size_t i = 0; i < train.examples.size(); i += 3) counter.add_text(train.examples[i].a);
    cram::data::trainer_options to;
    to.vocab_size = 2048;
    const auto vocab = cram::data::train_wordpiece(counter.take(), to);
    const auto dir = cram::test::scratch_dir("sst2_vocab");
    cram::data::write_vocab_files(dir, vocab, cram::data::normalizer_options{}, 128);
    const auto tok = cram::data::wordpiece::load(dir / "vocab.txt");
    const auto task = cram::eval::prepare_task(tok, glue, info, 128);

    constexpr cram::bert_config C{.vocab = 2048, .hidden = 64, .heads = 2, .layers = 2, .intermediate = 256,
                                  .max_seq = 128, .classifier_hidden = 64};
    using backend = cram::cpu::backend<float>;
    backend::context ctx;
    cram::bert<C, backend> encoder(ctx, 32, 128);
    cram::eval::finetune_options o;
    o.from_scratch = true;
    o.epochs = 2;
    o.max_train = 4000;
    o.lr = 1e-3f;  // from scratch a tiny model needs more than the protocol's 4e-5
    const auto r = cram::eval::finetune(encoder, {}, task, o);
    REQUIRE(r.epochs.size() == 2);
    const auto& dev = task.dev.front();
    std::size_t positives = 0;
    for (int y : dev.labels) positives += y == 1;
    const double majority = double(std::max(positives, dev.labels.size() - positives)) / double(dev.labels.size());
    const double acc = r.epochs.back().dev.at("dev").at("accuracy");
    MESSAGE("SST-2 dev accuracy " << acc << " vs majority class " << majority << " (" << r.train_examples
                                  << " training examples, " << r.steps << " steps)");
    CHECK(acc > majority + 0.05);
}
