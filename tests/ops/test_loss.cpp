// cram/ops/loss.hpp: cross-entropy, squared error and the fused decoder loss by hand and against finite
// differences in double (ignored rows, loss scales, the decoder's row chunks, with and without bias), and
// the dense MLM labels.
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/ops/loss.hpp"
#include "fd_support.hpp"

using namespace cram::test;

namespace {
const double ln3 = std::log(3.0);
}  // namespace

TEST_CASE("cross-entropy, squared error and the fused decoder loss, by hand") {
    // row 0: logits [0, ln3], label 1: softmax [1/4, 3/4], loss -ln(3/4); grad [1/4, -1/4]
    // row 1: logits [5, 5] (ignored)
    // row 2: logits [7, 7], label 0: loss ln 2; grad [-1/2, 1/2]
    const vec logits = {0, ln3, 5, 5, 7, 7};
    const ivec labels = {1, cram::ops::ignore_label, 0};
    vec d(6);
    const double loss = cram::ops::cross_entropy<double>(d.data(), logits.data(), labels.data(), 3, 2, 1.0);
    CHECK(loss == doctest::Approx(-std::log(0.75) + std::log(2.0)).epsilon(1e-14));
    CRAM_CHECK_CLOSE(d, (vec{0.25, -0.25, 0, 0, -0.5, 0.5}), 1e-15, 1e-14);

    // squared error: (3 - 1)^2 + (-1 - 0.5)^2 = 4 + 2.25 = 6.25; grad = 2 (pred - target) = [4, -3]
    const vec pred = {3, -1};
    const std::vector<float> target = {1.0f, 0.5f};
    vec dp(2);
    CHECK(cram::ops::squared_error<double>(dp.data(), pred.data(), target.data(), 2, 1.0) == 6.25);
    CRAM_CHECK_CLOSE(dp, (vec{4, -3}), 0, 0);
    // with dscale = 1/n it is PyTorch's MSELoss (mean reduction), the original's STS-B loss: mean 6.25 / 2 =
    // 3.125, gradient 2 (pred - target) / n = [2, -1.5] (0.5 * squared error would give half of it)
    CHECK(cram::ops::squared_error<double>(dp.data(), pred.data(), target.data(), 2, 0.5) / 2 == 3.125);
    CRAM_CHECK_CLOSE(dp, (vec{2, -1.5}), 0, 0);

    // decoder: hidden [1, 0] and [0, 2], w = [[ln3, 0], [0, 0], [0, ln3 / 2]], bias [0, 0, 1]
    // logits row 0 = [ln3, 0, 1]: target 1 -> loss ln(3 + 1 + e) - 0
    // logits row 1 = [0, 0, ln3 + 1]: target 2 -> loss ln(2 + 3e) - (ln3 + 1)
    const vec hid = {1, 0, 0, 2}, w = {ln3, 0, 0, 0, 0, ln3 / 2}, bias = {0, 0, 1};
    const ivec tg = {1, 2};
    const double e = std::numbers::e;
    const double ref = std::log(4 + e) + std::log(2 + 3 * e) - (ln3 + 1);
    CHECK(cram::ops::decoder_cross_entropy<double>(nullptr, nullptr, nullptr, hid.data(), w.data(), bias.data(),
                                                   tg.data(), 2, 2, 3, 1.0) == doctest::Approx(ref).epsilon(1e-14));
}

TEST_CASE("cross_entropy gradient with ignored rows and a loss scale") {
    const int n = 5, classes = 4;
    const ivec labels = {1, cram::ops::ignore_label, 3, 0, cram::ops::ignore_label};
    const double dscale = 0.7;
    vec logits = random_vec(n * classes, 80, -3, 3);
    auto loss = [&] { return dscale * cram::ops::cross_entropy<double>(nullptr, logits.data(), labels.data(), n,
                                                                        classes, dscale); };
    vec dl(logits.size(), nan_v);
    const double total = cram::ops::cross_entropy<double>(dl.data(), logits.data(), labels.data(), n, classes, dscale);
    check_fd("cross_entropy logits", logits, dl, loss);
    for (int c = 0; c < classes; ++c) {
        CHECK(dl[std::size_t(1 * classes + c)] == 0.0);
        CHECK(dl[std::size_t(4 * classes + c)] == 0.0);
    }
    // the returned sum: -log softmax at the label, over the three labelled rows only
    double ref = 0;
    for (int row : {0, 2, 3}) {
        double z = 0;
        for (int c = 0; c < classes; ++c) z += std::exp(logits[std::size_t(row * classes + c)]);
        ref += std::log(z) - logits[std::size_t(row * classes + labels[std::size_t(row)])];
    }
    CHECK(total == doctest::Approx(ref).epsilon(1e-13));
    // out-of-range labels are reported, not read out of bounds
    const ivec bad = {4, 0, 0, 0, 0};
    CHECK_THROWS_AS(cram::ops::cross_entropy<double>(nullptr, logits.data(), bad.data(), n, classes, 1.0),
                    cram::error);
}

