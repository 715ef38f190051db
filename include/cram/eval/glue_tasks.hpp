// The nine GLUE tasks: a registry (label count, dev splits, headline metric) and a reader for the official
// TSV layout of each (the files the GLUE site distributes), labels mapped as the Hugging Face GLUE datasets
// map them. Unreadable rows throw cram::error naming file:line; only QQP's known malformed rows are skipped.
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
#include "cram/core/text.hpp"

namespace cram::eval {

// One row: one or two texts and a class label (classification) or a score (STS-B regression).
struct glue_example {
    std::string a, b;  // b empty for single-sentence tasks
    int label = -1;    // class index; -1 for STS-B
    float score = 0.0f;
};

struct glue_split {
    std::string name;  // "train", "dev", "dev_matched", "dev_mismatched"
    std::vector<glue_example> examples;
    std::size_t skipped = 0;  // QQP malformed rows
    std::string task;           // e.g. "QQP"
    std::filesystem::path file;  // the file read
};

struct glue_task_info {
    std::string name;                      // "CoLA","SST-2","MRPC","STS-B","QQP","MNLI","QNLI","RTE","WNLI"
    int num_labels;                        // 1 for STS-B (regression)
    bool regression;
    std::vector<std::string> dev_splits;   // {"dev"}; MNLI: {"dev_matched","dev_mismatched"}
    std::string metric;                    // "mcc" (CoLA), "pearson" (STS-B), "f1" (MRPC, QQP), "accuracy"
    bool pair = true;                      // two texts ([CLS] A [SEP] B [SEP]); CoLA, SST-2: one ([CLS] A [SEP])
    std::vector<std::string> metrics{};    // everything the report shows, the headline `metric` first

