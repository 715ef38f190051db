// cram/cuda/loss.hpp against the CPU oracle (cram/ops/loss.hpp): cross-entropy with ignored rows, squared
// error, the fused sparse decoder (train and evaluation), and dense MLM labels, for bf16 and fp16 storage (the
// fp16 decoder runs with a loss scale, as fp16 training does: its logit gradients would underflow without one).
// Skips visibly without a GPU.
#include <cstdint>
#include <type_traits>
#include <vector>

#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace ops = cram::ops;
namespace cu = cram::cuda;

TEST_CASE_TEMPLATE("cuda losses: cross-entropy with ignored rows, squared error, fused sparse decoder", T, bf16, fp16) {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<T>;
    {  // classifier cross-entropy
        const index_t n = 37, classes = 3;
        const auto logits = random_vec_as<T>(static_cast<std::size_t>(n * classes), 80, 4.0f);
        std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
        for (index_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = i % 5 == 4 ? ops::ignore_label : std::int32_t(i % 3);
        std::vector<float> dl(logits.size());
        const double loss = ops::cross_entropy(dl.data(), logits.data(), labels.data(), n, classes, 0.25f);
        auto gl = upload(ctx, to_storage<T>(logits));
        auto glab = upload(ctx, labels);
        auto gdl = poisoned<T>(ctx, dl.size());
        auto gloss = upload(ctx, std::vector<float>{1.5f});  // accumulates
        B::cross_entropy(ctx, gloss.data(), gdl.data(), gl.data(), glab.data(), n, classes, 0.25f);
        check_close("cross_entropy loss", download(ctx, gloss.data(), 1), {float(loss + 1.5)}, 1e-3, 1e-4);
        check_close("cross_entropy dlogits", download_f(ctx, gdl.data(), dl.size()), dl, 1e-3, 1e-2);
    }
    {  // regression
        const index_t n = 16;
        const auto pred = random_vec_as<T>(static_cast<std::size_t>(n), 81, 3.0f),
                   target = random_vec(static_cast<std::size_t>(n), 82, 3.0f);
        std::vector<float> dp(pred.size());
        const double loss = ops::squared_error(dp.data(), pred.data(), target.data(), n, 0.5f);
        auto gp = upload(ctx, to_storage<T>(pred));
        auto gt = upload(ctx, target);
        auto gdp = poisoned<T>(ctx, dp.size());
        auto gloss = upload(ctx, std::vector<float>{0.0f});
        B::squared_error(ctx, gloss.data(), gdp.data(), gp.data(), gt.data(), n, 0.5f);
        check_close("squared_error loss", download(ctx, gloss.data(), 1), {float(loss)}, 1e-4, 1e-4);
        check_close("squared_error dpred", download_f(ctx, gdp.data(), dp.size()), dp, 1e-3, 1e-2);
    }
    struct shape { index_t n, h, vocab; bool bias; };
    for (const auto s : {shape{1536, 768, 32768, false}, shape{37, 24, 1001, true}}) {
        INFO("decoder n " << s.n << " h " << s.h << " vocab " << s.vocab);
        const auto hid = random_vec_as<T>(static_cast<std::size_t>(s.n * s.h), 90),
                   w = random_vec_as<T>(static_cast<std::size_t>(s.vocab * s.h), 91, 0.1f);
        const auto bias = random_vec_as<T>(static_cast<std::size_t>(s.vocab), 92);
        std::vector<std::int32_t> targets(static_cast<std::size_t>(s.n));
        cram::philox_stream rng(93, 0, 0);
        for (auto& t : targets) t = std::int32_t(rng.next_below(std::uint32_t(s.vocab)));
        targets[3] = ops::ignore_label;
        // fp16: logit gradients of p/n (p ~ 1/vocab) would sink into fp16's subnormals or below 6e-8; the
        // trainer's initial loss scale (2^16) lifts them, so does this test (the summed loss stays unscaled)
        const float loss_scale = std::is_same_v<T, fp16> ? 65536.0f : 1.0f;
        const float dscale = loss_scale / float(s.n);
        std::vector<float> dh(hid.size()), dw(w.size(), 0.0f), db(bias.size(), 0.0f);
        const double loss = ops::decoder_cross_entropy(dh.data(), dw.data(), s.bias ? db.data() : nullptr, hid.data(),
                                                       w.data(), s.bias ? bias.data() : nullptr, targets.data(), s.n,
                                                       s.h, s.vocab, dscale);
        auto ghid = upload(ctx, to_storage<T>(hid)), gw = upload(ctx, to_storage<T>(w)),
             gb = upload(ctx, to_storage<T>(bias));
        auto gt = upload(ctx, targets);
        auto gdh = poisoned<T>(ctx, dh.size());
        auto gdw = upload(ctx, std::vector<float>(dw.size(), 0.0f)), gdb = upload(ctx, std::vector<float>(db.size(), 0.0f));
        auto gloss = upload(ctx, std::vector<float>{0.0f});
        B::decoder_cross_entropy(ctx, gloss.data(), gdh.data(), gdw.data(), s.bias ? gdb.data() : nullptr,
                                           ghid.data(), gw.data(), s.bias ? gb.data() : nullptr, gt.data(), s.n, s.h,
                                           s.vocab, dscale);
        check_close("decoder loss", download(ctx, gloss.data(), 1), {float(loss)}, 1e-2, 2e-3);
        check_close_scaled("decoder dhidden", download_f(ctx, gdh.data(), dh.size()), dh, 2e-2, 2e-2);
        CHECK(relative_error(download(ctx, gdw.data(), dw.size()), dw) < 2e-2);
        if (s.bias) check_close("decoder dbias", download(ctx, gdb.data(), db.size()), db, 1e-5, 2e-2);
        // evaluation: loss only, same value
        auto gloss2 = upload(ctx, std::vector<float>{0.0f});
        B::decoder_cross_entropy(ctx, gloss2.data(), static_cast<T*>(nullptr), static_cast<float*>(nullptr),
                                           static_cast<float*>(nullptr), ghid.data(), gw.data(),
                                           s.bias ? gb.data() : nullptr, gt.data(), s.n, s.h, s.vocab, dscale);
        check_close("decoder eval loss", download(ctx, gloss2.data(), 1), {float(loss)}, 1e-2, 2e-3);
    }
}

TEST_CASE("cuda dense_labels equals the CPU's, element for element") {
    CRAM_REQUIRE_GPU();
    const index_t rows = 8 * 128, n = 8 * 32;
    std::vector<std::int32_t> positions(static_cast<std::size_t>(n)), targets(positions.size());
    for (index_t i = 0; i < n; ++i) {
        positions[static_cast<std::size_t>(i)] = std::int32_t(i * 4 + i % 3);  // distinct, ascending
        targets[static_cast<std::size_t>(i)] = std::int32_t(5 + i);
    }
    std::vector<std::int32_t> ref(static_cast<std::size_t>(rows));
    ops::dense_labels(ref.data(), rows, positions.data(), targets.data(), n);
    auto gpos = upload(ctx, positions), gtg = upload(ctx, targets);
    auto glab = upload(ctx, std::vector<std::int32_t>(ref.size(), 12345));  // overwritten everywhere
    cu::backend::dense_labels(ctx, glab.data(), rows, gpos.data(), gtg.data(), n);
    CHECK(download(ctx, glab.data(), ref.size()) == ref);
}

}  // namespace
