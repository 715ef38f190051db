// The nine GLUE tasks: a registry (files, labels, metrics, dev splits) and readers for the official TSV
// layout of each (the files the GLUE site and Hugging Face's `glue` loader distribute), with labels mapped
// the way the field does (HF GLUE convention). Rows that cannot be read throw cram::error naming file:line;
// QQP's known malformed rows and MNLI's no-consensus rows are skipped and counted instead.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "cram/core/error.hpp"

namespace cram::eval {

// One row: one or two texts and a class label (classification) or a score (STS-B regression).
struct glue_example {
    std::string a, b;  // b is empty and unused for single-sentence tasks
    int label = -1;    // class index, -1 for regression
    float score = 0.0f;
};

// How a task's files are laid out.
enum class glue_layout {
    cola,   // no header; label column 1, sentence column 3
    sst2,   // header: sentence, label
    mrpc,   // header (UTF-8 BOM first): Quality, #1 ID, #2 ID, #1 String, #2 String
    stsb,   // header; texts columns 7 and 8, score (0-5) in the last column
    qqp,    // header: id qid1 qid2 question1 question2 is_duplicate (by name); malformed rows skipped
    mnli,   // header; texts columns 8 and 9, gold_label last; dev_matched / dev_mismatched
    named,  // header with sentence-pair columns named in glue_task_info (QNLI, RTE, WNLI)
};

struct glue_task_info {
    std::string name;                      // as in CRAMMING.md and the directory name: "SST-2", "STS-B", ...
    glue_layout layout = glue_layout::named;
    bool pair = true;                      // two texts ([CLS] A [SEP] B [SEP]) or one ([CLS] A [SEP])
    int num_labels = 2;                    // 1 = regression
    std::vector<std::string> label_names;  // label text in the file -> index in this list (empty: integers)
    std::string col_a, col_b, col_label;   // header names, for the `named` and `qqp` layouts
    std::vector<std::string> metrics;      // what is reported, the headline metric first
    std::vector<std::string> dev_splits;   // file stems scored after every epoch
    bool regression() const { return num_labels == 1; }
};

// The registry, in CRAMMING.md's table order, WNLI last (it is reported but never averaged).
inline const std::vector<glue_task_info>& glue_tasks() {
    static const std::vector<glue_task_info> tasks = [] {
        std::vector<glue_task_info> t;
        auto add = [&](glue_task_info i) { t.push_back(std::move(i)); };
        add({"MNLI", glue_layout::mnli, true, 3, {"entailment", "neutral", "contradiction"}, "", "", "",
             {"accuracy"}, {"dev_matched", "dev_mismatched"}});
        add({"SST-2", glue_layout::sst2, false, 2, {}, "sentence", "", "label", {"accuracy"}, {"dev"}});
        add({"STS-B", glue_layout::stsb, true, 1, {}, "", "", "", {"pearson", "spearman"}, {"dev"}});
        add({"RTE", glue_layout::named, true, 2, {"entailment", "not_entailment"}, "sentence1", "sentence2", "label",
             {"accuracy"}, {"dev"}});
        add({"QNLI", glue_layout::named, true, 2, {"entailment", "not_entailment"}, "question", "sentence", "label",
             {"accuracy"}, {"dev"}});
        add({"QQP", glue_layout::qqp, true, 2, {}, "question1", "question2", "is_duplicate", {"f1", "accuracy"},
             {"dev"}});
        add({"MRPC", glue_layout::mrpc, true, 2, {}, "", "", "", {"f1", "accuracy"}, {"dev"}});
        add({"CoLA", glue_layout::cola, false, 2, {}, "", "", "", {"mcc"}, {"dev"}});
        add({"WNLI", glue_layout::named, true, 2, {}, "sentence1", "sentence2", "label", {"accuracy"}, {"dev"}});
        return t;
    }();
    return tasks;
}

namespace detail {
inline std::string glue_key(std::string_view s) {  // "sst-2", "SST2", "sst_2" -> "sst2"
    std::string k;
    for (char c : s)
        if (std::isalnum(static_cast<unsigned char>(c))) k += char(std::tolower(static_cast<unsigned char>(c)));
    return k;
}
}  // namespace detail

// Looks a task up by name, ignoring case and punctuation ("sst2", "STS-B", "mnli").
inline const glue_task_info& glue_task(std::string_view name) {
    for (const auto& t : glue_tasks())
        if (detail::glue_key(t.name) == detail::glue_key(name)) return t;
    std::string known;
    for (const auto& t : glue_tasks()) known += (known.empty() ? "" : ", ") + t.name;
    CRAM_THROW("unknown GLUE task '", name, "' (known: ", known, ")");
}

// One file read: the examples and how many rows were skipped (QQP malformed rows, MNLI rows without a
// gold label), with the first few skipped line numbers for the log.
struct glue_split {
    std::string task, split;
    std::filesystem::path file;
    std::vector<glue_example> examples;
    std::size_t skipped = 0;
    std::vector<std::size_t> skipped_lines;  // at most 10
};

namespace detail {

inline std::vector<std::string_view> split_tabs(std::string_view line) {
    std::vector<std::string_view> f;
    std::size_t start = 0;
    for (;;) {
        const std::size_t tab = line.find('\t', start);
        if (tab == line.npos) {
            f.push_back(line.substr(start));
            return f;
        }
        f.push_back(line.substr(start, tab - start));
        start = tab + 1;
    }
}

inline bool parse_int(std::string_view s, int& out) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.remove_suffix(1);
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    if (s.empty() || s.size() > 9) return false;
    int v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    out = v;
    return true;
}

inline bool parse_float(std::string_view s, float& out) {
    const std::string str(s);
    char* end = nullptr;
    const double v = std::strtod(str.c_str(), &end);
    if (end == str.c_str()) return false;
    while (*end == ' ' || *end == '\r') ++end;
    if (*end != '\0' || !(v == v)) return false;
    out = static_cast<float>(v);
    return true;
}

// A row that cannot be read: thrown as a cram::error naming the file and 1-based line, or (for the
// tasks whose official files are known to hold such rows) skipped and counted.
struct bad_row {
    std::string why;
};

inline std::string quote_field(std::string_view f) {
    std::string s(f.substr(0, 40));
    if (f.size() > 40) s += "...";
    return "'" + s + "'";
}

inline int find_column(const std::vector<std::string_view>& header, const std::string& name,
                       const std::filesystem::path& file) {
    for (std::size_t i = 0; i < header.size(); ++i) {
        std::string_view h = header[i];
        while (!h.empty() && (h.back() == '\r' || h.back() == ' ')) h.remove_suffix(1);
        if (h == name) return static_cast<int>(i);
    }
    std::string have;
    for (auto h : header) have += (have.empty() ? "" : ", ") + std::string(h);
    CRAM_THROW(file.string(), ":1: header has no column '", name, "' (columns: ", have,
               "); is this the official GLUE file for this task?");
}

}  // namespace detail

