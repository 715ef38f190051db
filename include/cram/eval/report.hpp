// The GLUE report: medians over fine-tuning seeds of each task's last-epoch dev scores, the average in
// the cramming convention (9 numbers: MNLI-m and MNLI-mm separate, WNLI out) and in the leaderboard
// convention (8 tasks: MNLI = mean(m, mm), MRPC/QQP = mean(F1, acc), STS-B = mean(Pearson, Spearman)),
// with CRAMMING.md's published rows alongside; as markdown and JSON.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cram/eval/finetune.hpp"

namespace cram::eval {

inline double median(std::vector<double> v) {
    CRAM_CHECK(!v.empty(), "median of no values");
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct task_summary {
    std::string task;
    std::size_t seeds = 0;
    std::size_t train_examples = 0;
    std::map<std::string, std::map<std::string, double>> median_dev;  // split -> metric -> median (0..1)
};

// Medians over seeds of the last epoch's scores, per task.
inline std::vector<task_summary> summarize(const std::vector<finetune_result>& results) {
    std::map<std::string, std::vector<const finetune_result*>> by_task;
    std::vector<std::string> order;
    for (const auto& r : results) {
        if (!by_task.count(r.task)) order.push_back(r.task);
        by_task[r.task].push_back(&r);
    }
    std::vector<task_summary> out;
    for (const auto& name : order) {
        task_summary s;
        s.task = name;
        const auto& runs = by_task[name];
        s.seeds = runs.size();
        s.train_examples = runs.front()->train_examples;
        std::map<std::string, std::map<std::string, std::vector<double>>> values;
        for (const auto* r : runs) {
            CRAM_CHECK(!r->epochs.empty(), "fine-tuning result of ", name, " has no epochs");
            for (const auto& [split, metrics] : r->epochs.back().dev)
                for (const auto& [metric, v] : metrics) values[split][metric].push_back(v);
        }
        for (const auto& [split, metrics] : values)
            for (const auto& [metric, v] : metrics) s.median_dev[split][metric] = median(v);
        out.push_back(std::move(s));
    }
    return out;
}

// The nine columns of the cramming table, in CRAMMING.md's order.
struct glue_column {
    const char* label;
    const char* task;
    const char* split;
    const char* metric;
};
inline constexpr glue_column cramming_columns[] = {
    {"MNLI-m", "MNLI", "dev_matched", "accuracy"}, {"MNLI-mm", "MNLI", "dev_mismatched", "accuracy"},
    {"SST-2", "SST-2", "dev", "accuracy"},         {"STS-B", "STS-B", "dev", "pearson"},
    {"RTE", "RTE", "dev", "accuracy"},             {"QNLI", "QNLI", "dev", "accuracy"},
    {"QQP", "QQP", "dev", "f1"},                   {"MRPC", "MRPC", "dev", "f1"},
    {"CoLA", "CoLA", "dev", "mcc"}};

struct published_row {
    const char* name;
    double values[9];  // in cramming_columns order, percent
    double average;
};
// CRAMMING.md, "Published results (GLUE dev)".
inline constexpr published_row published_rows[] = {
    {"BERT-base, fully trained", {83.2, 83.4, 91.9, 86.7, 59.2, 90.6, 87.7, 89.3, 56.5}, 80.9},
    {"BERT-base, no pretraining", {34.1, 34.1, 79.9, 17.8, 47.3, 50.0, 68.6, 77.9, 0.0}, 45.5},
    {"crammed BERT, 24 h A6000 (paper v1)", {83.9, 84.1, 92.2, 84.6, 53.8, 89.5, 87.3, 87.5, 44.5}, 78.6},
    {"crammed BERT, 24 h A6000 (released model)", {84.1, 84.6, 92.0, 87.4, 58.5, 90.2, 87.5, 88.9, 53.3}, 80.7},
};

inline std::optional<double> lookup(const std::vector<task_summary>& s, const std::string& task,
                                    const std::string& split, const std::string& metric) {
    for (const auto& t : s)
        if (t.task == task) {
            auto it = t.median_dev.find(split);
            if (it == t.median_dev.end()) return std::nullopt;
            auto m = it->second.find(metric);
            if (m == it->second.end()) return std::nullopt;
            return m->second;
        }
    return std::nullopt;
}

struct glue_average {
    double value = 0;       // percent, over the available entries
    std::size_t have = 0;   // entries available
    std::size_t of = 0;     // entries in the full average
    bool partial() const { return have < of; }
};

// Cramming convention: mean of the nine columns (percent).
inline glue_average cramming_average(const std::vector<task_summary>& s) {
    glue_average a;
    a.of = std::size(cramming_columns);
    double sum = 0;
    for (const auto& c : cramming_columns)
        if (auto v = lookup(s, c.task, c.split, c.metric)) {
            sum += 100.0 * *v;
            ++a.have;
        }
    a.value = a.have ? sum / double(a.have) : 0.0;
    return a;
}

// Leaderboard convention: one number per task (8 tasks, WNLI excluded), multi-metric tasks averaged.
inline std::vector<std::pair<std::string, double>> leaderboard_scores(const std::vector<task_summary>& s) {
    std::vector<std::pair<std::string, double>> out;
    auto mean2 = [&](const char* task, const char* split, const char* m1, const char* m2) -> std::optional<double> {
        auto a = lookup(s, task, split, m1), b = lookup(s, task, split, m2);
        if (a && b) return 100.0 * 0.5 * (*a + *b);
        return std::nullopt;
    };
    auto one = [&](const char* task, const char* metric) -> std::optional<double> {
        auto v = lookup(s, task, "dev", metric);
        return v ? std::optional<double>(100.0 * *v) : std::nullopt;
    };
    const std::pair<const char*, std::optional<double>> entries[] = {
        {"CoLA", one("CoLA", "mcc")},
        {"SST-2", one("SST-2", "accuracy")},
        {"MRPC", mean2("MRPC", "dev", "f1", "accuracy")},
        {"STS-B", mean2("STS-B", "dev", "pearson", "spearman")},
        {"QQP", mean2("QQP", "dev", "f1", "accuracy")},
        {"MNLI", [&]() -> std::optional<double> {
             auto m = lookup(s, "MNLI", "dev_matched", "accuracy"), mm = lookup(s, "MNLI", "dev_mismatched", "accuracy");
             return m && mm ? std::optional<double>(100.0 * 0.5 * (*m + *mm)) : std::nullopt;
         }()},
        {"QNLI", one("QNLI", "accuracy")},
        {"RTE", one("RTE", "accuracy")}};
    for (const auto& [name, v] : entries)
        if (v) out.emplace_back(name, *v);
    return out;
}

inline glue_average leaderboard_average(const std::vector<task_summary>& s) {
    glue_average a;
    a.of = 8;
    const auto scores = leaderboard_scores(s);
    for (const auto& [name, v] : scores) a.value += v;
    a.have = scores.size();
    a.value = a.have ? a.value / double(a.have) : 0.0;
    return a;
}

inline std::string format_percent(double v) {
    std::ostringstream o;
    o.setf(std::ios::fixed);
    o.precision(1);
    o << v;
    return o.str();
}

// Markdown: the cramming table with our row and the published rows, details per task, both averages.
inline std::string report_markdown(const std::vector<task_summary>& s, const std::string& title,
                                   const std::string& notes) {
    std::ostringstream md;
    md << "# " << title << "\n\n";
    if (!notes.empty()) md << notes << "\n\n";
    md << "## GLUE dev, cramming convention (median over seeds, last epoch)\n\n| model |";
    for (const auto& c : cramming_columns) md << ' ' << c.label << " |";
    md << " avg |\n|---|";
    for (std::size_t i = 0; i <= std::size(cramming_columns); ++i) md << "---|";
    md << "\n| **this run** |";
    for (const auto& c : cramming_columns) {
        auto v = lookup(s, c.task, c.split, c.metric);
        md << ' ' << (v ? format_percent(100.0 * *v) : std::string("–")) << " |";
    }
    const glue_average ca = cramming_average(s);
    md << ' ' << (ca.have ? format_percent(ca.value) : std::string("–"))
       << (ca.partial() ? " (partial: " + std::to_string(ca.have) + " of 9)" : std::string()) << " |\n";
    for (const auto& r : published_rows) {
        md << "| " << r.name << " |";
        for (double v : r.values) md << ' ' << format_percent(v) << " |";
        md << ' ' << format_percent(r.average) << " |\n";
    }
    md << "\nMetrics: CoLA Matthews correlation, STS-B Pearson, MRPC and QQP F1, the rest accuracy. "
          "The average is the mean of the available columns; WNLI is excluded.\n";
    const glue_average la = leaderboard_average(s);
    md << "\n## Leaderboard convention\n\nOne number per task (MNLI = mean of m/mm accuracy; MRPC, QQP = mean of "
          "F1 and accuracy; STS-B = mean of Pearson and Spearman; WNLI excluded): average **"
       << (la.have ? format_percent(la.value) : std::string("–")) << "**"
       << (la.partial() ? " (partial: " + std::to_string(la.have) + " of 8 tasks)" : std::string()) << ".\n\n| task | score |\n|---|---|\n";
    for (const auto& [name, v] : leaderboard_scores(s)) md << "| " << name << " | " << format_percent(v) << " |\n";
    md << "\n## Every metric\n\n| task | split | seeds | train examples | metrics |\n|---|---|---|---|---|\n";
    for (const auto& t : s)
        for (const auto& [split, metrics] : t.median_dev) {
            md << "| " << t.task << " | " << split << " | " << t.seeds << " | " << t.train_examples << " |";
            for (const auto& [m, v] : metrics) md << ' ' << m << ' ' << format_percent(100.0 * v);
            md << " |\n";
        }
    return md.str();
}

inline nlohmann::json report_json(const std::vector<task_summary>& s, const std::vector<finetune_result>& runs,
                                  const nlohmann::json& settings) {
    nlohmann::json j;
    j["settings"] = settings;
    for (const auto& t : s) {
        auto& jt = j["tasks"][t.task];
        jt["seeds"] = t.seeds;
        jt["train_examples"] = t.train_examples;
        jt["median_dev"] = t.median_dev;
    }
    for (const auto& r : runs) {
        nlohmann::json jr{{"task", r.task}, {"seed", r.seed}, {"steps", r.steps}};
        for (const auto& e : r.epochs)
            jr["epochs"].push_back({{"epoch", e.epoch}, {"train_loss", e.train_loss}, {"seconds", e.seconds},
                                    {"dev", e.dev}});
        j["runs"].push_back(jr);
    }
    const glue_average ca = cramming_average(s), la = leaderboard_average(s);
    j["cramming_average"] = {{"value", ca.value}, {"entries", ca.have}, {"of", ca.of}, {"partial", ca.partial()}};
    j["leaderboard_average"] = {{"value", la.value}, {"tasks", la.have}, {"of", la.of}, {"partial", la.partial()}};
    for (const auto& c : cramming_columns)
        if (auto v = lookup(s, c.task, c.split, c.metric)) j["cramming_columns"][c.label] = 100.0 * *v;
    for (const auto& r : published_rows) {
        nlohmann::json row{{"name", r.name}, {"average", r.average}};
        for (std::size_t i = 0; i < std::size(cramming_columns); ++i) row[cramming_columns[i].label] = r.values[i];
        j["published"].push_back(row);
    }
    return j;
}

}  // namespace cram::eval