TEST_CASE("squared_error gradient") {
    const int n = 6;
    vec pred = random_vec(n, 90, -2, 2);
    const std::vector<float> target = {0.5f, -1.0f, 2.0f, 0.0f, 1.25f, -0.75f};
    const double dscale = 1.0 / 3;
    auto loss = [&] { return dscale * cram::ops::squared_error<double>(nullptr, pred.data(), target.data(), n, 1.0); };
    vec dp(n, nan_v);
    const double total = cram::ops::squared_error<double>(dp.data(), pred.data(), target.data(), n, dscale);
    check_fd("squared_error", pred, dp, loss);
    double ref = 0;
    for (int i = 0; i < n; ++i) ref += (pred[std::size_t(i)] - target[std::size_t(i)]) *
                                       (pred[std::size_t(i)] - target[std::size_t(i)]);
    CHECK(total == doctest::Approx(ref).epsilon(1e-13));
}

// More than 128 rows, so the chunked loop runs three times (128 + 128 + 44), with ignored rows.
TEST_CASE("decoder_cross_entropy: value and gradients across row chunks, with and without bias") {
    const int n = 300, h = 5, vocab = 7;
    ivec targets(n);
    for (int i = 0; i < n; ++i) targets[std::size_t(i)] = (i % 11 == 3) ? cram::ops::ignore_label : (i * 5 + 2) % vocab;
    const double dscale = 1.0 / 250;
    for (const bool with_bias : {true, false}) {
        CAPTURE(with_bias);
        vec hid = random_vec(std::size_t(n) * h, 100, -1.5, 1.5), w = random_vec(vocab * h, 101, -1.5, 1.5),
            bias = random_vec(vocab, 102);
        const double* bp = with_bias ? bias.data() : nullptr;
        auto loss = [&] {
            return dscale * cram::ops::decoder_cross_entropy<double>(nullptr, nullptr, nullptr, hid.data(), w.data(),
                                                                     bp, targets.data(), n, h, vocab, 1.0);
        };
        // value against explicit logits and log-sum-exp
        double ref = 0;
        for (int i = 0; i < n; ++i) {
            const std::int32_t y = targets[std::size_t(i)];
            if (y == cram::ops::ignore_label) continue;
            vec z(vocab);
            for (int v = 0; v < vocab; ++v) {
                z[std::size_t(v)] = with_bias ? bias[std::size_t(v)] : 0.0;
                for (int d = 0; d < h; ++d) z[std::size_t(v)] += hid[std::size_t(i) * h + d] * w[std::size_t(v) * h + d];
            }
            double s = 0;
            for (double zz : z) s += std::exp(zz);
            ref += std::log(s) - z[std::size_t(y)];
        }
        CHECK(loss() / dscale == doctest::Approx(ref).epsilon(1e-12));

        const double pf = 0.0625;
        vec dh(hid.size(), nan_v), dw(w.size(), pf), db(bias.size(), pf);
        cram::ops::decoder_cross_entropy<double>(dh.data(), dw.data(), with_bias ? db.data() : nullptr, hid.data(),
                                                 w.data(), bp, targets.data(), n, h, vocab, dscale);
        check_fd("decoder hidden", hid, dh, loss);
        check_fd("decoder weight", w, minus(dw, pf), loss);
        if (with_bias) check_fd("decoder bias", bias, minus(db, pf), loss);
        for (int d = 0; d < h; ++d) CHECK(dh[std::size_t(3 * h + d)] == 0.0);  // row 3 is ignored
    }
}

TEST_CASE("dense_labels: ignore_label everywhere but the masked rows, by hand") {
    // 6 rows, rows 1 and 4 masked with targets 17 and 3; the rest are ignored. Old contents are overwritten.
    std::vector<std::int32_t> labels(6, 99);
    const std::vector<std::int32_t> positions = {1, 4}, targets = {17, 3};
    cram::ops::dense_labels(labels.data(), 6, positions.data(), targets.data(), 2);
    const std::int32_t ig = cram::ops::ignore_label;
    CHECK(labels == std::vector<std::int32_t>{ig, 17, ig, ig, 3, ig});
    // no masked rows: all ignored
    cram::ops::dense_labels(labels.data(), 6, positions.data(), targets.data(), 0);
    CHECK(labels == std::vector<std::int32_t>(6, ig));
    CHECK(ig == -100);  // PyTorch's ignore_index: checkpoints and the peer's labels rely on it
}

TEST_CASE("label and gradient rules shared with the CUDA kernels") {
    CHECK(cram::ops::label_in_range(0, 3));
    CHECK(cram::ops::label_in_range(2, 3));
    CHECK_FALSE(cram::ops::label_in_range(3, 3));
    CHECK_FALSE(cram::ops::label_in_range(-1, 3));
    CHECK_FALSE(cram::ops::label_in_range(cram::ops::ignore_label, 3));
    // dscale * (p - [is label]): 0.5 * (0.25 - 1) = -0.375 and 0.5 * 0.25 = 0.125
    CHECK(cram::ops::cross_entropy_grad(0.25, true, 0.5) == -0.375);
    CHECK(cram::ops::cross_entropy_grad(0.25, false, 0.5) == 0.125);
}
