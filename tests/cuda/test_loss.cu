// cram/cuda/loss.hpp against the CPU oracle (cram/ops/loss.hpp): cross-entropy with ignored rows, squared
// error, the MLM decoder on both paths (context::decoder: fused, chunked; train and evaluation; vocabularies that
// exercise each of the fused loss's load shapes and one over its limit), and dense MLM labels, for bf16 and fp16
// storage (the fp16 decoder runs with a loss scale, as fp16 training does: its logit gradients would underflow
// without one). The route and the fused path's chunk rule are checked on the host. GPU cases skip visibly
// without a GPU.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace ops = cram::ops;
namespace cu = cram::cuda;

TEST_CASE_TEMPLATE("cuda losses: cross-entropy with ignored rows, squared error", T, bf16, fp16) {
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
}

struct decoder_shape {
    index_t n, h, vocab;
    bool bias;
};
// crammed's: 16-byte loads, 4 per thread, 1536 rows past the grid and two chunks on the chunked path.
#if defined(CRAM_CUDA_EMULATED)
// Emulated (every logit through fibers under AddressSanitizer), crammed's vocabulary and load shape with fewer rows.
const decoder_shape crammed_decoder[] = {{48, 64, 32768, false}};
#else
const decoder_shape crammed_decoder[] = {{1536, 768, 32768, false}};
#endif
// Small enough for the sanitizers; with crammed's, one for each (threads, load width, loads per thread) the fused
// loss's launcher picks (worked out from its rule in the comment at each):
const decoder_shape small_decoders[] = {
    {40, 64, 4096, true},    // 512 x 8 x 1, every thread busy
    {20, 16, 2000, false},   // 512 x 8 x 1, 262 threads without a logit
    {24, 16, 8192, true},    // 512 x 8 x 2
    {30, 16, 12000, false},  // 512 x 8 x 4
    {24, 16, 40000, false},  // 1024 x 8 x 8, the last loads of most threads past the row
    {50, 16, 2050, true},    // 1024 x 2 x 4: even, one 4-byte load in the second round
    {20, 16, 1002, false},   // 1024 x 2 x 4, 523 threads without a logit
    {30, 16, 10002, true},   // 1024 x 2 x 8
    {45, 32, 30522, true},   // 1024 x 2 x 16: the original BERT's vocabulary
    {600, 24, 1001, true},   // 1024 x 1 x 8: odd; 23 threads without a logit, rows past the grid
    {30, 16, 9001, false},   // 1024 x 1 x 16
    {8, 16, 70000, false},   // over the fused loss's row for each kind: the chunked path either way
    {8, 16, 32770, true},
    {8, 16, 16385, false}};

// The path decoder_cross_entropy takes, from the documented rule rather than asked of the code.
bool expect_fused(cu::decoder_kernel asked, index_t vocab) {
    const index_t cap = vocab % 8 == 0 ? 65536 : vocab % 2 == 0 ? 32768 : 16384;
    return asked == cu::decoder_kernel::fused && vocab <= cap;
}

std::vector<float> minus(std::vector<float> a, const std::vector<float>& b) {
    for (std::size_t i = 0; i < a.size(); ++i) a[i] -= b[i];
    return a;
}

