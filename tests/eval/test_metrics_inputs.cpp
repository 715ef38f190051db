// GLUE metrics against values worked out by hand (confusion counts written out in the comments), and the
// GLUE input builder with a tiny hand-written vocabulary: layout, token types, longest-first truncation,
// padded batches.
#include <cmath>
#include <fstream>

#include "cram/eval/glue_inputs.hpp"
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

namespace {
cram::data::wordpiece tiny_vocab() {
    const auto dir = cram::test::scratch_dir("glue_inputs_vocab");
    std::ofstream v(dir / "vocab.txt");
    // ids: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, the 5, cat 6, sat 7, on 8, mat 9, dog 10, ##s 11, a 12
    for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog", "##s", "a"})
        v << t << "\n";
    v.close();
    return cram::data::wordpiece::load(dir / "vocab.txt");
}
}  // namespace

TEST_CASE("inputs: [CLS] A [SEP] B [SEP], token types, single sentence") {
    const auto tok = tiny_vocab();
    REQUIRE(tok.encode("The cats sat") == std::vector<std::int32_t>{5, 6, 11, 7});
    const auto pair = encode_example(tok, {"The cat sat", "a dog", -1, 0.f}, true);
    CHECK(pair.ids == std::vector<std::int32_t>{2, 5, 6, 7, 3, 12, 10, 3});
    CHECK(pair.type_ids == std::vector<std::int32_t>{0, 0, 0, 0, 0, 1, 1, 1});
    const auto single = encode_example(tok, {"the mat", "ignored dog", -1, 0.f}, false);
    CHECK(single.ids == std::vector<std::int32_t>{2, 5, 9, 3});
    CHECK(single.type_ids == std::vector<std::int32_t>{0, 0, 0, 0});
}

TEST_CASE("inputs: longest-first truncation to the length limit") {
    const auto tok = tiny_vocab();
    // A: 6 tokens, B: 2 tokens, limit 8 -> 5 text tokens: A loses 3 (6>2, 5>2, 4>2 ... stops at 3+2=5)
    auto e = encode_example(tok, {"the cat sat on the mat", "a dog", -1, 0.f}, true, 8);
    CHECK(e.ids == std::vector<std::int32_t>{2, 5, 6, 7, 3, 12, 10, 3});
    CHECK(e.ids.size() == 8);
    // A 4, B 4, limit 9 -> 6 text tokens: equal lengths trim B first, then A: A 3, B 3
    e = encode_example(tok, {"the cat sat on", "a dog sat on", -1, 0.f}, true, 9);
    CHECK(e.ids == std::vector<std::int32_t>{2, 5, 6, 7, 3, 12, 10, 7, 3});
    // single sentence keeps its first max_len - 2 tokens
    e = encode_example(tok, {"the cat sat on the mat", "", -1, 0.f}, false, 5);
    CHECK(e.ids == std::vector<std::int32_t>{2, 5, 6, 7, 3});
    // the 128-token default on a long pair: 125 text tokens; only B, the longer, loses tokens (200 -> 75)
    std::string long_a, long_b;
    for (int i = 0; i < 50; ++i) long_a += "cat ";
    for (int i = 0; i < 200; ++i) long_b += "dog ";
    e = encode_example(tok, {long_a, long_b, -1, 0.f}, true);
    CHECK(e.ids.size() == 128);
    CHECK(std::count(e.ids.begin(), e.ids.end(), 6) == 50);
    CHECK(std::count(e.ids.begin(), e.ids.end(), 10) == 75);
    std::vector<std::int32_t> a(70, 1), b(70, 2);
    truncate_longest_first(a, b, 125);
    CHECK(a.size() == 63);  // ties trim B first: 63 + 62
    CHECK(b.size() == 62);
}

TEST_CASE("inputs: batches padded to the longest, lengths set") {
    const auto tok = tiny_vocab();
    std::vector<encoded_example> ex{encode_example(tok, {"the cat", "a dog", -1, 0.f}, true),
                                    encode_example(tok, {"the", "", -1, 0.f}, false),
                                    encode_example(tok, {"cat sat on the mat", "dogs", -1, 0.f}, true)};
    const std::size_t idx[] = {1, 0};
    const auto b = make_token_batch(ex, idx, 2, 0);
    CHECK(b.batch == 2);
    CHECK(b.seq == 7);
    CHECK(b.lengths == std::vector<std::int32_t>{3, 7});
    CHECK(b.ids == std::vector<std::int32_t>{2, 5, 3, 0, 0, 0, 0, 2, 5, 6, 3, 12, 10, 3});
    CHECK(b.type_ids == std::vector<std::int32_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1});
    const auto v = b.view();
    CHECK(v.lengths[1] == 7);
    const std::size_t one[] = {2};
    const auto c = make_token_batch(ex, one, 1, 0, false);
    CHECK(c.type_ids.empty());
    CHECK(c.view().type_ids == nullptr);
    CHECK(c.seq == 10);  // [CLS] cat sat on the mat [SEP] dog ##s [SEP]
}