// Reads one official GLUE TSV file of `task`. Fields are split on tabs with no quote handling, as the
// official files are written (an unbalanced `"` in MRPC and SST-2 text is part of the sentence).
inline glue_split read_glue_file(const std::filesystem::path& file, const glue_task_info& task,
                                 const std::string& split_name = "") {
    using detail::bad_row;
    std::ifstream in(file, std::ios::binary);
    CRAM_CHECK(static_cast<bool>(in), "cannot open GLUE file ", file.string(),
               " (expected the official layout DIR/", task.name, "/train.tsv, dev.tsv; see docs/glue.md)");
    std::ostringstream buf;
    buf << in.rdbuf();
    std::string text = buf.str();
    if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);  // MRPC's byte order mark

    glue_split out;
    out.task = task.name;
    out.split = split_name;
    out.file = file;

    const bool has_header = task.layout != glue_layout::cola;
    int ia = -1, ib = -1, il = -1;  // column indices; -1 label index means "last column"
    std::size_t min_cols = 0;
    switch (task.layout) {
        case glue_layout::cola: ia = 3, il = 1, min_cols = 4; break;
        case glue_layout::mrpc: ia = 3, ib = 4, il = 0, min_cols = 5; break;
        case glue_layout::stsb: ia = 7, ib = 8, il = -1, min_cols = 10; break;
        case glue_layout::mnli: ia = 8, ib = 9, il = -1, min_cols = 11; break;
        default: break;  // by header name below
    }

    std::size_t line_no = 0, pos = 0;
    bool header_seen = !has_header;
    const bool skip_bad = task.layout == glue_layout::qqp;
    while (pos < text.size()) {
        std::size_t nl = text.find('\n', pos);
        if (nl == text.npos) nl = text.size();
        std::string_view line(text.data() + pos, nl - pos);
        pos = nl + 1;
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        const auto f = detail::split_tabs(line);
        if (!header_seen) {
            header_seen = true;
            if (task.layout == glue_layout::mrpc)
                CRAM_CHECK(f[0] == "Quality", file.string(), ":1: expected MRPC's header 'Quality\\t#1 ID\\t...', found ",
                           detail::quote_field(line));
            if (!task.col_a.empty()) {
                ia = detail::find_column(f, task.col_a, file);
                if (task.pair) ib = detail::find_column(f, task.col_b, file);
                il = detail::find_column(f, task.col_label, file);
                min_cols = std::size_t(std::max({ia, ib, il})) + 1;
            }
            continue;
        }
        try {
            if (f.size() < min_cols)
                throw bad_row{"expected at least " + std::to_string(min_cols) + " tab-separated columns, found " +
                              std::to_string(f.size())};
            glue_example ex;
            ex.a = std::string(f[std::size_t(ia)]);
            if (task.pair) ex.b = std::string(f[std::size_t(ib)]);
            const std::string_view lab = il < 0 ? f.back() : f[std::size_t(il)];
            if (task.regression()) {
                if (!detail::parse_float(lab, ex.score))
                    throw bad_row{"score " + detail::quote_field(lab) + " is not a number"};
                if (task.layout == glue_layout::stsb && (ex.score < 0.0f || ex.score > 5.0f))
                    throw bad_row{"score " + detail::quote_field(lab) + " outside STS-B's range [0, 5]"};
            } else if (!task.label_names.empty()) {
                std::string_view l = lab;
                while (!l.empty() && l.back() == ' ') l.remove_suffix(1);
                const auto it = std::find(task.label_names.begin(), task.label_names.end(), l);
                if (it == task.label_names.end()) {
                    if (task.layout == glue_layout::mnli && l == "-") {  // annotators disagreed: no gold label
                        ++out.skipped;
                        if (out.skipped_lines.size() < 10) out.skipped_lines.push_back(line_no);
                        continue;
                    }
                    std::string names;
                    for (const auto& n : task.label_names) names += (names.empty() ? "" : ", ") + n;
                    throw bad_row{"label " + detail::quote_field(lab) + " is not one of " + names};
                }
                ex.label = static_cast<int>(it - task.label_names.begin());
            } else {
                if (!detail::parse_int(lab, ex.label) || ex.label >= task.num_labels)
                    throw bad_row{"label " + detail::quote_field(lab) + " is not an integer in [0, " +
                                  std::to_string(task.num_labels) + ")"};
            }
            out.examples.push_back(std::move(ex));
        } catch (const bad_row& e) {
            if (!skip_bad)
                CRAM_THROW(file.string(), ":", line_no, ": ", task.name, " row cannot be read: ", e.why,
                           " (the official GLUE layout is described in docs/glue.md)");
            ++out.skipped;
            if (out.skipped_lines.size() < 10) out.skipped_lines.push_back(line_no);
        }
    }
    CRAM_CHECK(header_seen, file.string(), ": empty file (", task.name, " expects a header line)");
    return out;
}

// DIR/<task>/<split>.tsv, e.g. read_glue_split(dir, glue_task("MNLI"), "dev_matched").
inline glue_split read_glue_split(const std::filesystem::path& glue_dir, const glue_task_info& task,
                                  const std::string& split) {
    return read_glue_file(glue_dir / task.name / (split + ".tsv"), task, split);
}

}  // namespace cram::eval
