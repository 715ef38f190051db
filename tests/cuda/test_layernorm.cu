// cram/cuda/layernorm.hpp against the CPU oracle (cram/ops/layernorm.hpp): outputs, fp32 statistics and
// all three gradients, on the vector and scalar paths, for bf16 and fp16 storage. Skips visibly without a GPU.
#include <cstdint>
#include <vector>

#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace ops = cram::ops;
namespace cu = cram::cuda;

TEST_CASE_TEMPLATE("cuda layernorm forward and backward (fp32 statistics, vector and scalar paths)", T, bf16, fp16) {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<T>;
    struct shape { index_t rows, cols; };
    for (const auto s : {shape{1024, 768}, shape{7, 37}, shape{5, 1000}}) {
        INFO("rows " << s.rows << " cols " << s.cols);
        const std::size_t n = static_cast<std::size_t>(s.rows * s.cols);
        auto x = random_vec_as<T>(n, 20, 3.0f);
        for (std::size_t i = 0; i < n; ++i) x[i] = round_to<T>(x[i] + 0.5f);  // a non-zero mean
        const auto w = random_vec_as<T>(static_cast<std::size_t>(s.cols), 21),
                   b = random_vec_as<T>(static_cast<std::size_t>(s.cols), 22);
        const auto dy = random_vec_as<T>(n, 23), din0 = random_vec_as<T>(n, 24);
        std::vector<float> y(n), mean(static_cast<std::size_t>(s.rows)), rstd(mean.size()), din = din0, dw(w.size()), db(b.size());
        ops::layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), s.rows, s.cols, 1e-12f);
        ops::layernorm_backward(din.data(), dw.data(), db.data(), dy.data(), x.data(), mean.data(), rstd.data(),
                                w.data(), s.rows, s.cols);
        auto gx = upload(ctx, to_storage<T>(x)), gw = upload(ctx, to_storage<T>(w)), gb = upload(ctx, to_storage<T>(b)),
             gdy = upload(ctx, to_storage<T>(dy)), gdin = upload(ctx, to_storage<T>(din0));
        auto gy = poisoned<T>(ctx, n);
        auto gmean = poisoned<float>(ctx, mean.size()), grstd = poisoned<float>(ctx, mean.size());
        auto gdw = upload(ctx, std::vector<float>(w.size(), 0.0f)), gdb = upload(ctx, std::vector<float>(b.size(), 0.0f));
        B::layernorm_forward(ctx, gy.data(), gmean.data(), grstd.data(), gx.data(), gw.data(), gb.data(), s.rows,
                             s.cols, 1e-12f);
        B::layernorm_backward(ctx, gdin.data(), gdw.data(), gdb.data(), gdy.data(), gx.data(), gmean.data(),
                              grstd.data(), gw.data(), s.rows, s.cols);
        check_close("layernorm y", download_f(ctx, gy.data(), n), y, 1e-2, 1e-2);
        check_close("layernorm mean", download_f(ctx, gmean.data(), mean.size()), mean, 1e-5, 1e-4);
        check_close("layernorm rstd", download_f(ctx, grstd.data(), rstd.size()), rstd, 1e-5, 1e-4);
        check_close("layernorm din", download_f(ctx, gdin.data(), n), din, 2e-2, 1e-2);
        check_close("layernorm dw", download_f(ctx, gdw.data(), dw.size()), dw, 1e-2, 1e-3);
        check_close("layernorm db", download_f(ctx, gdb.data(), db.size()), db, 1e-2, 1e-3);
    }
}

}  // namespace