// Per vocabulary column, how far storing in T moves dbias (the column sums of the 16-bit logit gradients, which the
// fp32 oracle does not round): each stored gradient dz = dscale (p - onehot) is off by up to half an ulp,
// u |dz| (u = 2^-8 bf16, 2^-11 fp16), and the fused path's 16-bit logits move p by up to u p (|z| + |lse|). Where a
// column's sum cancels (the target's -dscale against the other rows' +dscale p) this, not 2 % of the sum, is the
// error a GPU makes too: the fp16 case at vocabulary 1001 misses 2 % of such a column by 10x (found emulated).
template <class T>
std::vector<double> dbias_storage_bound(const std::vector<float>& hid, const std::vector<float>& w,
                                        const std::vector<float>& bias, const std::vector<std::int32_t>& targets,
                                        index_t n, index_t h, index_t vocab, float dscale) {
    const double u = std::is_same_v<T, fp16> ? 1.0 / 2048 : 1.0 / 256;
    std::vector<double> bound(static_cast<std::size_t>(vocab), 0.0), z(static_cast<std::size_t>(vocab));
    for (index_t r = 0; r < n; ++r) {
        const std::int32_t y = targets[static_cast<std::size_t>(r)];
        if (y == ops::ignore_label) continue;
        double mx = -INFINITY;
        for (index_t c = 0; c < vocab; ++c) {
            double v = bias.empty() ? 0.0 : bias[static_cast<std::size_t>(c)];
            for (index_t k = 0; k < h; ++k)
                v += double(hid[static_cast<std::size_t>(r * h + k)]) * w[static_cast<std::size_t>(c * h + k)];
            z[static_cast<std::size_t>(c)] = v;
            mx = std::max(mx, v);
        }
        double sum = 0;
        for (const double v : z) sum += std::exp(v - mx);
        const double lse = mx + std::log(sum);
        for (index_t c = 0; c < vocab; ++c) {
            const double zc = z[static_cast<std::size_t>(c)], pc = std::exp(zc - lse);
            const double dz = double(dscale) * (pc - (c == y ? 1.0 : 0.0));
            bound[static_cast<std::size_t>(c)] +=
                u * (std::fabs(dz) + double(dscale) * pc * (std::fabs(zc) + std::fabs(lse)));
        }
    }
    return bound;
}

