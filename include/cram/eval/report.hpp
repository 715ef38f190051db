// The GLUE report: per task the median over fine-tuning seeds of the last epoch's dev scores; the average
// in the cramming convention (9 numbers: MNLI-m and MNLI-mm separate, WNLI out; CoLA MCC, STS-B Pearson,
// MRPC/QQP F1, the rest accuracy) and in the leaderboard convention (one score per task, multi-metric tasks
// averaged, WNLI out); CRAMMING.md's published rows alongside; as markdown and JSON.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cram/core/error.hpp"
#include "cram/eval/finetune.hpp"
#include "cram/eval/published.hpp"

namespace cram::eval {

inline double median(std::vector<double> v) {
    CRAM_CHECK(!v.empty(), "median of no values");
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// One task's runs (one per seed) and the medians of their last-epoch scores.
struct task_result {
    std::string task;
    std::vector<finetune_run> runs;
    std::map<std::string, std::map<std::string, double>> median;  // split -> metric -> median, in [-1, 1]
    std::size_t train_examples = 0;
    std::size_t skipped_rows = 0;  // rows the reader skipped (QQP malformed, MNLI without gold label)
};

inline task_result summarize_task(std::string task, std::vector<finetune_run> runs, std::size_t skipped_rows = 0) {
    CRAM_CHECK(!runs.empty(), "no fine-tuning runs for ", task);
    task_result t;
    t.task = std::move(task);
    t.skipped_rows = skipped_rows;
    t.train_examples = runs.front().train_examples;
    std::map<std::string, std::map<std::string, std::vector<double>>> values;
    for (const auto& r : runs) {
        CRAM_CHECK(!r.epochs.empty(), "fine-tuning run of ", t.task, " (seed ", r.seed, ") has no epochs");
        for (const auto& [split, metrics] : r.epochs.back().dev)
            for (const auto& [metric, v] : metrics) values[split][metric].push_back(v);
    }
    for (const auto& [split, metrics] : values)
        for (const auto& [metric, v] : metrics) t.median[split][metric] = median(v);
    t.runs = std::move(runs);
    return t;
}

// One fine-tuning run as JSON: everything needed to rebuild it (its per-epoch dev scores included). The
// report's runs and the `run` lines of glue_metrics.jsonl, which `--resume` reads back, use it. A NaN
// (a train loss never read) is written as null, and read back as NaN.
inline nlohmann::json run_json(const finetune_run& run) {
    nlohmann::json jr{{"task", run.task},
                      {"seed", run.seed},
                      {"train_examples", run.train_examples},
                      {"total_steps", run.total_steps},
                      {"from_scratch", run.from_scratch}};
    jr["epochs"] = nlohmann::json::array();
    for (const auto& e : run.epochs)
        jr["epochs"].push_back({{"epoch", e.epoch}, {"steps", e.steps}, {"train_loss", e.train_loss},
                                {"seconds", e.seconds}, {"dev", e.dev}});
    return jr;
}

// The inverse of run_json; throws cram::error naming what is missing or malformed.
inline finetune_run run_from_json(const nlohmann::json& j) {
    auto number = [](const nlohmann::json& v) { return v.is_null() ? std::nan("") : v.get<double>(); };
    finetune_run r;
    try {
        r.task = j.at("task").get<std::string>();
        r.seed = j.at("seed").get<std::uint64_t>();
        r.train_examples = j.at("train_examples").get<std::size_t>();
        r.total_steps = j.at("total_steps").get<std::int64_t>();
        r.from_scratch = j.at("from_scratch").get<bool>();
        for (const auto& je : j.at("epochs")) {
            epoch_score e;
            e.epoch = je.at("epoch").get<int>();
            e.steps = je.at("steps").get<std::int64_t>();
            e.train_loss = number(je.at("train_loss"));
            e.seconds = number(je.at("seconds"));
            for (const auto& [split, metrics] : je.at("dev").items())
                for (const auto& [metric, v] : metrics.items()) e.dev[split][metric] = number(v);
            r.epochs.push_back(std::move(e));
        }
    } catch (const nlohmann::json::exception& e) {
        CRAM_THROW("malformed fine-tuning run record: ", e.what());
    }
    CRAM_CHECK(!r.epochs.empty(), "fine-tuning run record of ", r.task, " (seed ", r.seed, ") has no epochs");
    return r;
}

// A task not every seed of which ran (the evaluation was interrupted): the runs that completed, no median.
struct incomplete_task {
    std::string task;
    std::vector<finetune_run> runs;  // completed seeds only
    int seeds = 0;                   // seeds the evaluation asked for
};

// Why a report is partial: the signal that stopped the evaluation, how far it got, how to continue.
struct glue_interruption {
    int signal = 0;  // 0: the evaluation completed
    std::string signal_name;
    int runs_done = 0, runs_total = 0;  // (task, seed) runs complete, of all the evaluation needs
    std::string resume;                 // how to continue, e.g. "`cram_bert_24h glue ... --resume`"
};

struct glue_report {
    std::string title = "GLUE dev report";
    std::vector<task_result> tasks;  // complete tasks only: every seed ran
    std::vector<incomplete_task> incomplete;
    glue_interruption interruption;
    bool interrupted() const { return interruption.signal != 0; }
    std::vector<std::pair<std::string, std::string>> missing;  // task -> why it was not run
    glue_protocol protocol = glue_protocols::released;           // the protocol the evaluation followed
    std::vector<std::string> deviations;                       // from that protocol
    std::vector<std::string> notes;                            // checkpoint, preset, backend, times
    nlohmann::json settings = nlohmann::json::object();
};

inline std::optional<double> lookup(const std::vector<task_result>& tasks, const std::string& task,
                                    const std::string& split, const std::string& metric) {
    for (const auto& t : tasks) {
        if (t.task != task) continue;
        const auto s = t.median.find(split);
        if (s == t.median.end()) return std::nullopt;
        const auto m = s->second.find(metric);
        if (m == s->second.end()) return std::nullopt;
        return m->second;
    }
    return std::nullopt;
}

struct glue_average {
    double value = std::nan("");  // percent; NaN when nothing is available
    int have = 0, of = 0;
    std::vector<std::string> missing;  // column or task labels not in the average
    bool partial() const { return have < of; }
};

// Cramming convention: the mean of the nine columns (percent); partial when some are missing.
inline glue_average cramming_average(const std::vector<task_result>& tasks) {
    glue_average a;
    a.of = 9;
    double sum = 0;
    for (const auto& c : cramming_columns) {
        if (const auto v = lookup(tasks, c.task, c.split, c.metric)) {
            sum += 100.0 * *v;
            ++a.have;
        } else {
            a.missing.push_back(c.label);
        }
    }
    if (a.have) a.value = sum / a.have;
    return a;
}

// Leaderboard convention (the GLUE benchmark's scoring, WNLI left out as in BERT and cramming): one score
// per task, the unweighted mean of the task's metrics — MNLI mean(m acc, mm acc), MRPC and QQP mean(F1,
// acc), STS-B mean(Pearson, Spearman), CoLA MCC, the rest accuracy — then the mean over the 8 tasks.
inline std::vector<std::pair<std::string, std::optional<double>>> leaderboard_scores(
    const std::vector<task_result>& tasks) {
    auto mean_of = [&](const char* task, std::vector<std::pair<const char*, const char*>> parts) {
        double s = 0;
        for (const auto& [split, metric] : parts) {
            const auto v = lookup(tasks, task, split, metric);
            if (!v) return std::optional<double>{};
            s += 100.0 * *v;
        }
        return std::optional<double>(s / double(parts.size()));
    };
    return {{"CoLA", mean_of("CoLA", {{"dev", "mcc"}})},
            {"SST-2", mean_of("SST-2", {{"dev", "accuracy"}})},
            {"MRPC", mean_of("MRPC", {{"dev", "f1"}, {"dev", "accuracy"}})},
            {"STS-B", mean_of("STS-B", {{"dev", "pearson"}, {"dev", "spearman"}})},
            {"QQP", mean_of("QQP", {{"dev", "f1"}, {"dev", "accuracy"}})},
            {"MNLI", mean_of("MNLI", {{"dev_matched", "accuracy"}, {"dev_mismatched", "accuracy"}})},
            {"QNLI", mean_of("QNLI", {{"dev", "accuracy"}})},
            {"RTE", mean_of("RTE", {{"dev", "accuracy"}})}};
}

inline glue_average leaderboard_average(const std::vector<task_result>& tasks) {
    glue_average a;
    a.of = 8;
    double sum = 0;
    for (const auto& [name, v] : leaderboard_scores(tasks)) {
        if (v) {
            sum += *v;
            ++a.have;
        } else {
            a.missing.push_back(name);
        }
    }
    if (a.have) a.value = sum / a.have;
    return a;
}

inline std::string percent(double v, int decimals = 1) {
    if (!std::isfinite(v)) return "–";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

namespace detail {
inline std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
    return s;
}
inline std::string average_cell(const glue_average& a) {
    if (a.have == 0) return "–";
    std::string s = percent(a.value);
    if (a.partial()) s += " (partial: " + std::to_string(a.have) + " of " + std::to_string(a.of) + ")";
    return s;
}
}  // namespace detail

inline std::string report_markdown(const glue_report& r) {
    std::ostringstream md;
    md << "# " << r.title << (r.interrupted() ? " (interrupted, partial)" : "") << "\n\n";
    if (r.interrupted())
        md << "**Interrupted by " << r.interruption.signal_name << ": " << r.interruption.runs_done << " of "
           << r.interruption.runs_total << " runs complete; continue with " << r.interruption.resume
           << ".** Tasks whose seeds did not all run have no median, and no GLUE average is given until every "
              "run is done.\n\n";
    md << "- GLUE protocol `" << r.protocol.name << "`: " << describe_glue_protocol(r.protocol) << "; from "
       << r.protocol.source << ". Its published row: " << r.protocol.published_row << ".\n";
    for (const auto& n : r.notes) md << "- " << n << "\n";
    if (!r.deviations.empty()) {
        md << "\n**Deviations from the `" << r.protocol.name << "` GLUE protocol**: these numbers are not comparable "
              "with the published ones.\n\n";
        for (const auto& d : r.deviations) md << "- " << d << "\n";
    }
    if (!r.missing.empty()) {
        md << "\n**Tasks not run:**\n\n";
        for (const auto& [t, why] : r.missing) md << "- " << t << ": " << why << "\n";
    }
    if (!r.incomplete.empty()) {
        md << "\n**Tasks incomplete** (interrupted; no median until every seed ran):\n\n";
        for (const auto& t : r.incomplete) {
            md << "- " << t.task << ": " << t.runs.size() << " of " << t.seeds << " seeds complete";
            if (!t.runs.empty()) {
                const std::string& headline = glue_task(t.task).metrics.front();
                md << " (last-epoch " << headline << " per seed:";
                for (const auto& run : t.runs)
                    for (const auto& [split, metrics] : run.epochs.back().dev)
                        if (metrics.count(headline))
                            md << ' ' << (run.epochs.back().dev.size() > 1 ? split + " " : std::string())
                               << percent(100.0 * metrics.at(headline));
                md << ")";
            }
            md << "\n";
        }
    }
    // an interrupted evaluation claims no average: the tasks still to run would change it
    const bool averages = !r.interrupted();
    const glue_average ca = cramming_average(r.tasks);
    md << "\n## Cramming convention (GLUE dev, median over seeds, last epoch)\n\n"
          "CoLA Matthews correlation, STS-B Pearson, MRPC and QQP F1, the rest accuracy; the average is the mean of "
          "the 9 columns (MNLI-m and MNLI-mm count separately, WNLI excluded).";
    const bool same_columns = averages && ca.partial() && ca.have;
    if (!averages)
        md << " **No average:** the evaluation was interrupted before every run was done.";
    else if (same_columns)
        md << " **Partial average:** " << ca.have << " of 9 columns (missing: " << detail::join(ca.missing)
           << "); the `same columns` figure averages each published row over the same columns.";
    md << "\n\n| model |";
    for (const auto& c : cramming_columns) md << ' ' << c.label << " |";
    md << " avg |" << (same_columns ? " same columns |" : "") << "\n|---|";
    for (int i = 0; i < 10 + (same_columns ? 1 : 0); ++i) md << "---|";
    md << "\n| **this run** |";
    for (const auto& c : cramming_columns) {
        const auto v = lookup(r.tasks, c.task, c.split, c.metric);
        md << ' ' << (v ? "**" + percent(100.0 * *v) + "**" : std::string("–")) << " |";
    }
    md << ' ' << (averages ? detail::average_cell(ca) : std::string("– (interrupted)")) << " |"
       << (same_columns ? " " + percent(ca.value) + " |" : "") << "\n";
    for (const auto& p : published_rows) {
        md << "| " << p.name << (r.protocol.published_row == p.name ? " (this protocol's row)" : "") << " |";
        double same = 0;
        for (int i = 0; i < 9; ++i) {
            md << ' ' << percent(p.values[i]) << " |";
            if (lookup(r.tasks, cramming_columns[i].task, cramming_columns[i].split, cramming_columns[i].metric))
                same += p.values[i];
        }
        md << ' ' << percent(p.average) << " |";
        if (same_columns) md << ' ' << percent(same / ca.have) << " |";
        md << "\n";
    }

    const glue_average la = leaderboard_average(r.tasks);
    md << "\n## Leaderboard convention\n\n"
          "One score per task, the mean of its metrics (MNLI: matched and mismatched accuracy; MRPC, QQP: F1 and "
          "accuracy; STS-B: Pearson and Spearman; CoLA: MCC; others: accuracy), averaged over the 8 tasks "
          "(WNLI excluded). Average: **"
       << (averages ? detail::average_cell(la) : std::string("– (interrupted)")) << "**.\n\n| task | score |\n|---|---|\n";
    for (const auto& [name, v] : leaderboard_scores(r.tasks))
        md << "| " << name << " | " << (v ? percent(*v) : std::string("–")) << " |\n";

    md << "\n## Every task, every metric (median over seeds of the last epoch; percent)\n\n"
          "| task | split | seeds | train examples | metrics | per seed (headline metric) |\n|---|---|---|---|---|---|\n";
    for (const auto& t : r.tasks) {
        const auto& info = glue_task(t.task);
        for (const auto& [split, metrics] : t.median) {
            md << "| " << t.task << " | " << split << " | " << t.runs.size() << " | " << t.train_examples << " |";
            for (const auto& m : info.metrics)
                if (metrics.count(m)) md << ' ' << m << ' ' << percent(100.0 * metrics.at(m));
            for (const auto& [m, v] : metrics)
                if (std::find(info.metrics.begin(), info.metrics.end(), m) == info.metrics.end())
                    md << " (" << m << ' ' << percent(100.0 * v) << ')';
            md << " |";
            for (const auto& run : t.runs) {
                const auto& last = run.epochs.back().dev;
                const auto s = last.find(split);
                if (s != last.end() && s->second.count(info.metrics.front()))
                    md << ' ' << percent(100.0 * s->second.at(info.metrics.front()));
            }
            md << " |\n";
        }
        if (t.skipped_rows) md << "| " << t.task << " | | | | " << t.skipped_rows << " unreadable rows skipped | |\n";
    }
    for (const auto& t : r.incomplete)
        md << "| " << t.task << " | | " << t.runs.size() << " of " << t.seeds << " (incomplete) | | no median | |\n";
    return md.str();
}

// A protocol as report.json records it (`name` is what compare and readers key on).
inline nlohmann::json glue_protocol_json(const glue_protocol& p) {
    return {{"name", p.name},
            {"batch", p.batch},
            {"lr", p.lr},
            {"epochs", p.epochs},
            {"warmup_fraction", p.warmup_fraction},
            {"schedule", p.schedule},
            {"published_row", p.published_row},
            {"source", p.source}};
}

inline nlohmann::json report_json(const glue_report& r) {
    nlohmann::json j;
    j["title"] = r.title;
    j["settings"] = r.settings;
    j["notes"] = r.notes;
    j["protocol"] = glue_protocol_json(r.protocol);
    j["deviations"] = r.deviations;
    j["protocol_followed"] = r.deviations.empty();
    j["missing"] = nlohmann::json::object();
    for (const auto& [t, why] : r.missing) j["missing"][t] = why;
    j["tasks"] = nlohmann::json::object();
    for (const auto& t : r.tasks) {
        nlohmann::json jt{{"median", t.median}, {"train_examples", t.train_examples}, {"skipped_rows", t.skipped_rows},
                          {"metrics", glue_task(t.task).metrics}};
        for (const auto& run : t.runs) jt["runs"].push_back(run_json(run));
        j["tasks"][t.task] = jt;
    }
    j["complete"] = !r.interrupted();
    if (r.interrupted()) {
        const auto& i = r.interruption;
        j["interrupted"] = {{"signal", i.signal_name}, {"runs_done", i.runs_done}, {"runs_total", i.runs_total},
                            {"resume", i.resume},
                            {"message", "interrupted by " + i.signal_name + ": " + std::to_string(i.runs_done) + " of " +
                                            std::to_string(i.runs_total) + " runs complete; continue with " + i.resume}};
    }
    j["incomplete"] = nlohmann::json::object();
    for (const auto& t : r.incomplete) {
        nlohmann::json jt{{"seeds_done", t.runs.size()}, {"seeds", t.seeds}, {"runs", nlohmann::json::array()}};
        for (const auto& run : t.runs) jt["runs"].push_back(run_json(run));
        j["incomplete"][t.task] = jt;
    }
    // an interrupted evaluation claims no average (value null, `withheld` says why)
    auto avg_json = [&r](const glue_average& a) {
        const bool give = a.have && !r.interrupted();
        nlohmann::json out{{"value", give ? nlohmann::json(a.value) : nlohmann::json(nullptr)},
                           {"have", a.have},
                           {"of", a.of},
                           {"partial", a.partial() || r.interrupted()},
                           {"missing", a.missing}};
        if (r.interrupted()) out["withheld"] = "the evaluation was interrupted before every run was done";
        return out;
    };
    j["cramming"]["average"] = avg_json(cramming_average(r.tasks));
    j["cramming"]["columns"] = nlohmann::json::object();
    for (const auto& c : cramming_columns)
        if (const auto v = lookup(r.tasks, c.task, c.split, c.metric)) j["cramming"]["columns"][c.label] = 100.0 * *v;
    j["leaderboard"]["average"] = avg_json(leaderboard_average(r.tasks));
    j["leaderboard"]["tasks"] = nlohmann::json::object();
    for (const auto& [name, v] : leaderboard_scores(r.tasks))
        if (v) j["leaderboard"]["tasks"][name] = *v;
    for (const auto& p : published_rows) {
        nlohmann::json row{{"name", p.name}, {"average", p.average}};
        for (int i = 0; i < 9; ++i) row["columns"][cramming_columns[i].label] = p.values[i];
        j["published"].push_back(row);
    }
    return j;
}

}  // namespace cram::eval
