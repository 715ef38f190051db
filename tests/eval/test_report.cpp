// The GLUE report on hand-made results (medians of the last epoch, both averages worked out by hand,
// partial labels), a checkpoint written by the trainer's code read back by load_encoder, and a whole
// evaluate_glue run on tiny hand-made tasks (files written, a missing task named, deviations listed).
#include <fstream>

#include "cram/cpu/backend.hpp"
#include "cram/data/wordpiece.hpp"
#include "cram/eval/glue.hpp"
#include "cram/model/presets.hpp"
#include "test_support.hpp"

using namespace cram::eval;

namespace {
finetune_run run_of(const std::string& task, std::uint64_t seed, std::map<std::string, std::map<std::string, double>> dev) {
    finetune_run r;
    r.task = task;
    r.seed = seed;
    r.train_examples = 10;
    epoch_score early;  // an earlier epoch with different scores: must not be reported
    early.epoch = 1;
    for (auto& [split, m] : dev)
        for (auto& [metric, v] : m) early.dev[split][metric] = -0.5;
    r.epochs.push_back(early);
    epoch_score last;
    last.epoch = 2;
    last.dev = std::move(dev);
    r.epochs.push_back(last);
    return r;
}
}  // namespace

TEST_CASE("report: medians of the last epoch, cramming and leaderboard averages by hand") {
    glue_report rep;
    rep.tasks.push_back(summarize_task("RTE", {run_of("RTE", 0, {{"dev", {{"accuracy", 0.50}}}}),
                                               run_of("RTE", 1, {{"dev", {{"accuracy", 0.60}}}}),
                                               run_of("RTE", 2, {{"dev", {{"accuracy", 0.55}}}})}));
    rep.tasks.push_back(summarize_task("MRPC", {run_of("MRPC", 0, {{"dev", {{"accuracy", 0.70}, {"f1", 0.80}}}}),
                                                run_of("MRPC", 1, {{"dev", {{"accuracy", 0.74}, {"f1", 0.84}}}})}));
    rep.tasks.push_back(summarize_task("STS-B", {run_of("STS-B", 0, {{"dev", {{"pearson", 0.30}, {"spearman", 0.20}}}})}));
    rep.tasks.push_back(summarize_task(
        "MNLI", {run_of("MNLI", 0, {{"dev_matched", {{"accuracy", 0.40}}}, {"dev_mismatched", {{"accuracy", 0.44}}}})}));
    CHECK(rep.tasks[0].median.at("dev").at("accuracy") == doctest::Approx(0.55));  // median of 0.50 0.60 0.55
    CHECK(rep.tasks[1].median.at("dev").at("f1") == doctest::Approx(0.82));        // even count: mean of the middle two
    CHECK(median({3, 1, 2, 10}) == doctest::Approx(2.5));
    // cramming: MNLI-m 40, MNLI-mm 44, STS-B 30, RTE 55, MRPC F1 82 -> 251 / 5 = 50.2, 5 of 9
    const auto ca = cramming_average(rep.tasks);
    CHECK(ca.have == 5);
    CHECK(ca.partial());
    CHECK(ca.value == doctest::Approx(50.2));
    CHECK(ca.missing == std::vector<std::string>{"SST-2", "QNLI", "QQP", "CoLA"});
    // leaderboard: MRPC (82 + 72) / 2 = 77, STS-B (30 + 20) / 2 = 25, MNLI (40 + 44) / 2 = 42, RTE 55 -> 199 / 4
    const auto la = leaderboard_average(rep.tasks);
    CHECK(la.have == 4);
    CHECK(la.value == doctest::Approx(199.0 / 4.0));
    const std::string md = report_markdown(rep);
    CHECK(md.find("50.2 (partial: 5 of 9)") != std::string::npos);
    CHECK(md.find("49.8 (partial: 4 of 8)") != std::string::npos);
    CHECK(md.find("crammed BERT, 24 h A6000 (released model)") != std::string::npos);
    // the released model over the same five columns: (84.1 + 84.6 + 87.4 + 58.5 + 88.9) / 5 = 80.7
    CHECK(md.find("| 80.7 | 80.7 |") != std::string::npos);
    // BERT-base no pretraining, same columns: (34.1 + 34.1 + 17.8 + 47.3 + 77.9) / 5 = 42.24
    CHECK(md.find("| 45.5 | 42.2 |") != std::string::npos);
    const auto j = report_json(rep);
    CHECK(j["cramming"]["columns"]["RTE"].get<double>() == doctest::Approx(55.0));
    CHECK(j["cramming"]["average"]["partial"].get<bool>());
    CHECK(j["leaderboard"]["tasks"]["MNLI"].get<double>() == doctest::Approx(42.0));
    CHECK(j["published"].size() == 4);
    CHECK(j["protocol_followed"].get<bool>());

    // all nine columns: no "partial"
    glue_report full;
    for (const char* t : {"SST-2", "QNLI", "RTE"}) full.tasks.push_back(summarize_task(t, {run_of(t, 0, {{"dev", {{"accuracy", 0.9}}}})}));
    full.tasks.push_back(summarize_task("QQP", {run_of("QQP", 0, {{"dev", {{"accuracy", 0.9}, {"f1", 0.9}}}})}));
    full.tasks.push_back(summarize_task("MRPC", {run_of("MRPC", 0, {{"dev", {{"accuracy", 0.9}, {"f1", 0.9}}}})}));
    full.tasks.push_back(summarize_task("CoLA", {run_of("CoLA", 0, {{"dev", {{"mcc", 0.9}}}})}));
    full.tasks.push_back(summarize_task("STS-B", {run_of("STS-B", 0, {{"dev", {{"pearson", 0.9}, {"spearman", 0.9}}}})}));
    full.tasks.push_back(summarize_task(
        "MNLI", {run_of("MNLI", 0, {{"dev_matched", {{"accuracy", 0.9}}}, {"dev_mismatched", {{"accuracy", 0.9}}}})}));
    CHECK_FALSE(cramming_average(full.tasks).partial());
    CHECK(cramming_average(full.tasks).value == doctest::Approx(90.0));
    CHECK(leaderboard_average(full.tasks).value == doctest::Approx(90.0));
    CHECK(report_markdown(full).find("partial") == std::string::npos);
}

