// cram/cuda/gemm.hpp against the CPU oracle (cram/ops/gemm.hpp, fp32) on inputs representable in the storage
// type: the cuBLASLt GEMM for all transposes, bf16 and fp16 inputs with 16-bit and fp32 outputs, beta 0 and 1,
// the algorithm choice (timed, heuristic), and the linear layer forward (bias epilogue in the output's type; with
// the residual as the GEMM's C operand; a misaligned bias) and backward. Outputs are poisoned with NaN
// first; skips visibly without a GPU.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace ops = cram::ops;
namespace cu = cram::cuda;

// The large shapes: crammed BERT's on a GPU; emulated (every GEMM an fp32 loop on the CPU, timed candidates run
// again), smaller ones with the same alignments (multiples of 8), beside the odd small shapes both builds keep.
#if defined(CRAM_CUDA_EMULATED)
constexpr cram::index_t big_m = 64, big_n = 256, big_k = 192;           // 256 x 768 x 768 on a GPU
constexpr cram::index_t timed_m1 = 72, timed_m2 = 136, timed_n = 104, timed_k = 40;  // 520, 1032 x 776 x 264
constexpr cram::index_t linear_rows = 64, linear_in = 96, linear_out = 288;            // 512 x 768 -> 2304
constexpr cram::index_t wide_in = 384, wide_out = 96;                                  // 512 x 3072 -> 768
#else
constexpr cram::index_t big_m = 256, big_n = 768, big_k = 768;
constexpr cram::index_t timed_m1 = 520, timed_m2 = 1032, timed_n = 776, timed_k = 264;
constexpr cram::index_t linear_rows = 512, linear_in = 768, linear_out = 2304;
constexpr cram::index_t wide_in = 3072, wide_out = 768;
#endif

// The row-major problem as gemm_report names it: "MxNxK".
std::string shape_name(cram::index_t m, cram::index_t n, cram::index_t k) {
    return std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
}

struct gemm_case {
    bool ta, tb;
    index_t m, n, k;
};

template <class In, class Out>
void run_gemm(cu::context& ctx, const gemm_case& g, float beta) {
    const index_t lda = g.ta ? g.m : g.k, ldb = g.tb ? g.k : g.n;
    const auto a = random_vec_as<In>(static_cast<std::size_t>(g.m * g.k), 1),
               b = random_vec_as<In>(static_cast<std::size_t>(g.k * g.n), 2);
    auto c0 = random_vec_as<Out>(static_cast<std::size_t>(g.m * g.n), 3);
    auto da = upload(ctx, to_storage<In>(a)), db = upload(ctx, to_storage<In>(b));
    std::vector<float> ref = c0;
    ops::gemm<float>(g.ta, g.tb, g.m, g.n, g.k, 1.0f, a.data(), lda, b.data(), ldb, beta, ref.data(), g.n);
    device_buffer<Out> dc(static_cast<std::size_t>(g.m * g.n));
    if (beta == 0.0f) {
        poison(ctx, dc.data(), dc.size());
    } else {
        if constexpr (std::is_same_v<Out, float>)
            dc = upload(ctx, c0);
        else
            dc = upload(ctx, to_storage<Out>(c0));
    }
    cu::gemm<In, Out>(ctx, g.ta, g.tb, g.m, g.n, g.k, 1.0f, da.data(), lda, db.data(), ldb, beta, dc.data(), g.n);
    const double rtol = std::is_same_v<Out, float> ? 2e-3 : 1e-2;
    INFO("gemm ta=" << g.ta << " tb=" << g.tb << " m=" << g.m << " n=" << g.n << " k=" << g.k << " beta=" << beta);
    check_close("gemm", download_f(ctx, dc.data(), dc.size()), ref, 2e-2 * std::sqrt(double(g.k)) / 8, rtol);
}

TEST_CASE_TEMPLATE("cuda gemm: all transposes, 16-bit and fp32 outputs, beta 0 and 1, aligned and odd sizes", T, bf16,
                   fp16) {
    CRAM_REQUIRE_GPU();
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (const auto& s : {gemm_case{ta, tb, big_m, big_n, big_k}, gemm_case{ta, tb, 37, 29, 19}}) {
                run_gemm<T, float>(ctx, s, 0.0f);
                run_gemm<T, float>(ctx, s, 1.0f);
                run_gemm<T, T>(ctx, s, 0.0f);
            }
}

