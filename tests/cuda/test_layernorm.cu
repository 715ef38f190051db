// cram/cuda/layernorm.hpp against the CPU oracle (cram/ops/layernorm.hpp): outputs, fp32 statistics and all
// three gradients, for bf16 and fp16 storage, on both kernel sets (context::layernorm: warp, block) and on
// shapes that exercise each: rows of 1, 2, 3 and 4 vectors per lane, a row that leaves lanes idle, rows past
// the grid (grid-stride), and widths and misaligned rows the warp kernels refuse (the fallback). The fused residual add
// (add_layernorm_forward) against the CPU's add then norm, its sum bit for bit. The warp backward has no atomics:
// two runs must give the same bits. The norms of an fp32 residual stream (fp32 input and input gradient, 16-bit
// output; residual_fp32_backend) on both kernel sets. Skips visibly without a GPU.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace ops = cram::ops;
namespace cu = cram::cuda;

struct ln_shape {
    index_t rows, cols;
};
// 768: 3 vectors per lane (crammed BERT); 1024: 4, the most the warp kernels hold; 512: 2; 1000: 125 vectors,
// lanes 29-31 idle in the last; 8: one vector, 31 lanes idle; 5000 rows: more than the grid's warps; 37 and
// 1032: the block kernels (not a multiple of 8; wider than 1024).
#if defined(CRAM_CUDA_EMULATED)
// emulated (4 multiprocessors by default: 96 warps in the grid), 1500 rows are already 15 grids' worth
const ln_shape ln_shapes[] = {{256, 768}, {1500, 1024}, {300, 512}, {5, 1000}, {9, 8}, {7, 37}, {3, 1032}};
#else
const ln_shape ln_shapes[] = {{1024, 768}, {5000, 1024}, {300, 512}, {5, 1000}, {9, 8}, {7, 37}, {3, 1032}};
#endif

// The path the launcher takes, worked out from its documented rule rather than asked of it.
bool expect_warp(cu::layernorm_kernel asked, index_t cols) {
    return asked == cu::layernorm_kernel::warp && cols % 8 == 0 && cols <= 1024;
}

const char* path_name(cu::layernorm_kernel k) { return k == cu::layernorm_kernel::warp ? "warp" : "block"; }

// f(kernel set, shape) for every shape on each kernel set, the context switched to it.
template <class F>
void on_both_kernel_sets(cu::context& ctx, F&& f) {
    const keep_setting keep_layernorm(ctx.layernorm);
    for (const auto path : {cu::layernorm_kernel::block, cu::layernorm_kernel::warp})
        for (const auto s : ln_shapes) {
            INFO(std::string(path_name(path)) << " kernels, rows " << s.rows << " cols " << s.cols);
            ctx.layernorm = path;
            f(path, s);
        }
}

