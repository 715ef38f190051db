// The comparison of runs (compare.hpp) on hand-built state.json / summary / report.json: every cell worked
// out by hand (device-hours, the average of nine, missing tasks, the defaults for fields a file does not
// record), the JSON, each refusal naming its file, the command-line forms of a run, and the files of a run
// directory written by the trainer's own checkpoint code.
#include <fstream>

#include "cram/eval/compare.hpp"
#include "cram/model/parameters.hpp"
#include "cram/model/presets.hpp"
#include "test_support.hpp"

using namespace cram::eval;
using nlohmann::json;

namespace {

// A 4-rank GPU run of two hours, the crammed recipe not recorded (older state.json), bf16 not recorded.
json gpu_state() {
    return {{"format", "cram-train-state"}, {"version", 2},       {"step", 120},   {"tokens", 1966080},
            {"elapsed_s", 7200.0},          {"budget_s", 7200.0}, {"backend", "cuda"}, {"ranks", 4},
            {"config", {{"preset", "crammed_bert"}}}};
}
json gpu_summary() {
    return {{"event", "summary"}, {"steps", 120}, {"tokens", 1966080}, {"elapsed_s", 7200.0},
            {"final_loss", 2.5},  {"val_loss", 2.625}, {"stop_reason", "budget"}};
}
// All nine columns; the article protocol, no deviation.
json gpu_report() {
    return {{"complete", true},
            {"protocol", {{"name", "article"}}},
            {"deviations", json::array()},
            {"cramming",
             {{"columns",
               {{"MNLI-m", 80.0}, {"MNLI-mm", 81.0}, {"SST-2", 90.0}, {"STS-B", 85.0}, {"RTE", 60.0},
                {"QNLI", 88.0}, {"QQP", 86.0}, {"MRPC", 87.0}, {"CoLA", 40.0}}}}}};
}

// A 90-second CPU run of the izsak recipe in emulated fp16 (both recorded where the trainer puts them: the recipe
// in the fingerprinted config and the run info, the precision in the run info), no `ranks` field.
json cpu_state() {
    return {{"step", 7},          {"tokens", 7168},     {"elapsed_s", 90.0},
            {"budget_s", 90.0},   {"backend", "cpu"},
            {"config", {{"preset", "izsak_tiny"}, {"recipe", "izsak"}}},
            {"run", {{"recipe", "izsak"}, {"precision", "fp16 (emulated)"}}}};
}
json cpu_summary() {
    return {{"event", "summary"}, {"steps", 7}, {"final_loss", 7.25}, {"val_loss", nullptr}, {"stop_reason", "max_steps"}};
}
// Five tasks (the shared data's), no protocol recorded (an older report), two deviations.
json cpu_report() {
    return {{"complete", true},
            {"deviations", {"training sets capped at 64 examples per task", "1 seed(s) (protocol: median of 5)"}},
            {"missing", {{"MNLI", "no train.tsv"}, {"QNLI", "no train.tsv"}, {"QQP", "no train.tsv"}}},
            {"cramming",
             {{"columns", {{"SST-2", 71.4}, {"STS-B", 6.2}, {"RTE", 47.3}, {"MRPC", 81.2}, {"CoLA", 0.0}}}}}};
}

compare_run gpu_run() {
    return compare_run_from_json("A", gpu_state(), "a/state.json", gpu_summary(), "a/metrics.jsonl", gpu_report(),
                                 "a/report.json");
}
compare_run cpu_run() {
    return compare_run_from_json("B", cpu_state(), "b/state.json", cpu_summary(), "b/metrics.jsonl", cpu_report(),
                                 "b/report.json");
}

using cram::test::error_of;

bool has_note(const compare_run& r, const std::string& fragment) {
    for (const auto& n : r.notes)
        if (n.find(fragment) != std::string::npos) return true;
    return false;
}

void write(const std::filesystem::path& p, const std::string& text) {
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("compare: the cells of a row, by hand") {
    const compare_run a = gpu_run();
    CHECK(a.recipe == "crammed");  // not recorded: the crammed recipe
    CHECK_FALSE(a.recipe_recorded);
    CHECK(a.precision == "bf16");  // not recorded: the cuda backend's
    CHECK_FALSE(a.precision_recorded);
    CHECK(a.preset == "crammed_bert");
    CHECK(a.ranks == 4);
    CHECK(a.device_hours() == doctest::Approx(8.0));  // 7200 s x 4 ranks / 3600
    CHECK(a.hours_unit() == "GPU-hours");
    CHECK(a.columns_present() == 9);
    // (80 + 81 + 90 + 85 + 60 + 88 + 86 + 87 + 40) / 9 = 697 / 9
    REQUIRE(a.average().has_value());
    CHECK(*a.average() == doctest::Approx(697.0 / 9.0));
    CHECK(a.protocol == "article");
    CHECK(a.protocol_recorded);
    CHECK(a.glue_deviations.empty());
    CHECK(a.final_loss == 2.5);
    CHECK(a.val_loss == 2.625);
    CHECK_FALSE(has_note(a, "recipe"));  // the defaults are no news
    CHECK_FALSE(has_note(a, "precision"));
    CHECK(has_note(a, "report.json does not name the checkpoint it evaluated"));

    const compare_run b = cpu_run();
    CHECK(b.recipe == "izsak");
    CHECK(b.precision == "fp16 (emulated)");
    CHECK(b.ranks == 1);                                  // no `ranks`: one process
    CHECK(b.device_hours() == doctest::Approx(0.025));    // 90 s / 3600
    CHECK(b.hours_unit() == "CPU-hours");                 // never a GPU run
    CHECK(b.columns_present() == 5);
    CHECK_FALSE(b.average().has_value());                 // 5 of 9: no average
    CHECK_FALSE(b.columns[0].has_value());                // MNLI-m missing
    CHECK(*b.columns[4] == 47.3);                         // RTE
    CHECK(b.protocol == "released");                      // not recorded: the only protocol of the time
    CHECK_FALSE(b.protocol_recorded);
    CHECK(b.glue_deviations.size() == 2);
    CHECK(std::isnan(b.val_loss));
    CHECK(b.stop_reason == "max_steps");
    CHECK(has_note(b, "training stopped by max_steps after 1:30 of its 1:30 budget"));
    CHECK(has_note(b, "GLUE tasks not run: MNLI, QNLI, QQP"));
    CHECK(has_note(b, "GLUE protocol not recorded"));
}

TEST_CASE("compare: markdown and JSON") {
    const std::vector<compare_run> runs{gpu_run(), cpu_run()};
    const std::string md = compare_markdown(runs);
    CAPTURE(md);
    // a GPU run and a CPU run: the column says both, each cell its unit
    CHECK(md.find("| tokens | GPU-/CPU-hours | MLM loss (final / val) |") != std::string::npos);
    CHECK(md.find("| **A** | crammed | crammed_bert | cuda, bf16, 4 ranks | 2:00:00 | 2:00:00 | 1.97M | 8 GPU-h | "
                  "2.500 / 2.625 | 80.0 | 81.0 | 90.0 | 85.0 | 60.0 | 88.0 | 86.0 | 87.0 | 40.0 | **77.4** | article | none |") !=
          std::string::npos);
    CHECK(md.find("| **B** | izsak | izsak_tiny | cpu, fp16 (emulated), 1 rank | 1:30 | 1:30 | 7.17K | 0.025 CPU-h | 7.250 / – | "
                  "– | – | 71.4 | 6.2 | 47.3 | – | – | 81.2 | 0.0 | – (5 of 9) | released | 2 (notes) |") != std::string::npos);
    // the published rows, each with the protocol glue_protocol.hpp pairs it with
    CHECK(md.find("| crammed BERT, 24 h A6000 (paper v1) (published) | – | – | – | – | – | – | – | – | 83.9 | 84.1 | 92.2 | "
                  "84.6 | 53.8 | 89.5 | 87.3 | 87.5 | 44.5 | 78.6 | article | – |") != std::string::npos);
    CHECK(md.find("(released model) (published) |") != std::string::npos);
    CHECK(md.find("| BERT-base, no pretraining (published) |") != std::string::npos);
    CHECK(md.find("GLUE deviation from the `released` protocol: training sets capped at 64 examples per task") !=
          std::string::npos);
    CHECK(md.find("given only when a run has all 9") != std::string::npos);

    // a '|' in a label would end its cell
    compare_run piped = cpu_run();
    piped.label = "a|b";
    CHECK(compare_markdown({piped}).find("| **a\\|b** |") != std::string::npos);
    // only GPU runs: the header says GPU-hours
    CHECK(compare_markdown({gpu_run()}).find("| GPU-hours |") != std::string::npos);
    CHECK(compare_markdown({cpu_run()}).find("| CPU-hours |") != std::string::npos);

    const json j = compare_json(runs);
    REQUIRE(j["runs"].size() == 2);
    const json& ja = j["runs"][0];
    CHECK(ja["device_hours"].get<double>() == doctest::Approx(8.0));
    CHECK(ja["device_hours_unit"] == "GPU-hours");
    CHECK(ja["glue"]["average"].get<double>() == doctest::Approx(697.0 / 9.0));
    CHECK(ja["glue"]["protocol"] == "article");
    CHECK(ja["glue"]["protocol_followed"].get<bool>());
    CHECK(ja["recipe"] == "crammed");
    CHECK_FALSE(ja["recipe_recorded"].get<bool>());
    CHECK(ja["tokens"] == 1966080);
    const json& jb = j["runs"][1];
    CHECK(jb["device_hours_unit"] == "CPU-hours");
    CHECK(jb["device_hours"].get<double>() == doctest::Approx(0.025));
    CHECK(jb["glue"]["average"].is_null());
    CHECK(jb["glue"]["columns_present"] == 5);
    CHECK(jb["glue"]["columns"]["MNLI-m"].is_null());
    CHECK(jb["glue"]["columns"]["RTE"].get<double>() == 47.3);
    CHECK_FALSE(jb["glue"]["protocol_followed"].get<bool>());
    CHECK(jb["val_loss"].is_null());
    REQUIRE(j["published"].size() == 4);
    CHECK(j["published"][0]["protocol"].is_null());  // BERT-base, fully trained: no protocol named for it
    CHECK(j["published"][2]["protocol"] == "article");
    CHECK(j["published"][3]["protocol"] == "released");
    CHECK(j["published"][3]["columns"]["CoLA"].get<double>() == 53.3);
}

TEST_CASE("compare: unfinished runs and malformed files are errors naming the file") {
    // a run stopped by a signal
    json stopped = gpu_summary();
    stopped["stop_reason"] = "SIGTERM";
    stopped["signal"] = 15;
    std::string e = error_of([&] {
        compare_run_from_json("A", gpu_state(), "a/state.json", stopped, "a/metrics.jsonl", gpu_report(), "a/report.json");
    });
    CHECK(e.find("a/metrics.jsonl") != std::string::npos);
    CHECK(e.find("SIGTERM") != std::string::npos);
    CHECK(e.find("unfinished") != std::string::npos);
    // a summary older than the newest checkpoint: it went on and was killed
    json older = gpu_summary();
    older["steps"] = 100;
    e = error_of([&] {
        compare_run_from_json("A", gpu_state(), "a/state.json", older, "a/metrics.jsonl", gpu_report(), "a/report.json");
    });
    CHECK(e.find("step 100") != std::string::npos);
    CHECK(e.find("step 120") != std::string::npos);
    CHECK(e.find("--resume") != std::string::npos);
    // state.json without tokens
    json no_tokens = gpu_state();
    no_tokens.erase("tokens");
    e = error_of([&] {
        compare_run_from_json("A", no_tokens, "a/state.json", gpu_summary(), "a/metrics.jsonl", gpu_report(), "a/report.json");
    });
    CHECK(e.find("a/state.json: the field \"tokens\" is missing") != std::string::npos);
    // report.json without the cramming columns, or with a column that is not a number
    json no_columns = gpu_report();
    no_columns.erase("cramming");
    e = error_of([&] {
        compare_run_from_json("A", gpu_state(), "a/state.json", gpu_summary(), "a/metrics.jsonl", no_columns, "a/report.json");
    });
    CHECK(e.find("a/report.json: the field \"cramming\" is missing") != std::string::npos);
    json text_column = gpu_report();
    text_column["cramming"]["columns"]["RTE"] = "sixty";
    e = error_of([&] {
        compare_run_from_json("A", gpu_state(), "a/state.json", gpu_summary(), "a/metrics.jsonl", text_column, "a/report.json");
    });
    CHECK(e.find("a/report.json: the field \"cramming.columns.RTE\" should be a finite number") != std::string::npos);
    CHECK_THROWS_WITH_AS(compare_run_from_json("A", gpu_state(), "a/state.json", gpu_summary(), "a/metrics.jsonl",
                                               json::array(), "a/report.json"),
                         doctest::Contains("a/report.json: expected a JSON object"), cram::error);
    // an interrupted GLUE evaluation: finish it first, as its report says
    json partial = gpu_report();
    partial["complete"] = false;
    partial["interrupted"] = {{"resume", "`cram_bert_24h glue ... --resume` (the same options)"}};
    e = error_of([&] {
        compare_run_from_json("A", gpu_state(), "a/state.json", gpu_summary(), "a/metrics.jsonl", partial, "a/report.json");
    });
    CHECK(e.find("a/report.json is the partial report of an interrupted GLUE evaluation") != std::string::npos);
    CHECK(e.find("--resume") != std::string::npos);
    // a --from-scratch evaluation does not evaluate this run
    json scratch = gpu_report();
    scratch["settings"] = {{"checkpoint", ""}, {"finetune", {{"from_scratch", true}}}};
    e = error_of([&] {
        compare_run_from_json("A", gpu_state(), "r/checkpoints/step-00000120/state.json", gpu_summary(), "a/metrics.jsonl",
                              scratch, "a/report.json");
    });
    CHECK(e.find("randomly initialised encoder") != std::string::npos);
    // a report of another run's checkpoint is refused; one of an older checkpoint of this run is noted
    json other = gpu_report();
    other["settings"] = {{"checkpoint", "/runs/x/checkpoints/step-00000050"}};
    e = error_of([&] {
        compare_run_from_json("A", gpu_state(), "a/state.json", gpu_summary(), "a/metrics.jsonl", other, "a/report.json",
                              "/runs/a/checkpoints/step-00000120");
    });
    CHECK(e.find("evaluates checkpoint /runs/x/checkpoints/step-00000050, which is not one of this run's") != std::string::npos);
    json earlier = gpu_report();
    earlier["settings"] = {{"checkpoint", "/runs/a/checkpoints/step-00000050"}};
    const compare_run r = compare_run_from_json("A", gpu_state(), "a/state.json", gpu_summary(), "a/metrics.jsonl", earlier,
                                                "a/report.json", "/runs/a/checkpoints/step-00000120");
    CHECK(has_note(r, "GLUE evaluated step-00000050, not the newest checkpoint step-00000120"));
    // two runs with one label
    CHECK(error_of([] { check_unique_labels({gpu_run(), gpu_run()}); }).find("two runs are labelled 'A'") != std::string::npos);
}

TEST_CASE("compare: the last summary of metrics.jsonl") {
    const auto dir = cram::test::scratch_dir("compare_summary");
    const auto f = dir / "metrics.jsonl";
    // two processes' summaries (a resumed run), then a line cut short by a kill: the second summary counts
    write(f, "{\"step\":1,\"loss\":9.0}\n{\"event\":\"summary\",\"steps\":3}\n{\"step\":4,\"loss\":8.0}\n"
             "{\"event\":\"summary\",\"steps\":5}\n{\"event\":\"summary\",\"ste");
    CHECK(last_summary(f)["steps"] == 5);
    write(f, "{\"step\":1,\"loss\":9.0}\n");
    CHECK(error_of([&] { last_summary(f); }).find(f.string() + " holds no summary line: the training run has not finished") !=
          std::string::npos);
    write(f, "{\"step\":1}\n{\"event\":\"summary\",\"steps\n{\"step\":2}\n");
    CHECK(error_of([&] { last_summary(f); }).find(f.string() + ":2: not a JSON line") != std::string::npos);
    CHECK(error_of([&] { last_summary(dir / "none.jsonl"); }).find("cannot read " + (dir / "none.jsonl").string()) !=
          std::string::npos);
}

TEST_CASE("compare: how a run is named on the command line") {
    const auto dir = cram::test::scratch_dir("compare_sources");
    std::filesystem::create_directories(dir / "out" / "run");
    std::filesystem::create_directories(dir / "out" / "glue");
    std::filesystem::create_directories(dir / "train");
    std::filesystem::create_directories(dir / "g");
    std::filesystem::create_directories(dir / "half" / "run");

    compare_source s = parse_compare_source((dir / "out").string());
    CHECK(s.label == "out");
    CHECK(s.train_dir == dir / "out" / "run");
    CHECK(s.glue_dir == dir / "out" / "glue");
    CHECK(parse_compare_source((dir / "out").string() + "/").label == "out");
    s = parse_compare_source("tiny-a=" + (dir / "out").string());
    CHECK(s.label == "tiny-a");
    CHECK(s.glue_dir == dir / "out" / "glue");
    s = parse_compare_source((dir / "train").string() + ":" + (dir / "g").string());
    CHECK(s.label == "train");
    CHECK(s.train_dir == dir / "train");
    CHECK(s.glue_dir == dir / "g");
    s = parse_compare_source("b=" + (dir / "train").string() + ":" + (dir / "g").string());
    CHECK(s.label == "b");

    CHECK(error_of([&] { parse_compare_source((dir / "nope").string()); }).find((dir / "nope").string() + " does not exist") !=
          std::string::npos);
    CHECK(error_of([&] { parse_compare_source((dir / "half").string()); }).find("glue/ is missing") != std::string::npos);
    std::filesystem::create_directories(dir / "train" / "checkpoints");  // a `train --out` directory given alone
    CHECK(error_of([&] { parse_compare_source((dir / "train").string()); })
              .find("is a training run directory: give it with its GLUE report as " + (dir / "train").string() +
                    ":GLUE_DIR") != std::string::npos);
    CHECK(error_of([&] { parse_compare_source((dir / "train").string() + ":" + (dir / "nog").string()); })
              .find("the GLUE directory '" + (dir / "nog").string() + "'") != std::string::npos);
    CHECK(error_of([&] { parse_compare_source((dir / "notrain").string() + ":" + (dir / "g").string()); })
              .find("the training directory of") != std::string::npos);
}

TEST_CASE("compare: a run directory written by the trainer's checkpoint code, read back") {
    constexpr auto C = cram::presets::test_pre_glu;
    const auto& layout = cram::bert_layout<C>();
    const std::vector<float> zeros(layout.buffer_size(), 0.0f);
    const auto dir = cram::test::scratch_dir("compare_load");
    const auto train = dir / "train", glue = dir / "glue";
    // two checkpoints: the newest (step 8) is the one read
    json state = cpu_state();
    state.erase("step");
    for (const int step : {4, 8}) {
        json st = state;
        st["step"] = step;
        st["tokens"] = step * 1024;
        cram::train::save_checkpoint(train / "checkpoints", step, layout, zeros.data(), zeros.data(), zeros.data(), st, 2);
    }
    json summary = cpu_summary();
    summary["steps"] = 8;
    write(train / "metrics.jsonl", "{\"step\":8,\"loss\":7.25}\n" + summary.dump() + "\n");
    json report = cpu_report();
    report["settings"] = {{"checkpoint", std::filesystem::weakly_canonical(train / "checkpoints" / "step-00000008").string()}};
    write(glue / "report.json", report.dump());

    const compare_run r = load_compare_run({"x", train, glue});
    CHECK(r.step == 8);
    CHECK(r.tokens == 8192);
    CHECK(r.state_file == train / "checkpoints" / "step-00000008" / "state.json");
    CHECK(r.report_file == glue / "report.json");
    CHECK(*r.columns[2] == 71.4);  // SST-2
    CHECK_FALSE(has_note(r, "GLUE evaluated"));  // the newest checkpoint was the one evaluated

    // each missing or damaged piece names its file
    CHECK(error_of([&] { load_compare_run({"x", dir / "nope", glue}); }).find((dir / "nope").string() + " does not exist") !=
          std::string::npos);
    CHECK(error_of([&] { load_compare_run({"x", glue, glue}); }).find("is not a training run directory") != std::string::npos);
    write(dir / "glue2" / "report.json", "{\"complete\": true, \"cramming\": ");
    CHECK(error_of([&] { load_compare_run({"x", train, dir / "glue2"}); })
              .find((dir / "glue2" / "report.json").string() + " is not valid JSON") != std::string::npos);
    std::filesystem::create_directories(dir / "glue3");
    CHECK(error_of([&] { load_compare_run({"x", train, dir / "glue3"}); })
              .find((dir / "glue3" / "report.json").string() + " is missing") != std::string::npos);
    write(train / "metrics.jsonl", "{\"step\":8,\"loss\":7.25}\n");
    CHECK(error_of([&] { load_compare_run({"x", train, glue}); }).find("holds no summary line") != std::string::npos);
}