// Both paths on each shape against one oracle: the loss, dhidden, and the increments of dw and dbias (both
// accumulate onto a non-zero start); an ignored row's exact zeros; a rerun bit for bit; the evaluation loss.
template <class T, std::size_t N>
void decoder_parity(cu::context& ctx, const decoder_shape (&shapes)[N],
                    std::initializer_list<cu::decoder_kernel> paths = {cu::decoder_kernel::chunked,
                                                                       cu::decoder_kernel::fused}) {
    using B = gpu_backend<T>;
    const keep_setting keep_decoder(ctx.decoder);
    for (const auto s : shapes) {
        const auto hid = random_vec_as<T>(static_cast<std::size_t>(s.n * s.h), 90),
                   w = random_vec_as<T>(static_cast<std::size_t>(s.vocab * s.h), 91, 0.1f);
        const auto bias = random_vec_as<T>(static_cast<std::size_t>(s.vocab), 92);
        std::vector<std::int32_t> targets(static_cast<std::size_t>(s.n));
        cram::philox_stream rng(93, 0, 0);
        for (auto& t : targets) t = std::int32_t(rng.next_below(std::uint32_t(s.vocab)));
        targets[0] = s.vocab - 1;  // the last logit of the row: the tail of the last load
        targets[1] = 0;
        targets[3] = ops::ignore_label;  // a row with no loss and a zero gradient (dense MLM labels have many)
        // fp16: logit gradients of p/n (p ~ 1/vocab) would sink into fp16's subnormals or below 6e-8; the
        // trainer's initial loss scale (2^16) lifts them, so does this test (the summed loss stays unscaled)
        const float loss_scale = std::is_same_v<T, fp16> ? 65536.0f : 1.0f;
        const float dscale = loss_scale / float(s.n);
        std::vector<float> dh(hid.size()), dw(w.size(), 0.0f), db(bias.size(), 0.0f);
        const double loss = ops::decoder_cross_entropy(dh.data(), dw.data(), s.bias ? db.data() : nullptr,
                                                       hid.data(), w.data(), s.bias ? bias.data() : nullptr,
                                                       targets.data(), s.n, s.h, s.vocab, dscale);
        const auto dw0 = random_vec(dw.size(), 94, 0.01f), db0 = random_vec(db.size(), 95, 0.01f);
        auto ghid = upload(ctx, to_storage<T>(hid)), gw = upload(ctx, to_storage<T>(w)),
             gb = upload(ctx, to_storage<T>(bias));
        auto gt = upload(ctx, targets);
        for (const auto path : paths) {
            const bool fused = expect_fused(path, s.vocab);
            INFO((path == cu::decoder_kernel::fused ? "fused" : "chunked") << " asked, n " << s.n << " h " << s.h
                                                                             << " vocab " << s.vocab);
            ctx.decoder = path;
            CHECK(cu::decoder_route_for(ctx, s.vocab).fused == fused);
            auto gdh = poisoned<T>(ctx, dh.size());
            auto gdw = upload(ctx, dw0), gdb = upload(ctx, db0);
            auto gloss = upload(ctx, std::vector<float>{0.0f});
            B::decoder_cross_entropy(ctx, gloss.data(), gdh.data(), gdw.data(), s.bias ? gdb.data() : nullptr,
                                     ghid.data(), gw.data(), s.bias ? gb.data() : nullptr, gt.data(), s.n, s.h,
                                     s.vocab, dscale);
            // 16-bit logits move a row's loss by ~1e-3 at most, at random: far inside 2e-4 of the sum
            check_close("decoder loss", download(ctx, gloss.data(), 1), {float(loss)}, 1e-2, 2e-4);
            const auto got_dh = download_f(ctx, gdh.data(), dh.size());
            check_close_scaled("decoder dhidden", got_dh, dh, 2e-2, 2e-2);
            for (index_t c = 0; c < s.h; ++c) CHECK(got_dh[static_cast<std::size_t>(3 * s.h + c)] == 0.0f);
            const auto got_dw = download(ctx, gdw.data(), dw.size());
            CHECK(relative_error(minus(got_dw, dw0), dw) < 2e-2);
            if (s.bias) {
                const auto got_db = minus(download(ctx, gdb.data(), db.size()), db0);
                const auto bound = dbias_storage_bound<T>(hid, w, bias, targets, s.n, s.h, s.vocab, dscale);
                std::size_t outside = 0, worst = 0;
                double worst_excess = -INFINITY;
                for (std::size_t c = 0; c < db.size(); ++c) {
                    const double excess = std::fabs(double(got_db[c]) - db[c]) -
                                          (1e-5 + 2e-2 * std::fabs(double(db[c])) + bound[c]);
                    outside += excess > 0;
                    if (excess > worst_excess) worst_excess = excess, worst = c;
                }
                INFO("decoder dbias: worst column " << worst << ": got " << got_db[worst] << " ref " << db[worst]
                                                    << " storage bound " << bound[worst]);
                CHECK(outside == 0);
                check_close("decoder dbias (loose)", got_db, db, 1e-2, 2e-1);  // and not all zero
            }
            // dhidden and dw come from GEMMs and per-row kernels without atomics: a rerun gives the same bits
            auto gdh2 = poisoned<T>(ctx, dh.size());
            auto gdw2 = upload(ctx, dw0), gdb2 = upload(ctx, db0);
            auto gloss_again = upload(ctx, std::vector<float>{0.0f});
            B::decoder_cross_entropy(ctx, gloss_again.data(), gdh2.data(), gdw2.data(),
                                     s.bias ? gdb2.data() : nullptr, ghid.data(), gw.data(),
                                     s.bias ? gb.data() : nullptr, gt.data(), s.n, s.h, s.vocab, dscale);
            CHECK(download_f(ctx, gdh2.data(), dh.size()) == got_dh);
            CHECK(download(ctx, gdw2.data(), dw.size()) == got_dw);
            // evaluation: loss only, same value
            auto gloss2 = upload(ctx, std::vector<float>{0.0f});
            B::decoder_cross_entropy(ctx, gloss2.data(), static_cast<T*>(nullptr), static_cast<float*>(nullptr),
                                     static_cast<float*>(nullptr), ghid.data(), gw.data(),
                                     s.bias ? gb.data() : nullptr, gt.data(), s.n, s.h, s.vocab, dscale);
            check_close("decoder eval loss", download(ctx, gloss2.data(), 1), {float(loss)}, 1e-2, 2e-4);
        }
    }
}

TEST_CASE_TEMPLATE("cuda MLM decoder on small shapes: fused and chunked against the CPU (train and evaluation)", T,
                   bf16, fp16) {
    CRAM_REQUIRE_GPU();
    decoder_parity<T>(ctx, small_decoders);
}
// For compute-sanitizer (benchmarks/run_gpu.sh), where every kernel runs many times slower: the fused loss
// once per load width, each with idle threads, on 9 rows, bf16, one cuBLASLt algorithm per GEMM shape (the
// timed choice has its own test).
const decoder_shape sanitizer_decoders[] = {{9, 8, 2000, true}, {9, 8, 1002, true}, {9, 8, 1001, true}};
TEST_CASE("cuda MLM decoder sanitizer cases: the fused loss on 9 rows per load width") {
    CRAM_REQUIRE_GPU();
    const keep_setting keep_gemm_choice(ctx.gemm_choice);
    ctx.gemm_choice = cu::gemm_algorithms::heuristic;
    decoder_parity<bf16>(ctx, sanitizer_decoders, {cu::decoder_kernel::fused});
}