TEST_CASE_TEMPLATE("cuda layernorm forward and backward: warp and block kernels against the CPU", T, bf16, fp16) {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<T>;
    on_both_kernel_sets(ctx, [&](cu::layernorm_kernel path, ln_shape s) {
        const std::size_t n = static_cast<std::size_t>(s.rows * s.cols);
        auto x = random_vec_as<T>(n, 20, 3.0f);
        for (std::size_t i = 0; i < n; ++i) x[i] = round_to<T>(x[i] + 0.5f);  // a non-zero mean
        const auto cols = static_cast<std::size_t>(s.cols);
        // weights around 1 and an upstream gradient with an offset and a share of x: both row means of the input
        // gradient, mean(dy w) and mean(dy w xhat), are then far from zero, so an error in either shows in din
        auto w = random_vec_as<T>(cols, 21), dy = random_vec_as<T>(n, 23);
        for (auto& v : w) v = round_to<T>(1.0f + 0.5f * v);
        for (std::size_t i = 0; i < n; ++i) dy[i] = round_to<T>(dy[i] + 0.3f * x[i] + 0.5f);
        const auto b = random_vec_as<T>(cols, 22), din0 = random_vec_as<T>(n, 24);
        // the parameter gradients start non-zero: the backward must add to them
        const auto dw0 = random_vec(cols, 25), db0 = random_vec(cols, 26);
        std::vector<float> y(n), mean(static_cast<std::size_t>(s.rows)), rstd(mean.size()), din = din0, dw = dw0,
                                 db = db0;
        ops::layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), s.rows, s.cols,
                               1e-12f);
        ops::layernorm_backward(din.data(), dw.data(), db.data(), dy.data(), x.data(), mean.data(), rstd.data(),
                                w.data(), s.rows, s.cols);
        auto gx = upload(ctx, to_storage<T>(x)), gw = upload(ctx, to_storage<T>(w)),
             gb = upload(ctx, to_storage<T>(b)), gdy = upload(ctx, to_storage<T>(dy)),
             gdin = upload(ctx, to_storage<T>(din0));
        CHECK((cu::detail::layernorm_warp_route(ctx, s.cols, {gx.data(), gw.data(), gb.data()}) > 0) ==
              expect_warp(path, s.cols));
        auto gy = poisoned<T>(ctx, n);
        auto gmean = poisoned<float>(ctx, mean.size()), grstd = poisoned<float>(ctx, mean.size());
        auto gdw = upload(ctx, dw0), gdb = upload(ctx, db0);
        B::layernorm_forward(ctx, gy.data(), gmean.data(), grstd.data(), gx.data(), gw.data(), gb.data(), s.rows,
                             s.cols, 1e-12f);
        B::layernorm_backward(ctx, gdin.data(), gdw.data(), gdb.data(), gdy.data(), gx.data(), gmean.data(),
                              grstd.data(), gw.data(), s.rows, s.cols);
        check_close("layernorm y", download_f(ctx, gy.data(), n), y, 1e-2, 1e-2);
        check_close("layernorm mean", download_f(ctx, gmean.data(), mean.size()), mean, 1e-5, 1e-4);
        check_close("layernorm rstd", download_f(ctx, grstd.data(), rstd.size()), rstd, 1e-5, 1e-4);
        check_close("layernorm din", download_f(ctx, gdin.data(), n), din, 5e-3, 1e-2);
        check_close("layernorm dw", download_f(ctx, gdw.data(), dw.size()), dw, 1e-2, 1e-3);
        check_close("layernorm db", download_f(ctx, gdb.data(), db.size()), db, 1e-2, 1e-3);
    });
}

// Rows that start 2 bytes past a 16-byte boundary: the warp kernels' 16-byte loads would fault there, so the route
// must send them to the block kernels, which must still match the CPU.
TEST_CASE("cuda layernorm: misaligned rows take the block kernels and match the CPU") {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<bf16>;
    const keep_setting keep_layernorm(ctx.layernorm);
    ctx.layernorm = cu::layernorm_kernel::warp;
    const index_t rows = 64, cols = 768;
    const std::size_t n = static_cast<std::size_t>(rows * cols), ncols = static_cast<std::size_t>(cols);
    const auto x = random_vec_as<bf16>(n, 50, 2.0f), dy = random_vec_as<bf16>(n, 51), din0 = random_vec_as<bf16>(n, 52);
    auto w = random_vec_as<bf16>(ncols, 53);
    for (auto& v : w) v = round_to<bf16>(1.0f + 0.5f * v);
    const auto b = random_vec_as<bf16>(ncols, 54);
    std::vector<float> y(n), mean(static_cast<std::size_t>(rows)), rstd(mean.size()), din = din0,
                             dw(ncols, 0.0f), db(ncols, 0.0f);
    ops::layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), rows, cols, 1e-12f);
    ops::layernorm_backward(din.data(), dw.data(), db.data(), dy.data(), x.data(), mean.data(), rstd.data(), w.data(),
                            rows, cols);
    // one leading element, so every row begins at an odd 16-bit offset
    const auto shifted = [](const std::vector<float>& v) {
        std::vector<float> out(v.size() + 1, 0.0f);
        std::copy(v.begin(), v.end(), out.begin() + 1);
        return to_storage<bf16>(out);
    };
    auto gx = upload(ctx, shifted(x)), gdy = upload(ctx, shifted(dy)), gdin = upload(ctx, shifted(din0));
    auto gy = upload(ctx, to_storage<bf16>(std::vector<float>(n + 1, 7.0f)));  // 7 before the rows, to stay
    auto gw = upload(ctx, to_storage<bf16>(w)), gb = upload(ctx, to_storage<bf16>(b));
    CHECK(cu::detail::layernorm_warp_route(ctx, cols, {gx.data() + 1, gw.data(), gb.data()}) == 0);
    auto gmean = poisoned<float>(ctx, mean.size()), grstd = poisoned<float>(ctx, mean.size());
    auto gdw = upload(ctx, std::vector<float>(ncols, 0.0f)), gdb = upload(ctx, std::vector<float>(ncols, 0.0f));
    B::layernorm_forward(ctx, gy.data() + 1, gmean.data(), grstd.data(), gx.data() + 1, gw.data(), gb.data(), rows,
                         cols, 1e-12f);
    B::layernorm_backward(ctx, gdin.data() + 1, gdw.data(), gdb.data(), gdy.data() + 1, gx.data() + 1, gmean.data(),
                          grstd.data(), gw.data(), rows, cols);
    const auto got_y = download_f(ctx, gy.data(), n + 1), got_din = download_f(ctx, gdin.data(), n + 1);
    CHECK(got_y[0] == 7.0f);  // the element before the rows is untouched
    check_close("misaligned layernorm y", std::vector<float>(got_y.begin() + 1, got_y.end()), y, 1e-2, 1e-2);
    check_close("misaligned layernorm mean", download_f(ctx, gmean.data(), mean.size()), mean, 1e-5, 1e-4);
    check_close("misaligned layernorm din", std::vector<float>(got_din.begin() + 1, got_din.end()), din, 5e-3, 1e-2);
    check_close("misaligned layernorm dw", download_f(ctx, gdw.data(), ncols), dw, 1e-2, 1e-3);
    check_close("misaligned layernorm db", download_f(ctx, gdb.data(), ncols), db, 1e-2, 1e-3);
}

