// Several training runs side by side, the paper's way: per run its recipe, preset, device, budget, tokens,
// GPU- or CPU-hours, MLM loss and GLUE-dev scores (the cramming table's nine columns), beside the rows
// CRAMMING.md publishes; as markdown and JSON. A row is built from the files a run leaves behind: the
// newest checkpoint's state.json and the `summary` line of metrics.jsonl (training), and report.json (GLUE).
// Building a row from parsed JSON is pure (compare_run_from_json); load_compare_run reads the files.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cram/core/error.hpp"
#include "cram/eval/checkpoint_lookup.hpp"
#include "cram/eval/glue_protocol.hpp"
#include "cram/eval/published.hpp"
#include "cram/train/budget.hpp"
#include "cram/train/json_fields.hpp"

namespace cram::eval {

// One run of the comparison: what it trained and how long, and what GLUE made of it.
struct compare_run {
    std::string label;
    // where the numbers come from
    std::filesystem::path state_file, metrics_file, report_file;

    // pretraining, from the newest checkpoint's state.json
    // run.recipe (every run since the recipes; config.recipe too for the compared ones); not recorded: crammed (the
    // only recipe before the others existed)
    std::string recipe = "crammed";
    bool recipe_recorded = false;
    std::string preset;                // config.preset; empty: not recorded
    std::string backend;               // "cpu" or "cuda"
    // run.precision ("fp32", "bf16", "fp16", "fp16 (emulated)"); not recorded: the backend's (fp32 on cpu, bf16 on cuda)
    std::string precision;
    bool precision_recorded = false;
    int ranks = 1;                     // data-parallel processes (not recorded before data parallelism: 1)
    double budget_s = 0, elapsed_s = 0;
    std::int64_t step = 0, tokens = 0;
    // from metrics.jsonl's last `summary` line
    double final_loss = NAN, val_loss = NAN;  // NaN: not measured
    std::string stop_reason;                  // "budget" or "max_steps"

    // GLUE, from report.json
    std::string protocol = std::string(glue_protocols::released.name);
    bool protocol_recorded = false;  // a report written before protocols had names followed the released one
    std::array<std::optional<double>, 9> columns;  // percent, cramming_columns order; empty: the task did not run
    std::vector<std::string> glue_deviations;      // the report's deviations from its protocol

    std::vector<std::string> notes;  // anything a reader of the table should know about this row

