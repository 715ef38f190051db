// Interrupting and resuming a GLUE evaluation (evaluate_glue): a stop requested after K optimizer steps
// (cram::request_stop, as the signal handler does) discards the run in progress and writes a partial report
// that claims no average; --resume continues from glue_metrics.jsonl and ends with the same scores as an
// evaluation never interrupted, run in the same test. Also: settings mismatch and existing results refused,
// a trailing partial line dropped, the output directory locked, finetune's should_stop.
#include <csignal>
#include <fstream>
#include <sstream>

#include "cram/core/dir_lock.hpp"
#include "cram/core/signals.hpp"
#include "cram/cpu/backend.hpp"
#include "cram/data/wordpiece.hpp"
#include "cram/eval/glue.hpp"
#include "cram/model/presets.hpp"
#include "test_support.hpp"

using namespace cram::eval;

namespace {

constexpr auto C = cram::presets::test_pre_glu;  // vocab 23, max_seq 8
using backend = cram::cpu::backend<float>;

// RTE (40 rows: 3 steps per epoch at batch 16) and STS-B (24 rows: 2 steps per epoch), train = dev.
std::filesystem::path write_tiny_glue(const std::filesystem::path& dir) {
    const auto glue = dir / "glue";
    std::filesystem::create_directories(glue / "RTE");
    std::filesystem::create_directories(glue / "STS-B");
    std::ofstream vocab(dir / "vocab.txt");
    for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie", "a", "b"}) vocab << t << "\n";
    vocab.close();
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
    return glue;
}

glue_eval_options tiny_options(const std::filesystem::path& glue, const std::filesystem::path& out) {
    glue_eval_options o;
    o.glue_dir = glue;
    o.out = out;
    o.tasks = {"RTE", "STS-B"};
    o.seeds = 2;
    o.first_seed = 3;
    o.finetune.model = cram::presets::test_pre_glu_options;
    o.finetune.from_scratch = true;
    o.finetune.epochs = 2;  // RTE 6 steps per run, STS-B 4: 20 steps in all
    o.finetune.max_len = 8;
    o.finetune.eval_batch = 16;
    o.finetune.lr = 1e-2f;  // scores that move, so equal medians mean something
    o.settings = {{"checkpoint", ""}, {"preset", "test_pre_glu"}, {"vocab", "tiny"}, {"backend", "cpu"}};
    o.quiet = true;
    return o;
}

// Evaluates with a stop requested after `stop_after` optimizer steps of this call (0: never); counts steps.
glue_report evaluate(const glue_eval_options& base, bool resume, int stop_after, int* steps = nullptr) {
    const auto tok = cram::data::wordpiece::load(base.glue_dir.parent_path() / "vocab.txt");
    backend::context ctx;
    glue_eval_options o = base;
    o.resume = resume;
    int seen = 0;
    o.on_step = [&](const finetune_progress&) {
        if (++seen == stop_after) cram::request_stop(SIGTERM);
    };
    cram::request_stop(0);  // as stop_on_signals does when installed
    glue_report r;
    try {
        r = evaluate_glue<C, backend>(ctx, nullptr, tok, o);
    } catch (...) {
        cram::request_stop(0);
        throw;
    }
    cram::request_stop(0);
    if (steps) *steps = seen;
    return r;
}

std::string read_text(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<nlohmann::json> read_lines(const std::filesystem::path& p) {
    std::vector<nlohmann::json> out;
    std::ifstream in(p);
    for (std::string l; std::getline(in, l);)
        if (!l.empty()) out.push_back(nlohmann::json::parse(l));
    return out;
}

int count_events(const std::vector<nlohmann::json>& lines, const std::string& event) {
    int n = 0;
    for (const auto& l : lines) n += l["event"] == event;
    return n;
}

using cram::test::error_of;

}  // namespace

TEST_CASE("glue resume: interrupted twice, resumed, same scores as an uninterrupted evaluation") {
    const auto dir = cram::test::scratch_dir("glue_resume");
    const auto glue = write_tiny_glue(dir);

    // the reference: one uninterrupted evaluation
    int ref_steps = 0;
    const glue_report ref = evaluate(tiny_options(glue, dir / "ref"), false, 0, &ref_steps);
    CHECK(ref_steps == 2 * 6 + 2 * 4);
    REQUIRE(ref.tasks.size() == 2);
    CHECK_FALSE(ref.interrupted());
    const nlohmann::json ref_json = report_json(ref);
    CHECK(ref_json["complete"].get<bool>());
    CHECK(ref_json["cramming"]["average"]["value"].is_number());

    const auto o = tiny_options(glue, dir / "out");
    // 1. stopped at step 8: RTE seed 3 done (6 steps), seed 4 cut after 2 steps and discarded
    const glue_report p1 = evaluate(o, false, 8);
    REQUIRE(p1.interrupted());
    CHECK(p1.interruption.signal == SIGTERM);
    CHECK(p1.interruption.signal_name == "SIGTERM");
    CHECK(p1.interruption.runs_done == 1);
    CHECK(p1.interruption.runs_total == 4);
    CHECK(p1.tasks.empty());
    REQUIRE(p1.incomplete.size() == 2);
    CHECK(p1.incomplete[0].task == "RTE");
    CHECK(p1.incomplete[0].runs.size() == 1);
    CHECK(p1.incomplete[1].task == "STS-B");
    CHECK(p1.incomplete[1].runs.empty());
    {
        const std::string md = read_text(o.out / "report.md");
        CHECK(md.find("(interrupted, partial)") != std::string::npos);
        CHECK(md.find("Interrupted by SIGTERM: 1 of 4 runs complete; continue with the same command with --resume") !=
              std::string::npos);
        CHECK(md.find("RTE: 1 of 2 seeds complete") != std::string::npos);
        CHECK(md.find("STS-B: 0 of 2 seeds complete") != std::string::npos);
        CHECK(md.find("**No average:**") != std::string::npos);
        CHECK(md.find("partial: ") == std::string::npos);  // no "partial: k of 9" average claimed
        const auto j = cram::train::read_json_file(o.out / "report.json");
        CHECK_FALSE(j["complete"].get<bool>());
        CHECK(j["interrupted"]["signal"] == "SIGTERM");
        CHECK(j["interrupted"]["runs_done"] == 1);
        CHECK(j["interrupted"]["runs_total"] == 4);
        CHECK(j["interrupted"]["message"].get<std::string>().find("1 of 4 runs complete; continue with") != std::string::npos);
        CHECK(j["cramming"]["average"]["value"].is_null());
        CHECK(j["leaderboard"]["average"]["value"].is_null());
        CHECK(j["cramming"]["average"].contains("withheld"));
        CHECK(j["incomplete"]["RTE"]["seeds_done"] == 1);
        CHECK(j["incomplete"]["STS-B"]["seeds_done"] == 0);
        const auto lines = read_lines(o.out / "glue_metrics.jsonl");
        CHECK(lines.front()["event"] == "settings");
        CHECK(count_events(lines, "run") == 1);
        CHECK(count_events(lines, "summary") == 0);
        REQUIRE(lines.back()["event"] == "interrupted");
        CHECK(lines.back()["signal"] == "SIGTERM");
        CHECK(lines.back()["discarded"]["task"] == "RTE");
        CHECK(lines.back()["discarded"]["seed"] == 4);
    }

    // 2. without --resume the directory is refused, naming the way on
    const std::string refused = error_of([&] { evaluate(o, false, 0); });
    CHECK(refused.find("--resume") != std::string::npos);
    CHECK(refused.find("another --out") != std::string::npos);

    // a kill in the middle of a write leaves a partial line: --resume drops it
    { std::ofstream(o.out / "glue_metrics.jsonl", std::ios::app | std::ios::binary) << "{\"event\":\"epoch\",\"task\":\"RT"; }

    // 3. resumed, stopped again after 8 steps of this call: RTE seed 4 (6 steps) completes the task, STS-B
    // seed 3 is cut after 2
    int steps2 = 0;
    const glue_report p2 = evaluate(o, true, 8, &steps2);
    CHECK(steps2 == 8);
    REQUIRE(p2.interrupted());
    CHECK(p2.interruption.runs_done == 2);
    REQUIRE(p2.tasks.size() == 1);
    CHECK(p2.tasks[0].task == "RTE");
    CHECK(p2.tasks[0].median == ref.tasks[0].median);  // a complete task's median is final
    REQUIRE(p2.incomplete.size() == 1);
    CHECK(p2.incomplete[0].task == "STS-B");
    CHECK(read_text(o.out / "glue_metrics.jsonl").find("\"RT{") == std::string::npos);
    CHECK(report_json(p2)["cramming"]["columns"]["RTE"] == ref_json["cramming"]["columns"]["RTE"]);
    CHECK(report_json(p2)["cramming"]["average"]["value"].is_null());

    // 4. resumed to the end: only STS-B's two runs are trained (8 steps), the report equals the reference's
    int steps3 = 0;
    const glue_report done = evaluate(o, true, 0, &steps3);
    CHECK(steps3 == 2 * 4);
    CHECK_FALSE(done.interrupted());
    REQUIRE(done.tasks.size() == ref.tasks.size());
    for (std::size_t i = 0; i < ref.tasks.size(); ++i) {
        CAPTURE(ref.tasks[i].task);
        CHECK(done.tasks[i].task == ref.tasks[i].task);
        CHECK(done.tasks[i].median == ref.tasks[i].median);
        REQUIRE(done.tasks[i].runs.size() == ref.tasks[i].runs.size());
        for (std::size_t k = 0; k < ref.tasks[i].runs.size(); ++k) {
            CHECK(done.tasks[i].runs[k].seed == ref.tasks[i].runs[k].seed);
            CHECK(done.tasks[i].runs[k].epochs.size() == ref.tasks[i].runs[k].epochs.size());
            CHECK(done.tasks[i].runs[k].epochs.back().dev == ref.tasks[i].runs[k].epochs.back().dev);
            CHECK(done.tasks[i].runs[k].epochs.back().train_loss == ref.tasks[i].runs[k].epochs.back().train_loss);
        }
    }
    const nlohmann::json dj = report_json(done);
    CHECK(dj["cramming"] == ref_json["cramming"]);
    CHECK(dj["leaderboard"] == ref_json["leaderboard"]);
    CHECK(dj["complete"].get<bool>());
    CHECK_FALSE(dj.contains("interrupted"));
    CHECK(dj["incomplete"].empty());
    {
        const auto lines = read_lines(o.out / "glue_metrics.jsonl");
        CHECK(count_events(lines, "run") == 4);
        CHECK(count_events(lines, "interrupted") == 2);
        CHECK(count_events(lines, "resume") == 2);
        CHECK(count_events(lines, "summary") == 1);
        const auto file_json = cram::train::read_json_file(o.out / "report.json");
        CHECK(file_json["cramming"] == ref_json["cramming"]);
        CHECK(read_text(o.out / "report.md").find("interrupted") == std::string::npos);
    }

    // 5. a complete evaluation: refused without --resume, which rewrites the report without training
    CHECK(error_of([&] { evaluate(o, false, 0); }).find("complete results") != std::string::npos);
    int steps4 = -1;
    const glue_report again = evaluate(o, true, 0, &steps4);
    CHECK(steps4 == 0);
    CHECK(report_json(again)["cramming"] == ref_json["cramming"]);
}

TEST_CASE("glue resume: other settings are refused, naming the keys; the output directory is locked") {
    const auto dir = cram::test::scratch_dir("glue_resume_settings");
    const auto glue = write_tiny_glue(dir);
    auto o = tiny_options(glue, dir / "out");
    o.tasks = {"STS-B"};
    o.seeds = 1;
    const glue_report p = evaluate(o, false, 2);
    REQUIRE(p.interrupted());
    CHECK(p.interruption.runs_done == 0);

    auto other = o;
    other.finetune.lr = 2e-2f;
    other.settings["checkpoint"] = "/elsewhere/step-00000010";
    const std::string err = error_of([&] { evaluate(other, true, 0); });
    CHECK(err.find("other settings") != std::string::npos);
    CHECK(err.find("finetune.lr") != std::string::npos);
    CHECK(err.find("checkpoint") != std::string::npos);
    CHECK(err.find("/elsewhere/step-00000010") != std::string::npos);
    CHECK(err.find("preset") == std::string::npos);  // only the keys that differ
    // without --resume the same refusal: its runs could not be reused either way
    CHECK(error_of([&] { evaluate(other, false, 0); }).find("finetune.lr") != std::string::npos);
    // seeds and the task list are not settings: each (task, seed) run stands alone
    auto more = o;
    more.seeds = 2;
    more.tasks = {"STS-B", "RTE"};
    {
        const cram::dir_lock held(o.out, "GLUE output directory", "a test");
        const std::string locked = error_of([&] { evaluate(more, true, 0); });
        CHECK(locked.find("in use") != std::string::npos);
        CHECK(locked.find("a test") != std::string::npos);
    }
    const glue_report r = evaluate(more, true, 0);
    CHECK_FALSE(r.interrupted());
    CHECK(r.tasks.size() == 2);

    // a file holding only a line cut short (killed during its first write) holds no results: a new
    // evaluation starts there, on a line boundary
    const auto cut = dir / "cut";
    std::filesystem::create_directories(cut);
    std::ofstream(cut / "glue_metrics.jsonl") << "{\"event\":\"sett";
    auto fresh = o;
    fresh.out = cut;
    CHECK_FALSE(evaluate(fresh, false, 0).interrupted());
    const auto cut_lines = read_lines(cut / "glue_metrics.jsonl");
    CHECK(cut_lines.front()["event"] == "settings");
    CHECK(cut_lines.back()["event"] == "summary");

    // a metrics file without a settings record (an older cram's) cannot be resumed
    const auto old = dir / "old";
    std::filesystem::create_directories(old);
    std::ofstream(old / "glue_metrics.jsonl") << "{\"event\":\"epoch\",\"task\":\"RTE\"}\n";
    CHECK(error_of([&] { evaluate(tiny_options(glue, old), true, 0); }).find("no settings record") != std::string::npos);
    CHECK(error_of([&] { evaluate(tiny_options(glue, old), false, 0); }).find("--resume") != std::string::npos);
}

TEST_CASE("finetune: should_stop ends the run after the step it answers true, marked stopped") {
    const auto dir = cram::test::scratch_dir("glue_should_stop");
    const auto glue = write_tiny_glue(dir);
    const auto tok = cram::data::wordpiece::load(dir / "vocab.txt");
    backend::context ctx;
    const auto o = tiny_options(glue, dir / "out");
    const task_data task = load_task(tok, glue, glue_task("RTE"), 8);
    const finetune_run plain = finetune<C, backend>(ctx, nullptr, task, o.finetune);
    finetune_callbacks cb;
    int polls = 0;
    cb.should_stop = [&] { return ++polls == 4; };
    const finetune_run cut = finetune<C, backend>(ctx, nullptr, task, o.finetune, cb);
    CHECK(cut.stopped);
    CHECK(polls == 4);
    CHECK(cut.epochs.size() == 1);  // epoch 1 (3 steps) scored, epoch 2 cut after its first step
    CHECK_FALSE(plain.stopped);
    cb.should_stop = [] { return false; };  // polled, never stopping: the same run
    const finetune_run polled = finetune<C, backend>(ctx, nullptr, task, o.finetune, cb);
    CHECK_FALSE(polled.stopped);
    REQUIRE(polled.epochs.size() == plain.epochs.size());
    CHECK(polled.epochs.back().dev == plain.epochs.back().dev);
    CHECK(polled.epochs.back().train_loss == plain.epochs.back().train_loss);
}

TEST_CASE("glue resume: another protocol is refused by name; a record from before protocols had names is the released one's") {
    const auto dir = cram::test::scratch_dir("glue_resume_protocol");
    const auto glue = write_tiny_glue(dir);
    auto o = tiny_options(glue, dir / "out");  // the released protocol, its numbers overridden
    o.tasks = {"STS-B"};
    o.seeds = 1;
    REQUIRE(evaluate(o, false, 2).interrupted());
    CHECK(read_lines(o.out / "glue_metrics.jsonl").front()["settings"]["protocol"] == "released");

    // the same numbers under the article protocol's name: not silently continued
    auto article = o;
    article.protocol = glue_protocols::article;
    const std::string err = error_of([&] { evaluate(article, true, 0); });
    CHECK(err.find("protocol (recorded \"released\", now \"article\")") != std::string::npos);
    CHECK(err.find("finetune.") == std::string::npos);  // the numbers agree: only the name differs

    // a settings line written before protocols had names: the released protocol was the only one
    const auto old = dir / "old";
    std::filesystem::create_directories(old);
    {
        auto lines = read_lines(o.out / "glue_metrics.jsonl");
        lines.front()["settings"].erase("protocol");
        std::ofstream f(old / "glue_metrics.jsonl");
        for (const auto& l : lines) f << l.dump() << "\n";
    }
    auto old_article = article;
    old_article.out = old;
    CHECK(error_of([&] { evaluate(old_article, true, 0); }).find("protocol (recorded \"released\", now \"article\")") !=
          std::string::npos);
    auto old_released = o;
    old_released.out = old;
    const glue_report done = evaluate(old_released, true, 0);
    CHECK_FALSE(done.interrupted());
    CHECK(done.tasks.size() == 1);
    CHECK(report_json(done)["protocol"]["name"] == "released");
}