TEST_CASE_TEMPLATE("cuda layernorm: the warp backward's parameter gradients are the same bits on every run", T,
                   bf16, fp16) {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<T>;
    const keep_setting keep_layernorm(ctx.layernorm);
    ctx.layernorm = cu::layernorm_kernel::warp;
    const index_t rows = 4096, cols = 768;
    const std::size_t n = static_cast<std::size_t>(rows * cols), ncols = static_cast<std::size_t>(cols);
    const auto x = random_vec_as<T>(n, 30, 2.0f), dy = random_vec_as<T>(n, 31), w = random_vec_as<T>(ncols, 32);
    std::vector<float> mean(static_cast<std::size_t>(rows)), rstd(mean.size()), y(n);
    const std::vector<float> b(ncols, 0.0f);
    ops::layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), rows, cols, 1e-12f);
    auto gx = upload(ctx, to_storage<T>(x)), gdy = upload(ctx, to_storage<T>(dy)), gw = upload(ctx, to_storage<T>(w));
    auto gmean = upload(ctx, mean), grstd = upload(ctx, rstd);
    std::vector<std::vector<float>> runs;
    for (int run = 0; run < 2; ++run) {
        auto gdin = upload(ctx, to_storage<T>(std::vector<float>(n, 0.0f)));
        auto gdw = upload(ctx, std::vector<float>(ncols, 0.0f)), gdb = upload(ctx, std::vector<float>(ncols, 0.0f));
        B::layernorm_backward(ctx, gdin.data(), gdw.data(), gdb.data(), gdy.data(), gx.data(), gmean.data(),
                              grstd.data(), gw.data(), rows, cols);
        auto dw = download_f(ctx, gdw.data(), ncols), db = download_f(ctx, gdb.data(), ncols);
        dw.insert(dw.end(), db.begin(), db.end());
        runs.push_back(std::move(dw));
    }
    REQUIRE(runs[0].size() == runs[1].size());
    CHECK(std::memcmp(runs[0].data(), runs[1].data(), runs[0].size() * sizeof(float)) == 0);
    double norm = 0;
    for (float v : runs[0]) norm += double(v) * v;
    CHECK(norm > 0);
}