// The fused path over several chunks (a cap on its chunk): each chunk's logits, loss and gradient in the same
// scratch, dhidden by rows, dW summed over the chunks, the last chunk partial.
TEST_CASE("cuda MLM decoder: the fused loss over several chunks, the last partial") {
    CRAM_REQUIRE_GPU();
    const keep_setting keep_cap(ctx.decoder_chunk_bytes);
#if defined(CRAM_CUDA_EMULATED)
    const decoder_shape rows_1536[] = {{48, 32, 32768, false}};  // 3 chunks of 16 rows of 64 KiB
    ctx.decoder_chunk_bytes = 16 * 32768 * sizeof(bf16);
#else
    const decoder_shape rows_1536[] = {{1536, 768, 32768, false}};  // 3 chunks of 512 rows of 64 KiB
    ctx.decoder_chunk_bytes = 512 * 32768 * sizeof(bf16);
#endif
    decoder_parity<bf16>(ctx, rows_1536, {cu::decoder_kernel::fused});
    const decoder_shape rows_600[] = {{600, 24, 1001, true}};  // 256 + 256 + 88 rows of 2002 bytes
    ctx.decoder_chunk_bytes = 256 * 1001 * sizeof(bf16) + 100;
    decoder_parity<bf16>(ctx, rows_600, {cu::decoder_kernel::fused});
}

TEST_CASE_TEMPLATE("cuda MLM decoder at crammed's shape: fused and chunked against the CPU", T, bf16, fp16) {
    CRAM_REQUIRE_GPU();
    decoder_parity<T>(ctx, crammed_decoder);
}

TEST_CASE("cuda decoder route and chunk rule, worked out by hand (no GPU needed)") {
    using cu::decoder_kernel;
    CHECK(cu::decoder_route_for(decoder_kernel::fused, 32768).fused);
    CHECK(cu::decoder_route_for(decoder_kernel::fused, 65536).fused);
    CHECK_FALSE(cu::decoder_route_for(decoder_kernel::fused, 65544).fused);
    CHECK(cu::decoder_route_for(decoder_kernel::fused, 30522).fused);        // even: 32768 at most
    CHECK_FALSE(cu::decoder_route_for(decoder_kernel::fused, 32770).fused);
    CHECK(cu::decoder_route_for(decoder_kernel::fused, 16383).fused);        // odd: 16384 at most
    CHECK_FALSE(cu::decoder_route_for(decoder_kernel::fused, 16385).fused);
    CHECK_FALSE(cu::decoder_route_for(decoder_kernel::chunked, 32768).fused);
    CHECK(cu::decoder_route_for(decoder_kernel::fused, 70000).why.find("70000") != std::string::npos);
    // the fused path at micro-batch 512 (16384 masked rows of 32768 bf16 logits: 1 GiB)
    constexpr std::size_t MiB = std::size_t(1) << 20, row = 65536;
    CHECK(cu::fused_decoder_rows(16384, row, 1024, 1024 * MiB, 0) == 16384);           // the arena holds it
    CHECK(cu::fused_decoder_rows(16384, row, 1024, 100 * MiB, 2048 * MiB) == 16384);   // grows it, 512 MiB kept
    // 100 MiB arena + (1000 - 512) MiB free = 588 MiB: 9408 rows, a multiple of 8
    CHECK(cu::fused_decoder_rows(16384, row, 1024, 100 * MiB, 1000 * MiB) == 9408);
    CHECK(cu::fused_decoder_rows(16384, row, 1024, 0, 300 * MiB) == 1024);  // never below the chunked path's rows
    CHECK(cu::fused_decoder_rows(500, row, 1024, 0, 0) == 500);             // ... nor above n
    CHECK_THROWS(cu::fused_decoder_rows(0, row, 1024, 0, 0));
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
