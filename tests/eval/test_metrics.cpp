// GLUE metrics against values worked out by hand (confusion counts and sums written out in the comments):
// accuracy, F1 of class 1, Matthews correlation, Pearson, Spearman with tied ranks, and the degenerate cases.
#include <cmath>

#include "cram/eval/metrics.hpp"
#include "test_support.hpp"

using namespace cram::eval;

TEST_CASE("accuracy, F1, Matthews on a hand-counted confusion matrix") {
    // gold 1 0 0 1 1 0 / pred 1 1 0 0 1 0: tp = 2 (0, 4), fp = 1 (1), fn = 1 (3), tn = 2 (2, 5)
    const std::vector<int> gold{1, 0, 0, 1, 1, 0}, pred{1, 1, 0, 0, 1, 0};
    CHECK(accuracy(pred, gold) == doctest::Approx(4.0 / 6.0));
    CHECK(f1_positive(pred, gold) == doctest::Approx(2.0 / 3.0));  // 2*2 / (2*2 + 1 + 1)
    CHECK(matthews(pred, gold) == doctest::Approx(1.0 / 3.0));     // (2*2 - 1*1) / sqrt(3*3*3*3)
    // unbalanced: gold 1 1 1 0 0 0 0 0, pred 1 0 0 0 0 0 0 1: tp 1, fn 2, fp 1, tn 4
    const std::vector<int> g2{1, 1, 1, 0, 0, 0, 0, 0}, p2{1, 0, 0, 0, 0, 0, 0, 1};
    CHECK(f1_positive(p2, g2) == doctest::Approx(2.0 / 5.0));
    CHECK(matthews(p2, g2) == doctest::Approx((4.0 - 2.0) / std::sqrt(2.0 * 3.0 * 5.0 * 6.0)));
    // perfect and inverted predictors
    CHECK(matthews(gold, gold) == doctest::Approx(1.0));
    std::vector<int> inv(gold.size());
    for (std::size_t i = 0; i < gold.size(); ++i) inv[i] = 1 - gold[i];
    CHECK(matthews(inv, gold) == doctest::Approx(-1.0));
    CHECK(f1_positive(inv, gold) == doctest::Approx(0.0));
    // a constant predictor (the majority class): MCC 0 as sklearn; F1 0 without any predicted positive
    const std::vector<int> zeros(6, 0);
    CHECK(matthews(zeros, gold) == 0.0);
    CHECK(f1_positive(zeros, gold) == 0.0);
    CHECK(accuracy(zeros, gold) == doctest::Approx(0.5));
    // non-binary labels are refused for F1 / MCC
    CHECK_THROWS_AS(f1_positive({2, 0}, {1, 0}), cram::error);
    CHECK_THROWS_AS(accuracy({1}, {1, 0}), cram::error);
    CHECK(accuracy({2, 1, 0}, {2, 1, 1}) == doctest::Approx(2.0 / 3.0));  // MNLI's three classes
}

TEST_CASE("Pearson and Spearman with ties on hand-computed values") {
    // x 1 2 3 4, y 2 4 5 9: dx -1.5 -.5 .5 1.5, dy -3 -1 0 4; sxy 11, sxx 5, syy 26 -> 11 / sqrt(130)
    CHECK(pearson({1, 2, 3, 4}, {2, 4, 5, 9}) == doctest::Approx(11.0 / std::sqrt(130.0)));
    CHECK(pearson({1, 2, 3}, {3, 2, 1}) == doctest::Approx(-1.0));
    CHECK(pearson({1, 1, 1}, {1, 2, 3}) == 0.0);  // constant prediction: reported as no correlation
    // average ranks: 10 10 20 20 20 30 -> 1.5 1.5 4 4 4 6
    CHECK(average_ranks({10, 20, 10, 30, 20, 20}) == std::vector<double>{1.5, 4, 1.5, 6, 4, 4});
    // x 1 2 2 3 -> ranks 1 2.5 2.5 4; y 1 3 2 4 -> ranks 1 3 2 4; Pearson of ranks: 4.5 / sqrt(4.5 * 5)
    CHECK(spearman({1, 2, 2, 3}, {1, 3, 2, 4}) == doctest::Approx(4.5 / std::sqrt(22.5)));
    // monotone but not linear: Spearman 1, Pearson below 1
    CHECK(spearman({1, 2, 3, 4}, {1, 8, 27, 64}) == doctest::Approx(1.0));
    CHECK(pearson({1, 2, 3, 4}, {1, 8, 27, 64}) < 0.99);
}