    // Wall-clock hours times processes: GPU-hours on cuda (one GPU per rank), CPU-hours on the CPU (processes,
    // not cores: each CPU process uses all the threads it is given).
    double device_hours() const { return elapsed_s * double(ranks) / 3600.0; }
    std::string hours_unit() const {
        if (backend == "cuda") return "GPU-hours";
        if (backend == "cpu") return "CPU-hours";
        return backend + "-hours";
    }
    int columns_present() const {
        int n = 0;
        for (const auto& c : columns) n += c.has_value();
        return n;
    }
    // The cramming average (the mean of the nine columns), only when all nine exist.
    std::optional<double> average() const {
        if (columns_present() < 9) return std::nullopt;
        double sum = 0;
        for (const auto& c : columns) sum += *c;
        return sum / 9.0;
    }
};

namespace detail {

// The precision a backend trains in when state.json does not say (DESIGN.md "Numerics").
inline std::string default_precision(const std::string& backend) {
    if (backend == "cpu") return "fp32";
    if (backend == "cuda") return "bf16";
    return "unknown";
}

inline bool boolean_field(const nlohmann::json& j, const char* key, const std::filesystem::path& file, bool fallback) {
    if (!j.contains(key)) return fallback;
    if (!j[key].is_boolean()) CRAM_THROW(file.string(), ": the field \"", key, "\" should be true or false, found ", j[key].dump());
    return j[key].get<bool>();
}

}  // namespace detail

// One row from parsed files: `state` (the newest checkpoint's state.json), `summary` (the last `summary`
// line of the run's metrics.jsonl) and `report` (the GLUE evaluation's report.json); the paths name them
// in messages. `checkpoint` is the checkpoint directory state.json belongs to, as report.json's
// settings.checkpoint names checkpoints (absolute): a report of another run is refused, one of an older
// checkpoint of this run is noted. A missing or wrong-typed field is an error naming the file and the field;
// a run stopped before its end (a signal, or a summary older than the newest checkpoint) and an
// interrupted GLUE evaluation are errors saying how to finish them.
inline compare_run compare_run_from_json(std::string label, const nlohmann::json& state,
                                         const std::filesystem::path& state_file, const nlohmann::json& summary,
                                         const std::filesystem::path& metrics_file, const nlohmann::json& report,
                                         const std::filesystem::path& report_file,
                                         const std::filesystem::path& checkpoint = {}) {
    compare_run r;
    r.label = std::move(label);
    r.state_file = state_file;
    r.metrics_file = metrics_file;
    r.report_file = report_file;

    const train::json_fields st(state, state_file);
    r.step = st.integer("step", 0);
    r.tokens = st.integer("tokens", 0);
    r.elapsed_s = st.number("elapsed_s");
    r.budget_s = st.number("budget_s");
    r.backend = st.string("backend");
    r.ranks = int(st.integer_or("ranks", 1, 1));
    r.precision = detail::default_precision(r.backend);
    if (st.has("config")) {
        const train::json_fields config = st.sub("config");
        r.preset = config.string_or("preset", "");
        r.recipe_recorded = config.has("recipe");
        if (r.recipe_recorded) r.recipe = config.string("recipe");
    }
    // the run info (not fingerprinted) records both for every run since the recipes and precisions exist
    if (st.has("run")) {
        const train::json_fields run = st.sub("run");
        if (run.has("recipe")) {
            r.recipe = run.string("recipe");
            r.recipe_recorded = true;
        }
        r.precision_recorded = run.has("precision");
        if (r.precision_recorded) r.precision = run.string("precision");
    }
    // an absent recipe or precision is the default by design (the trainer records only the others), so no note
    if (r.preset.empty()) r.notes.push_back("preset not recorded in state.json");

    const train::json_fields sm(summary, metrics_file);
    CRAM_CHECK(sm.string_or("event", "") == "summary", metrics_file.string(), ": the line given as the run's summary is a \"",
               sm.string_or("event", "(no event)"), "\" line");
    r.stop_reason = sm.string_or("stop_reason", "");
    if (sm.has("signal") || r.stop_reason.rfind("SIG", 0) == 0)
        CRAM_THROW(metrics_file.string(), ": the run was stopped by ", r.stop_reason.empty() ? "a signal" : r.stop_reason,
                   " at step ", sm.integer_or("steps", -1), " before its budget was spent: it is unfinished; continue it "
                   "with `cram_bert_24h train ... --resume` (the same options) and compare it then");
    const std::int64_t summary_steps = sm.integer("steps", 0);
    if (summary_steps != r.step)
        CRAM_THROW(metrics_file.string(), ": its last summary is at step ", summary_steps, " but the newest checkpoint (",
                   state_file.string(), ") is at step ", r.step, ": the run went on after its last summary and did not "
                   "finish (killed?); continue it with `cram_bert_24h train ... --resume`");
    r.final_loss = sm.number_or_nan("final_loss");
    r.val_loss = sm.number_or_nan("val_loss");
    if (r.stop_reason != "budget")
        r.notes.push_back("training stopped by " + (r.stop_reason.empty() ? std::string("an unrecorded reason") : r.stop_reason) +
                          " after " + train::format_duration(r.elapsed_s) + " of its " + train::format_duration(r.budget_s) +
                          " budget");

    const train::json_fields rp(report, report_file);
    if (!detail::boolean_field(report, "complete", report_file, true)) {
        std::string how = "`cram_bert_24h glue ... --resume`";
        if (rp.has("interrupted") && report["interrupted"].is_object() && report["interrupted"].contains("resume") &&
            report["interrupted"]["resume"].is_string())
            how = report["interrupted"]["resume"].get<std::string>();
        CRAM_THROW(report_file.string(), " is the partial report of an interrupted GLUE evaluation: finish it with ", how,
                   " and compare it then");
    }
    const train::json_fields columns = rp.sub("cramming").sub("columns");
    for (std::size_t i = 0; i < 9; ++i)
        if (columns.has(cramming_columns[i].label)) r.columns[i] = columns.number(cramming_columns[i].label);
    if (rp.has("protocol")) {
        r.protocol = rp.sub("protocol").string("name");
        r.protocol_recorded = true;
    } else {
        r.notes.push_back("GLUE protocol not recorded in report.json (written before protocols had names): released");
    }
    if (rp.has("deviations")) {
        const nlohmann::json& d = rp.raw("deviations");
        if (!d.is_array()) CRAM_THROW(report_file.string(), ": the field \"deviations\" should be a list, found ", d.type_name());
        for (const auto& x : d) {
            if (!x.is_string()) CRAM_THROW(report_file.string(), ": the field \"deviations\" should hold text, found ", x.dump());
            r.glue_deviations.push_back(x.get<std::string>());
        }
    }
    if (rp.has("missing") && report["missing"].is_object() && !report["missing"].empty()) {
        std::string names;
        for (const auto& [task, why] : report["missing"].items()) names += (names.empty() ? "" : ", ") + task;
        r.notes.push_back("GLUE tasks not run: " + names);
    }
    if (rp.has("settings")) {
        const train::json_fields settings = rp.sub("settings");
        if (settings.has("finetune") && detail::boolean_field(report["settings"]["finetune"], "from_scratch", report_file, false))
            CRAM_THROW(report_file.string(), " evaluates a randomly initialised encoder (glue --from-scratch), not a "
                       "checkpoint of ", state_file.parent_path().parent_path().parent_path().string(),
                       ": pair the run with the report of its own checkpoint");
        const std::string evaluated = settings.string_or("checkpoint", "");
        if (!checkpoint.empty() && !evaluated.empty() && std::filesystem::path(evaluated) != checkpoint) {
            const std::filesystem::path e(evaluated);
            if (e.parent_path() != checkpoint.parent_path())
                CRAM_THROW(report_file.string(), " evaluates checkpoint ", evaluated, ", which is not one of this run's (its "
                           "newest is ", checkpoint.string(), "): pair each training run with its own GLUE report");
            r.notes.push_back("GLUE evaluated " + e.filename().string() + ", not the newest checkpoint " +
                              checkpoint.filename().string());
        }
    } else {
        r.notes.push_back("report.json does not name the checkpoint it evaluated");
    }
    return r;
}

// The last `summary` line of a run's metrics.jsonl (the trainer writes one each time a process finishes).
// Only lines that mention "summary" are parsed; a line cut short at the end of the file (a killed writer) is
// ignored. No summary: the run has not finished, an error saying so.
inline nlohmann::json last_summary(const std::filesystem::path& metrics_file) {
    std::ifstream in(metrics_file, std::ios::binary);
    CRAM_CHECK(static_cast<bool>(in), "cannot read ", metrics_file.string(),
               " (a training run directory holds the metrics.jsonl the trainer writes)");
    std::ostringstream buf;
    buf << in.rdbuf();
    const std::string text = buf.str();
    nlohmann::json last;
    std::size_t pos = 0, line_no = 0;
    while (pos < text.size()) {
        const std::size_t nl = text.find('\n', pos);
        const bool complete = nl != std::string::npos;
        const std::string line = text.substr(pos, complete ? nl - pos : std::string::npos);
        pos = complete ? nl + 1 : text.size();
        ++line_no;
        if (line.find("\"summary\"") == std::string::npos || !complete) continue;
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded())
            CRAM_THROW(metrics_file.string(), ":", line_no, ": not a JSON line (the file is damaged)");
        if (j.is_object() && j.value("event", std::string()) == "summary") last = std::move(j);
    }
    CRAM_CHECK(!last.is_null(), metrics_file.string(), " holds no summary line: the training run has not finished (a "
               "run writes its summary when the budget is spent, or when it is stopped); finish it (`cram_bert_24h train "
               "... --resume`) before comparing it");
    return last;
}