    // The split files under <glue_dir>/<name>/: "train.tsv", then one per dev split.
    std::vector<std::string> files() const {
        std::vector<std::string> f{"train.tsv"};
        for (const auto& d : dev_splits) f.push_back(d + ".tsv");
        return f;
    }
};

// All nine, in GLUE's own order.
inline const std::vector<glue_task_info>& glue_tasks() {
    static const std::vector<glue_task_info> tasks{
        {"CoLA", 2, false, {"dev"}, "mcc", false, {"mcc", "accuracy"}},
        {"SST-2", 2, false, {"dev"}, "accuracy", false, {"accuracy"}},
        {"MRPC", 2, false, {"dev"}, "f1", true, {"f1", "accuracy"}},
        {"STS-B", 1, true, {"dev"}, "pearson", true, {"pearson", "spearman"}},
        {"QQP", 2, false, {"dev"}, "f1", true, {"f1", "accuracy"}},
        {"MNLI", 3, false, {"dev_matched", "dev_mismatched"}, "accuracy", true, {"accuracy"}},
        {"QNLI", 2, false, {"dev"}, "accuracy", true, {"accuracy"}},
        {"RTE", 2, false, {"dev"}, "accuracy", true, {"accuracy"}},
        {"WNLI", 2, false, {"dev"}, "accuracy", true, {"accuracy"}},
    };
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

// Case- and punctuation-insensitive lookup: "sst2", "SST-2", "sts_b", "mnli".
inline const glue_task_info& glue_task(std::string_view name) {
    for (const auto& t : glue_tasks())
        if (detail::glue_key(t.name) == detail::glue_key(name)) return t;
    std::string known;
    for (const auto& t : glue_tasks()) known += (known.empty() ? "" : ", ") + t.name;
    CRAM_THROW("unknown GLUE task '", name, "'; valid names: ", known);
}

namespace detail {

// Where each task keeps its fields. Fixed column indices for the files without usable header names;
// header names for the rest (QQP's column order is only reliable by name).
struct glue_layout {
    bool header = true;
    int col_a = -1, col_b = -1, col_label = -1;  // col_label -1: the last column
    std::size_t min_cols = 0;              // columns a row must have
    bool exact = true;                     // exactly min_cols (MNLI: at least; train 12, dev 16 columns)
    const char* name_a = nullptr;          // by header name when set
    const char* name_b = nullptr;
    const char* name_label = nullptr;
    std::vector<std::string> label_names;  // label text -> its index here; empty: integer labels
    bool skip_malformed = false;           // QQP
};

inline glue_layout layout_of(const glue_task_info& t) {
    glue_layout l;
    const std::vector<std::string> nli2{"entailment", "not_entailment"};
    if (t.name == "CoLA") {
        l.header = false, l.col_a = 3, l.col_label = 1, l.min_cols = 4;
    } else if (t.name == "SST-2") {
        l.name_a = "sentence", l.name_label = "label";
    } else if (t.name == "MRPC") {
        l.col_a = 3, l.col_b = 4, l.col_label = 0, l.min_cols = 5;
    } else if (t.name == "STS-B") {
        l.col_a = 7, l.col_b = 8, l.col_label = -1, l.min_cols = 10;
    } else if (t.name == "QQP") {
        l.name_a = "question1", l.name_b = "question2", l.name_label = "is_duplicate", l.skip_malformed = true;
    } else if (t.name == "MNLI") {
        l.col_a = 8, l.col_b = 9, l.col_label = -1, l.min_cols = 11, l.exact = false;
        l.label_names = {"entailment", "neutral", "contradiction"};
    } else if (t.name == "QNLI") {
        l.name_a = "question", l.name_b = "sentence", l.name_label = "label", l.label_names = nli2;
    } else if (t.name == "RTE") {
        l.name_a = "sentence1", l.name_b = "sentence2", l.name_label = "label", l.label_names = nli2;
    } else if (t.name == "WNLI") {
        l.name_a = "sentence1", l.name_b = "sentence2", l.name_label = "label";
    } else {
        CRAM_THROW("no GLUE file layout for task '", t.name, "'; use cram::eval::glue_task() to get a task");
    }
    return l;
}

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

inline std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.remove_suffix(1);
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    return s;
}

inline bool parse_label_int(std::string_view s, int& out) {
    s = trim(s);
    if (s.empty() || s.size() > 9) return false;
    int v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    out = v;
    return true;
}

inline bool parse_score(std::string_view s, float& out) {
    const std::string str(trim(s));
    if (str.empty()) return false;
    char* end = nullptr;
    const double v = std::strtod(str.c_str(), &end);
    if (end != str.c_str() + str.size() || !(v == v)) return false;
    out = static_cast<float>(v);
    return true;
}

// A line as text a reader can see whole: printable ASCII as is, backslash, tab and CR escaped, every
// other byte (control characters, a byte-order mark, a no-break space, any non-ASCII) as \xNN.
inline std::string visible(std::string_view s, std::size_t max_bytes = 200) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (std::size_t i = 0; i < s.size() && i < max_bytes; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '\\') out += "\\\\";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (c >= 0x20 && c < 0x7F) out += char(c);
        else out.append("\\x").append(1, hex[c >> 4]).append(1, hex[c & 15]);
    }
    if (s.size() > max_bytes) out += "...";
    return out;
}

inline std::string quote_field(std::string_view f) {
    std::string s(f.substr(0, 40));
    if (f.size() > 40) s += "...";
    return "'" + s + "'";
}

struct bad_row {
    std::string why;
};

// `line` is the header line as read (after the byte-order mark, if any, was dropped): the error shows it
// escaped, so a stray invisible byte is visible.
inline int find_column(const std::vector<std::string_view>& header, const char* name,
                       const std::filesystem::path& file, std::string_view line) {
    for (std::size_t i = 0; i < header.size(); ++i)
        if (trim(header[i]) == name) return static_cast<int>(i);
    CRAM_THROW(file.string(), ":1: header has no column '", name, "'; the header read was \"", visible(line),
               "\" (", header.size(), " tab-separated columns); is this the official GLUE file? See docs/glue.md");
}

}  // namespace detail

