// cram/cuda/adamw.hpp against the CPU oracle (cram/ops/adamw.hpp): an AdamW step (parameters and both
// moments), the sum of squares and scaling. Skips visibly without a GPU.
#include <cmath>
#include <cstdint>
#include <vector>

#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace ops = cram::ops;
namespace cu = cram::cuda;

TEST_CASE("cuda AdamW step and sum of squares") {
    CRAM_REQUIRE_GPU();
    for (const index_t n : {index_t(3) << 20, index_t(77)}) {
        auto p = random_vec(static_cast<std::size_t>(n), 100), g = random_vec(static_cast<std::size_t>(n), 101, 0.01f);
        auto m = random_vec(static_cast<std::size_t>(n), 102, 0.01f), v = random_vec(static_cast<std::size_t>(n), 103, 1e-4f);
        for (auto& x : v) x = std::abs(x);
        auto gp = upload(ctx, p), gg = upload(ctx, g), gm = upload(ctx, m), gv = upload(ctx, v);
        ops::adamw_hparams hp{1e-3f, 0.9f, 0.98f, 1e-12f, 0.01f, 7};
        ops::adamw_step(p.data(), g.data(), m.data(), v.data(), n, hp, 0.5f);
        cu::backend::adamw_step(ctx, gp.data(), gg.data(), gm.data(), gv.data(), n, hp, 0.5f);
        check_close("adamw params", download(ctx, gp.data(), p.size()), p, 1e-6, 1e-5);
        check_close("adamw m", download(ctx, gm.data(), m.size()), m, 1e-8, 1e-5);
        check_close("adamw v", download(ctx, gv.data(), v.size()), v, 1e-10, 1e-5);
        const double ref = ops::sum_squares(g.data(), n);
        const double got = cu::backend::sum_squares(ctx, gg.data(), n);
        INFO("sum_squares got " << got << " ref " << ref);
        CHECK(ref > 0);
        CHECK(std::abs(got - ref) <= 1e-5 * ref);
    }
}

TEST_CASE("cuda scale_inplace against the CPU") {
    CRAM_REQUIRE_GPU();
    for (const index_t n : {index_t(3) << 20, index_t(77)}) {
        auto x = random_vec(static_cast<std::size_t>(n), 104);
        auto gx = upload(ctx, x);
        ops::scale_inplace(x.data(), 0.37f, n);
        cu::backend::scale_inplace(ctx, gx.data(), 0.37f, n);
        check_close("scale_inplace", download(ctx, gx.data(), x.size()), x, 0, 0);  // one fp32 multiply each
    }
}

}  // namespace