// A run to compare, as named on the command line.
struct compare_source {
    std::string label;
    std::filesystem::path train_dir, glue_dir;
};

namespace detail {

// The last name of a path, ignoring a trailing separator ("runs/a/" -> "a").
inline std::string last_name(const std::filesystem::path& p) {
    const auto n = p.lexically_normal();
    return n.has_filename() ? n.filename().string() : n.parent_path().filename().string();
}

}  // namespace detail

// `[LABEL=]RUN_OUT` (a `cram_bert_24h run --out` directory, holding run/ and glue/) or
// `[LABEL=]TRAIN_DIR:GLUE_DIR` (a `train --out` and a `glue --out` directory). Without a label a run is
// named after its directory (RUN_OUT, or TRAIN_DIR). Every directory must exist; errors name the one that
// does not.
inline compare_source parse_compare_source(const std::string& arg) {
    namespace fs = std::filesystem;
    std::error_code ec;
    compare_source s;
    std::string rest = arg;
    const std::size_t eq = arg.find('=');
    if (eq != std::string::npos && !fs::exists(arg, ec)) {
        const std::string label = arg.substr(0, eq);
        if (!label.empty() && label.find('/') == std::string::npos && label.find(':') == std::string::npos) {
            s.label = label;
            rest = arg.substr(eq + 1);
        }
    }
    CRAM_CHECK(!rest.empty(), "compare: '", arg, "' names no run (RUN_OUT or TRAIN_DIR:GLUE_DIR, optionally LABEL=...)");
    if (fs::is_directory(rest, ec)) {
        const fs::path out(rest);
        CRAM_CHECK(!fs::is_directory(out / "checkpoints", ec), "compare: ", rest, " is a training run directory: "
                   "give it with its GLUE report as ", rest, ":GLUE_DIR (the `glue --out` directory that evaluated it)");
        CRAM_CHECK(fs::is_directory(out / "run", ec) && fs::is_directory(out / "glue", ec), "compare: ", rest,
                   " is not the output of `cram_bert_24h run` (it needs both run/ and glue/; ",
                   fs::is_directory(out / "run", ec) ? "glue/ is missing: evaluate it with `cram_bert_24h glue --checkpoint " +
                                                           (out / "run").string() + " --out " + (out / "glue").string() + " ...`"
                                                     : "run/ is missing",
                   "); give a training run and its GLUE report as TRAIN_DIR:GLUE_DIR");
        s.train_dir = out / "run";
        s.glue_dir = out / "glue";
        if (s.label.empty()) s.label = detail::last_name(out);
        return s;
    }
    // TRAIN_DIR:GLUE_DIR, split at the first ':' whose left side is a directory (a path may hold ':')
    for (std::size_t colon = rest.find(':'); colon != std::string::npos; colon = rest.find(':', colon + 1)) {
        const fs::path train = rest.substr(0, colon), glue = rest.substr(colon + 1);
        if (train.empty() || !fs::is_directory(train, ec)) continue;
        CRAM_CHECK(!glue.empty() && fs::is_directory(glue, ec), "compare: the GLUE directory '", glue.string(), "' of '", arg,
                   "' does not exist (TRAIN_DIR:GLUE_DIR: the second is a `glue --out` directory)");
        s.train_dir = train;
        s.glue_dir = glue;
        if (s.label.empty()) s.label = detail::last_name(train);
        return s;
    }
    if (rest.find(':') != std::string::npos)
        CRAM_THROW("compare: the training directory of '", arg, "' does not exist (TRAIN_DIR:GLUE_DIR: the first is a "
                   "`train --out` directory)");
    CRAM_THROW("compare: ", rest, " does not exist (give a `cram_bert_24h run` output directory, or TRAIN_DIR:GLUE_DIR)");
}