// The algorithm choice (context::gemm_choice): a shape first met under `heuristic` keeps cuBLASLt's first pick
// (not timed), one first met under `timed` reports a measured time and rate whenever the heuristic offered more
// than one candidate; both give the oracle's result (the beta = 1 case proves the timing did not add into C).
TEST_CASE("cuda gemm: timed and heuristic algorithm choice, same results, the timed rate reported") {
    CRAM_REQUIRE_GPU();
    const keep_setting keep_gemm_choice(ctx.gemm_choice);
    ctx.gemm_choice = cu::gemm_algorithms::heuristic;
    run_gemm<bf16, float>(ctx, gemm_case{false, true, timed_m1, timed_n, timed_k}, 1.0f);
    ctx.gemm_choice = cu::gemm_algorithms::timed;
    run_gemm<bf16, float>(ctx, gemm_case{false, true, timed_m2, timed_n, timed_k}, 1.0f);
    run_gemm<bf16, bf16>(ctx, gemm_case{false, true, timed_m2, timed_n, timed_k}, 0.0f);
    int heuristic_seen = 0, timed_seen = 0;
    for (const auto& g : cu::gemm_report(ctx)) {
        INFO(g.shape << ": candidate " << g.chosen << " of " << g.candidates << ", " << g.ms << " ms, " << g.tflops
                     << " TFLOP/s");
        if (g.shape.rfind(shape_name(timed_m1, timed_n, timed_k), 0) == 0) {
            ++heuristic_seen;
            CHECK(g.ms == 0);
            CHECK(g.candidates == 1);
            CHECK(g.how == "heuristic's first pick (asked for)");
        }
        if (g.shape.rfind(shape_name(timed_m2, timed_n, timed_k), 0) == 0) {
            ++timed_seen;
            CHECK(g.candidates >= 1);
            if (g.candidates > 1) {
                CHECK(g.how == "timed");
                CHECK(g.ms > 0);
                CHECK(g.tflops > 0);
                CHECK(g.chosen < g.candidates);
            }
        }
    }
    CHECK(heuristic_seen == 1);
    CHECK(timed_seen == 2);  // fp32 += and bf16 outputs are two plans
}

TEST_CASE_TEMPLATE("cuda linear forward (bias epilogue; with the residual as C) and backward (din, fp32 dw/dbias accumulate)",
                   T, bf16, fp16) {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<T>;
    struct shape { index_t rows, in_f, out_f; };
    for (const auto s : {shape{linear_rows, linear_in, linear_out}, shape{33, 24, 40}}) {
        INFO("rows " << s.rows << " in " << s.in_f << " out " << s.out_f);
        const auto x = random_vec_as<T>(static_cast<std::size_t>(s.rows * s.in_f), 10),
                   w = random_vec_as<T>(static_cast<std::size_t>(s.out_f * s.in_f), 11, 0.1f);
        const auto bias = random_vec_as<T>(static_cast<std::size_t>(s.out_f), 12),
                   dy = random_vec_as<T>(static_cast<std::size_t>(s.rows * s.out_f), 13);
        const auto dw0 = random_vec(w.size(), 14), db0 = random_vec(bias.size(), 15);
        std::vector<float> y(static_cast<std::size_t>(s.rows * s.out_f)), dx(x.size()), dw = dw0, db = db0;
        ops::linear_forward(y.data(), x.data(), w.data(), bias.data(), s.rows, s.in_f, s.out_f);
        ops::linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), s.rows, s.in_f, s.out_f);
        auto dx_ = upload(ctx, to_storage<T>(x)), dw_ = upload(ctx, to_storage<T>(w)),
             dbias = upload(ctx, to_storage<T>(bias)), ddy = upload(ctx, to_storage<T>(dy));
        auto gy = poisoned<T>(ctx, y.size()), gdx = poisoned<T>(ctx, x.size());
        auto gdw = upload(ctx, dw0), gdb = upload(ctx, db0);
        B::linear_forward(ctx, gy.data(), dx_.data(), dw_.data(), dbias.data(), s.rows, s.in_f, s.out_f);
        B::linear_backward(ctx, gdx.data(), gdw.data(), gdb.data(), ddy.data(), dx_.data(), dw_.data(), s.rows, s.in_f,
                           s.out_f);
        check_close("linear y", download_f(ctx, gy.data(), y.size()), y, 2e-2, 1e-2);
        check_close("linear dx", download_f(ctx, gdx.data(), dx.size()), dx, 2e-2, 1e-2);
        check_close("linear dw", download_f(ctx, gdw.data(), dw.size()), dw, 1e-2, 2e-3);
        check_close("linear dbias", download_f(ctx, gdb.data(), db.size()), db, 1e-2, 2e-3);
        // the forward with the residual as the GEMM's C operand (C != D): out = residual + linear(x); the
        // residual's buffer must come back unchanged
        const auto res = random_vec_as<T>(y.size(), 16, 2.0f);
        std::vector<float> yr(y.size());
        ops::linear_residual_forward(yr.data(), x.data(), w.data(), bias.data(), res.data(), s.rows, s.in_f, s.out_f);
        auto gres = upload(ctx, to_storage<T>(res));
        auto gyr = poisoned<T>(ctx, y.size());
        B::linear_residual_forward(ctx, gyr.data(), dx_.data(), dw_.data(), dbias.data(), gres.data(), s.rows, s.in_f,
                                   s.out_f);
        check_close("linear + residual y", download_f(ctx, gyr.data(), yr.size()), yr, 2e-2, 1e-2);
        CHECK(download_f(ctx, gres.data(), res.size()) == res);
        // a bias 2 bytes past an aligned address: its own plan, whose algorithm the heuristic chose knowing that
        std::vector<float> shifted(bias.size() + 1, 0.0f);
        std::copy(bias.begin(), bias.end(), shifted.begin() + 1);
        auto gbias_odd = upload(ctx, to_storage<T>(shifted));
        auto gy_odd = poisoned<T>(ctx, y.size());
        B::linear_forward(ctx, gy_odd.data(), dx_.data(), dw_.data(), gbias_odd.data() + 1, s.rows, s.in_f, s.out_f);
        check_close("linear y, misaligned bias", download_f(ctx, gy_odd.data(), y.size()), y, 2e-2, 1e-2);
    }
}