TEST_CASE_TEMPLATE("cuda add_layernorm_forward: the residual sum bit for bit, then the norm, against the CPU", T, bf16,
                   fp16) {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<T>;
    on_both_kernel_sets(ctx, [&](cu::layernorm_kernel, ln_shape s) {
        const std::size_t n = static_cast<std::size_t>(s.rows * s.cols);
        const auto a = random_vec_as<T>(n, 40, 3.0f), r = random_vec_as<T>(n, 41, 0.5f);
        const auto w = random_vec_as<T>(static_cast<std::size_t>(s.cols), 42),
                   b = random_vec_as<T>(static_cast<std::size_t>(s.cols), 43);
        // the CPU oracle: the sum rounded to T where the GPU stores it, then the norm of the stored sum
        std::vector<float> sum(n), y(n), mean(static_cast<std::size_t>(s.rows)), rstd(mean.size());
        for (std::size_t i = 0; i < n; ++i) sum[i] = round_to<T>(a[i] + r[i]);
        ops::layernorm_forward(y.data(), mean.data(), rstd.data(), sum.data(), w.data(), b.data(), s.rows, s.cols,
                               1e-12f);
        auto ga = upload(ctx, to_storage<T>(a)), gr = upload(ctx, to_storage<T>(r)),
             gw = upload(ctx, to_storage<T>(w)), gb = upload(ctx, to_storage<T>(b));
        auto gsum = poisoned<T>(ctx, n), gy = poisoned<T>(ctx, n);
        auto gmean = poisoned<float>(ctx, mean.size()), grstd = poisoned<float>(ctx, mean.size());
        B::add_layernorm_forward(ctx, gsum.data(), gy.data(), gmean.data(), grstd.data(), ga.data(), gr.data(),
                                 gw.data(), gb.data(), s.rows, s.cols, 1e-12f);
        check_close("add_layernorm sum", download_f(ctx, gsum.data(), n), sum, 0.0, 0.0);
        check_close("add_layernorm y", download_f(ctx, gy.data(), n), y, 1e-2, 1e-2);
        check_close("add_layernorm mean", download_f(ctx, gmean.data(), mean.size()), mean, 1e-5, 1e-4);
        check_close("add_layernorm rstd", download_f(ctx, grstd.data(), rstd.size()), rstd, 1e-5, 1e-4);
    });
}