TEST_CASE("load_encoder reads a checkpoint written by the trainer's save_checkpoint") {
    constexpr auto C = cram::presets::test_pre_glu;
    const auto& layout = cram::bert_layout<C>();
    std::vector<float> params(layout.buffer_size());
    cram::init_parameters(params.data(), layout, 7, cram::presets::test_pre_glu_options.init_std, C.hidden,
                          cram::presets::test_pre_glu_options.pad_id);
    const std::vector<float> zeros(layout.buffer_size(), 0.0f);
    const auto dir = cram::test::scratch_dir("glue_ckpt");
    cram::train::save_checkpoint(dir / "checkpoints", 12, layout, params.data(), zeros.data(), zeros.data(),
                                 nlohmann::json{{"step", 12}}, 2);
    const auto from_run = load_encoder<C>(dir);  // a run directory: its newest checkpoint
    CHECK(from_run == params);
    CHECK(load_encoder<C>(dir / "checkpoints" / "step-00000012") == params);
    CHECK_THROWS_WITH_AS(load_encoder<C>(dir / "nothing"), doctest::Contains("neither a checkpoint directory"),
                         cram::error);
    // another architecture's checkpoint: a clear error, not garbage weights
    constexpr auto other = cram::presets::test_post_biases;
    CHECK_THROWS_AS(load_encoder<other>(dir), cram::error);
}