// The fp32 residual stream (cuda::residual_fp32_backend): the projection's fp32 GEMM output with the fp32 residual
// as C, with and without a bias (the bias kernel the fp32 output needs), against the CPU in fp32. The residual
// carries values a 16-bit stream could not hold exactly; the output must keep them to fp32 accuracy.
TEST_CASE_TEMPLATE("cuda linear_residual_forward into an fp32 residual stream (with and without bias)", T, bf16,
                   fp16) {
    CRAM_REQUIRE_GPU();
    using B = cram::cuda::basic_backend<T, float>;
    struct shape { index_t rows, in_f, out_f; };
    for (const auto s : {shape{linear_rows, wide_in, wide_out}, shape{33, 24, 40}}) {
        INFO("rows " << s.rows << " in " << s.in_f << " out " << s.out_f);
        const auto x = random_vec_as<T>(static_cast<std::size_t>(s.rows * s.in_f), 60),
                   w = random_vec_as<T>(static_cast<std::size_t>(s.out_f * s.in_f), 61, 0.05f),
                   bias = random_vec_as<T>(static_cast<std::size_t>(s.out_f), 62);
        auto res = random_vec(static_cast<std::size_t>(s.rows * s.out_f), 63, 4.0f);  // fp32, not 16-bit rounded
        for (auto& v : res) v += 1000.0f;  // a bf16 stream would round these by up to 4
        auto gx = upload(ctx, to_storage<T>(x)), gw = upload(ctx, to_storage<T>(w)),
             gbias = upload(ctx, to_storage<T>(bias));
        auto gres = upload(ctx, res);
        for (const bool with_bias : {true, false}) {
            CAPTURE(with_bias);
            std::vector<float> y(res.size());
            ops::linear_residual_forward(y.data(), x.data(), w.data(), with_bias ? bias.data() : nullptr, res.data(),
                                         s.rows, s.in_f, s.out_f);
            auto gy = poisoned<float>(ctx, y.size());
            B::linear_residual_forward(ctx, gy.data(), gx.data(), gw.data(), with_bias ? gbias.data() : nullptr,
                                       gres.data(), s.rows, s.in_f, s.out_f);
            // the branch is |.| of order 1-10; fp32 accumulation of it is good to ~1e-4, far inside bf16's 4 at 1000
            check_close("fp32 residual + linear", download_f(ctx, gy.data(), y.size()), y, 5e-3, 1e-5);
            CHECK(download_f(ctx, gres.data(), res.size()) == res);
        }
    }
}

}  // namespace
