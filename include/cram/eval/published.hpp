// The cramming table's nine GLUE-dev columns (task, split and headline metric of each) and the rows
// CRAMMING.md publishes in it. Kept apart from report.hpp, which needs the whole fine-tuning code, so that
// the protocol table and the comparison of runs (glue_protocol.hpp, compare.hpp) can use them cheaply.
#pragma once

#include <string_view>

namespace cram::eval {

// The cramming table's nine columns in CRAMMING.md's order.
struct report_column {
    const char* label;
    const char* task;
    const char* split;
    const char* metric;
};
inline constexpr report_column cramming_columns[9] = {
    {"MNLI-m", "MNLI", "dev_matched", "accuracy"}, {"MNLI-mm", "MNLI", "dev_mismatched", "accuracy"},
    {"SST-2", "SST-2", "dev", "accuracy"},         {"STS-B", "STS-B", "dev", "pearson"},
    {"RTE", "RTE", "dev", "accuracy"},             {"QNLI", "QNLI", "dev", "accuracy"},
    {"QQP", "QQP", "dev", "f1"},                   {"MRPC", "MRPC", "dev", "f1"},
    {"CoLA", "CoLA", "dev", "mcc"}};

struct published_row {
    const char* name;
    double values[9];  // percent, cramming_columns order
    double average;    // as published
};
// CRAMMING.md, "Published results (GLUE dev)".
inline constexpr published_row published_rows[4] = {
    {"BERT-base, fully trained", {83.2, 83.4, 91.9, 86.7, 59.2, 90.6, 87.7, 89.3, 56.5}, 80.9},
    {"BERT-base, no pretraining", {34.1, 34.1, 79.9, 17.8, 47.3, 50.0, 68.6, 77.9, 0.0}, 45.5},
    {"crammed BERT, 24 h A6000 (paper v1)", {83.9, 84.1, 92.2, 84.6, 53.8, 89.5, 87.3, 87.5, 44.5}, 78.6},
    {"crammed BERT, 24 h A6000 (released model)", {84.1, 84.6, 92.0, 87.4, 58.5, 90.2, 87.5, 88.9, 53.3}, 80.7},
};

// The published row of that name, or null.
inline const published_row* find_published_row(std::string_view name) {
    for (const auto& p : published_rows)
        if (name == p.name) return &p;
    return nullptr;
}

}  // namespace cram::eval