TEST_CASE("evaluate_glue: tiny hand-made tasks end to end, files, missing task, deviations") {
    const auto dir = cram::test::scratch_dir("glue_eval_e2e");
    const auto glue = dir / "glue";
    std::filesystem::create_directories(glue / "RTE");
    std::filesystem::create_directories(glue / "STS-B");
    std::ofstream vocab(dir / "vocab.txt");
    for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "a", "b"}) vocab << t << "\n";
    vocab.close();
    {
        std::ofstream rte(glue / "RTE" / "train.tsv");
        rte << "index\tsentence1\tsentence2\tlabel\n";
        for (int i = 0; i < 40; ++i)
            rte << i << "\ta movie\t" << (i % 2 ? "good" : "bad") << "\t" << (i % 2 ? "entailment" : "not_entailment") << "\n";
        rte.close();
        std::filesystem::copy_file(glue / "RTE" / "train.tsv", glue / "RTE" / "dev.tsv");
        std::ofstream sts(glue / "STS-B" / "train.tsv");
        sts << "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
        for (int i = 0; i < 24; ++i)
            sts << i << "\tg\tf\t2012\t0\tnone\tnone\ta\t" << (i % 3 ? "good" : "bad") << "\t" << (i % 3) * 2.0 << "\n";
        sts.close();
        std::filesystem::copy_file(glue / "STS-B" / "train.tsv", glue / "STS-B" / "dev.tsv");
    }
    const auto tok = cram::data::wordpiece::load(dir / "vocab.txt");
    constexpr auto C = cram::presets::test_pre_glu;  // vocab 23, max_seq 8: enough for these inputs
    using backend = cram::cpu::backend<float>;
    backend::context ctx;
    glue_eval_options o;
    o.glue_dir = glue;
    o.out = dir / "out";
    o.tasks = {"RTE", "STS-B", "CoLA"};
    o.seeds = 2;
    o.finetune.model = cram::presets::test_pre_glu_options;
    o.finetune.from_scratch = true;
    o.finetune.epochs = 2;
    o.finetune.max_len = 8;
    o.finetune.max_steps = 3;
    o.finetune.eval_batch = 16;
    o.quiet = true;
    const auto rep = evaluate_glue<C, backend>(ctx, nullptr, tok, o);
    REQUIRE(rep.tasks.size() == 2);
    CHECK(rep.tasks[0].runs.size() == 2);
    CHECK(rep.tasks[0].runs[0].total_steps == 3);       // capped
    CHECK(rep.tasks[0].runs[0].epochs.size() == 1);     // 40 / 16 -> 3 steps per epoch: one epoch
    CHECK(rep.tasks[1].runs[0].epochs.size() == 2);     // 24 / 16 -> 2 steps per epoch: epochs of 2 and 1
    REQUIRE(rep.missing.size() == 1);
    CHECK(rep.missing[0].first == "CoLA");
    CHECK(std::find_if(rep.deviations.begin(), rep.deviations.end(), [](const std::string& s) {
              return s.find("at most 3 optimizer steps") != std::string::npos;
          }) != rep.deviations.end());
    for (const char* f : {"report.md", "report.json", "glue_metrics.jsonl"}) CHECK(std::filesystem::exists(o.out / f));
    const auto j = cram::train::read_json_file(o.out / "report.json");
    CHECK(j["tasks"].contains("RTE"));
    CHECK(j["tasks"]["STS-B"]["median"]["dev"].contains("pearson"));
    CHECK_FALSE(j["protocol_followed"].get<bool>());
    CHECK(j["missing"].contains("CoLA"));
    std::ifstream lines(o.out / "glue_metrics.jsonl");
    int epochs = 0, summaries = 0;
    for (std::string l; std::getline(lines, l);) {
        const auto e = nlohmann::json::parse(l);
        epochs += e["event"] == "epoch";
        summaries += e["event"] == "summary";
    }
    CHECK(epochs == 2 * 1 + 2 * 2);
    CHECK(summaries == 1);
}