// Reads one run's files: the newest checkpoint of TRAIN_DIR whose state.json verifies (find_checkpoint, as
// `glue` picks it), TRAIN_DIR/metrics.jsonl's last summary, GLUE_DIR/report.json. Errors name the file.
inline compare_run load_compare_run(const compare_source& source) {
    namespace fs = std::filesystem;
    std::error_code ec;
    CRAM_CHECK(fs::is_directory(source.train_dir, ec), "compare: training run directory ", source.train_dir.string(),
               " does not exist");
    CRAM_CHECK(fs::is_directory(source.glue_dir, ec), "compare: GLUE directory ", source.glue_dir.string(), " does not exist");
    CRAM_CHECK(fs::is_directory(source.train_dir / "checkpoints", ec), "compare: ", source.train_dir.string(),
               " is not a training run directory (no checkpoints/ in it; give the `train --out` directory)");
    const train::checkpoint_info ckpt = find_checkpoint(source.train_dir);
    const fs::path metrics = source.train_dir / "metrics.jsonl";
    const nlohmann::json summary = last_summary(metrics);
    const fs::path report_file = source.glue_dir / "report.json";
    CRAM_CHECK(fs::exists(report_file, ec), "compare: ", report_file.string(), " is missing (the GLUE evaluation of ",
               source.train_dir.string(), " has not written its report: run or finish `cram_bert_24h glue --out ",
               source.glue_dir.string(), "`)");
    const nlohmann::json report = train::read_json_file(report_file);
    return compare_run_from_json(source.label, ckpt.state, ckpt.state_file(), summary, metrics, report, report_file,
                                 fs::weakly_canonical(fs::absolute(ckpt.dir)));
}