// Reads glue_dir/<task.name>/<split>.tsv. Fields are split on tabs with no quote handling, as the official
// files are written (a lone `"` in SST-2 or MRPC text is part of the sentence).
inline glue_split read_glue_split(const std::filesystem::path& glue_dir, const glue_task_info& task,
                                  std::string_view split) {
    using detail::bad_row;
    const detail::glue_layout lay = detail::layout_of(task);
    const std::filesystem::path file = glue_dir / task.name / (std::string(split) + ".tsv");
    std::ifstream in(file, std::ios::binary);
    CRAM_CHECK(static_cast<bool>(in), "cannot open GLUE file ", file.string(), ": expected the official layout ",
               "<glue_dir>/", task.name, "/{train,", task.dev_splits.size() > 1 ? "dev_matched,dev_mismatched" : "dev",
               "}.tsv; download GLUE as described in docs/glue.md (e.g. the GLUE site's download_glue_data.py)");
    std::ostringstream buf;
    buf << in.rdbuf();
    std::string text = buf.str();
    // a UTF-8 byte-order mark (MRPC's official files have one; editors add them) is an encoding signature,
    // not text: dropped from any GLUE file, whatever the task or split
    strip_bom_in_place(text);

    glue_split out;
    out.name = std::string(split);
    out.task = task.name;
    out.file = file;
    int ia = lay.col_a, ib = lay.col_b, il = lay.col_label;
    std::size_t min_cols = lay.min_cols;
    bool header_seen = !lay.header;
    std::size_t line_no = 0, pos = 0;
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
            if (lay.name_a) {
                ia = detail::find_column(f, lay.name_a, file, line);
                ib = lay.name_b ? detail::find_column(f, lay.name_b, file, line) : -1;
                il = detail::find_column(f, lay.name_label, file, line);
                min_cols = f.size();
            }
            continue;
        }
        try {
            // A short or long row is a text broken by a newline or holding a tab: its fields cannot be trusted.
            if (lay.exact ? f.size() != min_cols : f.size() < min_cols)
                throw bad_row{"expected " + std::string(lay.exact ? "" : "at least ") + std::to_string(min_cols) +
                              " tab-separated columns, found " + std::to_string(f.size())};
            glue_example ex;
            ex.a = std::string(f[std::size_t(ia)]);
            if (ib >= 0) ex.b = std::string(f[std::size_t(ib)]);
            const std::string_view lab = il < 0 ? f.back() : f[std::size_t(il)];
            if (task.regression) {
                if (!detail::parse_score(lab, ex.score))
                    throw bad_row{"score " + detail::quote_field(lab) + " is not a number"};
                if (ex.score < 0.0f || ex.score > 5.0f)
                    throw bad_row{"score " + detail::quote_field(lab) + " outside STS-B's range [0, 5]"};
            } else if (!lay.label_names.empty()) {
                const std::string_view l = detail::trim(lab);
                int found = -1;
                for (std::size_t k = 0; k < lay.label_names.size(); ++k)
                    if (l == lay.label_names[k]) found = int(k);
                if (found < 0) {
                    std::string names;
                    for (const auto& n : lay.label_names) names += (names.empty() ? "" : ", ") + n;
                    throw bad_row{"label " + detail::quote_field(lab) + " is not one of " + names};
                }
                ex.label = found;
            } else if (!detail::parse_label_int(lab, ex.label) || ex.label >= task.num_labels) {
                throw bad_row{"label " + detail::quote_field(lab) + " is not an integer in [0, " +
                              std::to_string(task.num_labels) + ")"};
            }
            out.examples.push_back(std::move(ex));
        } catch (const bad_row& e) {
            if (!lay.skip_malformed)
                CRAM_THROW(file.string(), ":", line_no, ": ", task.name, " row cannot be read: ", e.why,
                           " (official GLUE layouts: docs/glue.md)");
            ++out.skipped;
        }
    }
    CRAM_CHECK(header_seen, file.string(), ": empty file (", task.name, " files start with a header line)");
    return out;
}

}  // namespace cram::eval