// An fp32 residual stream (cuda::basic_backend<T, float>): the norm reads fp32 rows (values a 16-bit type would
// round: a large mean plus fine detail), writes T; the backward adds into an fp32 input gradient and writes its
// copy rounded to T; the fused add
// sums an fp32 residual and a T branch in fp32, stored bit for bit as the CPU's fp32 add. Both kernel sets, every
// shape. The oracle is the CPU in fp32 on the same unrounded rows.
TEST_CASE_TEMPLATE("cuda residual layernorm: an fp32 stream into T, forward, backward and the fused add, against "
                   "the CPU", T, bf16, fp16) {
    CRAM_REQUIRE_GPU();
    using B = cu::basic_backend<T, float>;
    on_both_kernel_sets(ctx, [&](cu::layernorm_kernel, ln_shape s) {
        const std::size_t n = static_cast<std::size_t>(s.rows * s.cols), cols = static_cast<std::size_t>(s.cols);
        auto x = random_vec(n, 80, 0.25f);
        for (auto& v : x) v += 300.0f;  // in bf16 these would all round to multiples of 2: the norm would see noise
        auto w = random_vec_as<T>(cols, 81), dy = random_vec_as<T>(n, 83);
        for (auto& v : w) v = round_to<T>(1.0f + 0.5f * v);
        const auto b = random_vec_as<T>(cols, 82), branch = random_vec_as<T>(n, 85);
        const auto din0 = random_vec(n, 84), dw0 = random_vec(cols, 86), db0 = random_vec(cols, 87);
        std::vector<float> y(n), mean(static_cast<std::size_t>(s.rows)), rstd(mean.size()), din = din0, dw = dw0,
                                 db = db0;
        ops::layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), s.rows, s.cols,
                               1e-12f);
        ops::layernorm_backward(din.data(), dw.data(), db.data(), dy.data(), x.data(), mean.data(), rstd.data(),
                                w.data(), s.rows, s.cols);
        auto gx = upload(ctx, x);
        auto gw = upload(ctx, to_storage<T>(w)), gb = upload(ctx, to_storage<T>(b)),
             gdy = upload(ctx, to_storage<T>(dy));
        auto gdin = upload(ctx, din0), gdw = upload(ctx, dw0), gdb = upload(ctx, db0);
        auto gy = poisoned<T>(ctx, n);
        auto gmean = poisoned<float>(ctx, mean.size()), grstd = poisoned<float>(ctx, mean.size());
        B::residual_layernorm_forward(ctx, gy.data(), gmean.data(), grstd.data(), gx.data(), gw.data(), gb.data(),
                                      s.rows, s.cols, 1e-12f);
        auto gnarrow = poisoned<T>(ctx, n);
        B::residual_layernorm_backward(ctx, gdin.data(), gnarrow.data(), gdw.data(), gdb.data(), gdy.data(), gx.data(),
                                       gmean.data(), grstd.data(), gw.data(), s.rows, s.cols);
        check_close("residual layernorm y", download_f(ctx, gy.data(), n), y, 1e-2, 1e-2);
        check_close("residual layernorm mean", download_f(ctx, gmean.data(), mean.size()), mean, 1e-5, 1e-5);
        check_close("residual layernorm rstd", download_f(ctx, grstd.data(), rstd.size()), rstd, 1e-5, 1e-3);
        const auto got_din = download_f(ctx, gdin.data(), n);
        check_close_scaled("residual layernorm din (fp32)", got_din, din, 1e-3, 1e-3);
        // the narrowed copy the next branch reads: the accumulated fp32 din rounded to T, bit for bit
        const auto narrowed = download(ctx, gnarrow.data(), n);
        std::size_t mismatched = 0;
        for (std::size_t i = 0; i < n; ++i) mismatched += narrowed[i].bits != T(got_din[i]).bits;
        CHECK(mismatched == 0);
        // dw against a double-precision sum, within 3e-2: rows near 300 with a spread of 0.14 cost any fp32 xhat
        // ~2e-4 of itself (x's ulp, 3e-5, over the spread; and the row mean's rounding), and a column of dw adds 5000
        // of them (1500 emulated): ~1e-2 of error in fp32 whatever the order, which is the 1e-2 this check had (found emulated: both
        // kernel sets missed it by 1.1-1.3e-2, and the fp32 oracle, whose row mean is a sequential sum of 1024
        // values near 300, by 2.4e-2)
        std::vector<double> dw_exact(cols), db_exact(cols);
        for (std::size_t c = 0; c < cols; ++c) dw_exact[c] = dw0[c], db_exact[c] = db0[c];
        for (std::size_t r = 0; r < static_cast<std::size_t>(s.rows); ++r) {
            double mu = 0, var = 0;
            for (std::size_t c = 0; c < cols; ++c) mu += x[r * cols + c];
            mu /= double(cols);
            for (std::size_t c = 0; c < cols; ++c) var += (x[r * cols + c] - mu) * (x[r * cols + c] - mu);
            const double rs = 1.0 / std::sqrt(var / double(cols) + 1e-12);
            for (std::size_t c = 0; c < cols; ++c) {
                dw_exact[c] += double(dy[r * cols + c]) * (x[r * cols + c] - mu) * rs;
                db_exact[c] += dy[r * cols + c];
            }
        }
        check_close("residual layernorm dw", download_f(ctx, gdw.data(), cols),
                    std::vector<float>(dw_exact.begin(), dw_exact.end()), 3e-2, 1e-3);
        check_close("residual layernorm db", download_f(ctx, gdb.data(), cols),
                    std::vector<float>(db_exact.begin(), db_exact.end()), 1e-2, 1e-3);
        check_close("residual layernorm dw (fp32 oracle)", download_f(ctx, gdw.data(), cols), dw, 3e-2, 1e-2);
        // the fused add: sum = x + branch in fp32, exactly; then the norm of it
        std::vector<float> sum(n), ys(n);
        for (std::size_t i = 0; i < n; ++i) sum[i] = x[i] + branch[i];
        ops::layernorm_forward(ys.data(), mean.data(), rstd.data(), sum.data(), w.data(), b.data(), s.rows, s.cols,
                               1e-12f);
        auto gbranch = upload(ctx, to_storage<T>(branch));
        auto gsum = poisoned<float>(ctx, n);
        auto gys = poisoned<T>(ctx, n);
        B::add_layernorm_forward(ctx, gsum.data(), gys.data(), gmean.data(), grstd.data(), gx.data(), gbranch.data(),
                                 gw.data(), gb.data(), s.rows, s.cols, 1e-12f);
        check_close("residual add_layernorm sum (fp32, exact)", download_f(ctx, gsum.data(), n), sum, 0.0, 0.0);
        check_close("residual add_layernorm y", download_f(ctx, gys.data(), n), ys, 1e-2, 1e-2);
        check_close("residual add_layernorm mean", download_f(ctx, gmean.data(), mean.size()), mean, 1e-5, 1e-5);
    });
}

}  // namespace