// Two runs with one label could not be told apart in the table.
inline void check_unique_labels(const std::vector<compare_run>& runs) {
    std::set<std::string> seen;
    for (const auto& r : runs)
        CRAM_CHECK(seen.insert(r.label).second, "compare: two runs are labelled '", r.label,
                   "': name them apart with LABEL=RUN");
}

namespace detail {

// Text in a markdown table cell: a '|' would end the cell.
inline std::string cell_text(const std::string& s) {
    std::string out;
    for (const char c : s) {
        if (c == '|') out += '\\';
        out += c;
    }
    return out;
}

inline std::string fixed(double v, int decimals) {
    if (!std::isfinite(v)) return "–";
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

// 3 significant digits with the unit a reader expects: 950, 12.3K, 4.56M, 10.2B.
inline std::string token_count(std::int64_t n) {
    const double v = double(n);
    char buf[40];
    if (v < 1e3)
        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
    else if (v < 1e6)
        std::snprintf(buf, sizeof buf, "%.3gK", v / 1e3);
    else if (v < 1e9)
        std::snprintf(buf, sizeof buf, "%.3gM", v / 1e6);
    else
        std::snprintf(buf, sizeof buf, "%.3gB", v / 1e9);
    return buf;
}

inline std::string significant(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return buf;
}

// The short form of a unit in a cell: "GPU-hours" -> "GPU-h".
inline std::string hours_cell(const compare_run& r) {
    std::string unit = r.hours_unit();
    const std::size_t dash = unit.rfind("-hours");
    if (dash != std::string::npos) unit = unit.substr(0, dash) + "-h";
    return significant(r.device_hours()) + " " + unit;
}

// The protocol a published row was measured under, as glue_protocol.hpp pairs them (null: none named).
inline const glue_protocol* protocol_of_row(const published_row& p) {
    for (const auto& proto : all_glue_protocols)
        if (proto.published_row == p.name) return &proto;
    return nullptr;
}

}  // namespace detail

inline std::string compare_markdown(const std::vector<compare_run>& runs) {
    std::ostringstream md;
    bool gpu = false, cpu = false;
    for (const auto& r : runs) (r.backend == "cuda" ? gpu : cpu) = true;
    const char* hours = gpu && cpu ? "GPU-/CPU-hours" : gpu ? "GPU-hours" : "CPU-hours";
    md << "# Cramming comparison\n\n"
          "GLUE dev, the cramming convention (report.hpp): CoLA Matthews correlation, STS-B Pearson, MRPC and QQP F1, "
          "the rest accuracy, each the median over seeds of the last epoch. **avg** is the mean of the 9 columns "
          "(MNLI-m and MNLI-mm count separately), given only when a run has all 9; otherwise it shows how many it has. "
          "Hours are wall-clock budget spent times processes: GPU-hours on cuda, CPU-hours (processes, not cores) on the "
          "CPU. Recipe and precision are what the newest checkpoint's state.json records (run.recipe, "
          "run.precision); where it records none, the defaults: the crammed recipe, fp32 on the CPU and bf16 on "
          "cuda. The published rows are CRAMMING.md's (24 h on one A6000 for the crammed rows); their protocol is the "
          "one glue_protocol.hpp pairs them with (docs/glue.md says which pairing is stated and which inferred).\n\n";
    md << "| run | recipe | preset | device | budget | elapsed | tokens | " << hours << " | MLM loss (final / val) |";
    for (const auto& c : cramming_columns) md << ' ' << c.label << " |";
    md << " avg | GLUE protocol | GLUE deviations |\n|";
    for (int i = 0; i < 9 + 9 + 3; ++i) md << "---|";
    md << "\n";
    for (const auto& r : runs) {
        md << "| **" << detail::cell_text(r.label) << "** | " << detail::cell_text(r.recipe) << " | "
           << (r.preset.empty() ? "–" : detail::cell_text(r.preset)) << " | " << detail::cell_text(r.backend) << ", "
           << detail::cell_text(r.precision) << ", " << r.ranks << (r.ranks == 1 ? " rank" : " ranks") << " | "
           << train::format_duration(r.budget_s) << " | " << train::format_duration(r.elapsed_s) << " | "
           << detail::token_count(r.tokens) << " | " << detail::hours_cell(r) << " | " << detail::fixed(r.final_loss, 3)
           << " / " << detail::fixed(r.val_loss, 3) << " |";
        for (const auto& c : r.columns) md << ' ' << (c ? detail::fixed(*c, 1) : std::string("–")) << " |";
        const auto avg = r.average();
        md << ' ' << (avg ? "**" + detail::fixed(*avg, 1) + "**" : "– (" + std::to_string(r.columns_present()) + " of 9)")
           << " | " << detail::cell_text(r.protocol) << " | "
           << (r.glue_deviations.empty() ? std::string("none") : std::to_string(r.glue_deviations.size()) + " (notes)")
           << " |\n";
    }
    for (const auto& p : published_rows) {
        md << "| " << p.name << " (published) | – | – | – | – | – | – | – | – |";
        for (const double v : p.values) md << ' ' << detail::fixed(v, 1) << " |";
        const glue_protocol* proto = detail::protocol_of_row(p);
        md << ' ' << detail::fixed(p.average, 1) << " | "
           << (proto ? std::string(proto->name) : std::string("–")) << " | – |\n";
    }
    md << "\n## Notes\n\n";
    for (const auto& r : runs) {
        md << "- **" << r.label << "**: " << r.state_file.string() << ", " << r.metrics_file.string() << ", "
           << r.report_file.string() << "; step " << r.step << ", " << r.tokens << " tokens.\n";
        for (const auto& d : r.glue_deviations) md << "  - GLUE deviation from the `" << r.protocol << "` protocol: " << d << "\n";
        for (const auto& n : r.notes) md << "  - " << n << "\n";
    }
    return md.str();
}

inline nlohmann::json compare_json(const std::vector<compare_run>& runs) {
    auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
    nlohmann::json j{{"format", "cram-compare"}, {"version", 1}};
    j["columns"] = nlohmann::json::array();
    for (const auto& c : cramming_columns) j["columns"].push_back(c.label);
    j["average_rule"] = "mean of the 9 columns, only when all 9 exist (null otherwise)";
    j["runs"] = nlohmann::json::array();
    for (const auto& r : runs) {
        nlohmann::json cols = nlohmann::json::object();
        for (std::size_t i = 0; i < 9; ++i) cols[cramming_columns[i].label] = r.columns[i] ? nlohmann::json(*r.columns[i]) : nlohmann::json(nullptr);
        const auto avg = r.average();
        j["runs"].push_back({{"label", r.label},
                             {"sources", {{"state", r.state_file.string()}, {"metrics", r.metrics_file.string()},
                                          {"report", r.report_file.string()}}},
                             {"recipe", r.recipe},
                             {"recipe_recorded", r.recipe_recorded},
                             {"preset", r.preset.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.preset)},
                             {"backend", r.backend},
                             {"precision", r.precision},
                             {"precision_recorded", r.precision_recorded},
                             {"ranks", r.ranks},
                             {"budget_s", r.budget_s},
                             {"elapsed_s", r.elapsed_s},
                             {"step", r.step},
                             {"tokens", r.tokens},
                             {"device_hours", r.device_hours()},
                             {"device_hours_unit", r.hours_unit()},
                             {"final_loss", number(r.final_loss)},
                             {"val_loss", number(r.val_loss)},
                             {"stop_reason", r.stop_reason},
                             {"glue", {{"protocol", r.protocol},
                                       {"protocol_recorded", r.protocol_recorded},
                                       {"columns", cols},
                                       {"columns_present", r.columns_present()},
                                       {"average", avg ? nlohmann::json(*avg) : nlohmann::json(nullptr)},
                                       {"deviations", r.glue_deviations},
                                       {"protocol_followed", r.glue_deviations.empty()}}},
                             {"notes", r.notes}});
    }
    j["published"] = nlohmann::json::array();
    for (const auto& p : published_rows) {
        nlohmann::json row{{"name", p.name}, {"average", p.average}};
        for (std::size_t i = 0; i < 9; ++i) row["columns"][cramming_columns[i].label] = p.values[i];
        const glue_protocol* proto = detail::protocol_of_row(p);
        row["protocol"] = proto ? nlohmann::json(std::string(proto->name)) : nlohmann::json(nullptr);
        j["published"].push_back(row);
    }
    return j;
}

}  // namespace cram::eval
