// GLUE metrics on host vectors: accuracy, F1 of the positive class (label 1), Matthews correlation
// (binary), Pearson and Spearman (average ranks for ties) — each as scikit-learn / SciPy define them,
// except that a degenerate denominator gives 0 (sklearn does so for MCC and F1; SciPy returns NaN for a
// constant input, which would poison an average: cram reports 0, "no correlation", and says so in docs).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <vector>

#include "cram/core/error.hpp"

namespace cram::eval {

namespace detail {
inline void check_sizes(std::size_t a, std::size_t b, const char* what) {
    CRAM_CHECK(a == b, what, ": ", a, " predictions but ", b, " references");
    CRAM_CHECK(a > 0, what, " of an empty set");
}

struct binary_counts {
    double tp = 0, tn = 0, fp = 0, fn = 0;
};
inline binary_counts count_binary(const std::vector<int>& pred, const std::vector<int>& gold, const char* what) {
    check_sizes(pred.size(), gold.size(), what);
    binary_counts c;
    for (std::size_t i = 0; i < pred.size(); ++i) {
        CRAM_CHECK((pred[i] == 0 || pred[i] == 1) && (gold[i] == 0 || gold[i] == 1), what,
                   " needs binary labels; example ", i, " has prediction ", pred[i], " and reference ", gold[i]);
        const bool p = pred[i] == 1, g = gold[i] == 1;
        (p ? (g ? c.tp : c.fp) : (g ? c.fn : c.tn)) += 1;
    }
    return c;
}
}  // namespace detail

inline double accuracy(const std::vector<int>& pred, const std::vector<int>& gold) {
    detail::check_sizes(pred.size(), gold.size(), "accuracy");
    std::size_t hit = 0;
    for (std::size_t i = 0; i < pred.size(); ++i) hit += pred[i] == gold[i];
    return double(hit) / double(pred.size());
}

// F1 of class 1: 2 tp / (2 tp + fp + fn); 0 when there is neither a predicted nor a true positive.
inline double f1_positive(const std::vector<int>& pred, const std::vector<int>& gold) {
    const auto c = detail::count_binary(pred, gold, "F1");
    const double den = 2 * c.tp + c.fp + c.fn;
    return den > 0 ? 2 * c.tp / den : 0.0;
}

// (tp tn - fp fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)); 0 when a marginal is empty (a constant
// predictor), as sklearn's matthews_corrcoef.
inline double matthews(const std::vector<int>& pred, const std::vector<int>& gold) {
    const auto c = detail::count_binary(pred, gold, "Matthews correlation");
    const double den = (c.tp + c.fp) * (c.tp + c.fn) * (c.tn + c.fp) * (c.tn + c.fn);
    return den > 0 ? (c.tp * c.tn - c.fp * c.fn) / std::sqrt(den) : 0.0;
}

inline double pearson(const std::vector<double>& x, const std::vector<double>& y) {
    detail::check_sizes(x.size(), y.size(), "Pearson correlation");
    const double n = double(x.size());
    const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n;
    const double my = std::accumulate(y.begin(), y.end(), 0.0) / n;
    double sxy = 0, sxx = 0, syy = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double dx = x[i] - mx, dy = y[i] - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if (!(sxx > 0 && syy > 0)) return 0.0;
    return std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
}

// 1-based ranks, tied values sharing the mean of the ranks they span (SciPy's rankdata "average").
inline std::vector<double> average_ranks(const std::vector<double>& v) {
    std::vector<std::size_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
    std::vector<double> r(v.size());
    for (std::size_t i = 0; i < idx.size();) {
        std::size_t j = i;
        while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
        const double rank = 0.5 * double(i + j) + 1.0;
        for (std::size_t k = i; k <= j; ++k) r[idx[k]] = rank;
        i = j + 1;
    }
    return r;
}

inline double spearman(const std::vector<double>& x, const std::vector<double>& y) {
    detail::check_sizes(x.size(), y.size(), "Spearman correlation");
    return pearson(average_ranks(x), average_ranks(y));
}

}  // namespace cram::eval
