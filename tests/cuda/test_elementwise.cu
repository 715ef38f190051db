// cram/cuda/elementwise.hpp against the CPU oracle (cram/ops/elementwise.hpp): the residual add, in place
// and not (vector and scalar paths), and the fp32 -> bf16 weight refresh. Skips visibly without a GPU.
#include <cstdint>
#include <vector>

#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace ops = cram::ops;
namespace cu = cram::cuda;

TEST_CASE("cuda elementwise: add and add_inplace (vector and scalar paths)") {
    CRAM_REQUIRE_GPU();
    for (const index_t rows : {index_t(256), index_t(3)}) {
        const index_t inner = rows == 3 ? 13 : 1536;
        INFO("rows " << rows << " inner " << inner);
        const std::size_t n = static_cast<std::size_t>(rows * 2 * inner);
        const auto in = random_vec(n, 30, 3.0f), other = random_vec(n, 32);
        std::vector<float> sum(n);
        ops::add(sum.data(), in.data(), other.data(), index_t(n));
        auto gin = upload(ctx, to_bf16(in)), got = upload(ctx, to_bf16(other));
        auto g7 = poisoned<bf16>(ctx, n);
        cu::backend::add(ctx, g7.data(), gin.data(), got.data(), index_t(n));
        check_close("add", download_f(ctx, g7.data(), n), sum, 1e-2, 1e-2);
        // add_inplace accumulates
        cu::backend::add_inplace(ctx, got.data(), gin.data(), index_t(n));
        check_close("add_inplace", download_f(ctx, got.data(), n), sum, 1e-2, 1e-2);
    }
}

TEST_CASE("cuda params_to_weights rounds fp32 to bf16 exactly as the host does") {
    CRAM_REQUIRE_GPU();
    for (const index_t n : {index_t(1) << 20, index_t(1001)}) {
        std::vector<float> p(static_cast<std::size_t>(n));
        cram::philox_stream rng(120, 0, 0);
        for (auto& x : p) x = (2.0f * rng.next_uniform() - 1.0f) * 3.0f;  // not bf16-representable: rounding matters
        auto gp = upload(ctx, p);
        auto gw = poisoned<bf16>(ctx, p.size());
        cu::backend::params_to_weights(ctx, gw.data(), gp.data(), n);
        const auto got = download(ctx, gw.data(), p.size());
        std::size_t mismatched = 0;
        for (std::size_t i = 0; i < p.size(); ++i) mismatched += got[i].bits != bf16(p[i]).bits;
        INFO("n " << n << ": " << mismatched << " elements rounded differently");
        CHECK(mismatched == 0);
    }
}

}  // namespace
