// cram/cuda/elementwise.hpp against the CPU oracle (cram/ops/elementwise.hpp): the residual add, in place
// and not (vector and scalar paths), and the fp32 -> 16-bit weight refresh, for bf16 and fp16 storage. Skips
// visibly without a GPU.
#include <cstdint>
#include <iterator>
#include <vector>

#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace ops = cram::ops;
namespace cu = cram::cuda;

TEST_CASE_TEMPLATE("cuda elementwise: add and add_inplace (vector and scalar paths)", T, bf16, fp16) {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<T>;
    for (const index_t rows : {index_t(256), index_t(3)}) {
        const index_t inner = rows == 3 ? 13 : 1536;
        INFO("rows " << rows << " inner " << inner);
        const std::size_t n = static_cast<std::size_t>(rows * 2 * inner);
        const auto in = random_vec_as<T>(n, 30, 3.0f), other = random_vec_as<T>(n, 32);
        std::vector<float> sum(n);
        ops::add(sum.data(), in.data(), other.data(), index_t(n));
        auto gin = upload(ctx, to_storage<T>(in)), got = upload(ctx, to_storage<T>(other));
        auto g7 = poisoned<T>(ctx, n);
        B::add(ctx, g7.data(), gin.data(), got.data(), index_t(n));
        check_close("add", download_f(ctx, g7.data(), n), sum, 1e-2, 1e-2);
        // add_inplace accumulates
        B::add_inplace(ctx, got.data(), gin.data(), index_t(n));
        check_close("add_inplace", download_f(ctx, got.data(), n), sum, 1e-2, 1e-2);
    }
}

TEST_CASE_TEMPLATE("cuda params_to_weights rounds fp32 to the storage type exactly as the host does", T, bf16, fp16) {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<T>;
    for (const index_t n : {index_t(1) << 20, index_t(1001)}) {
        std::vector<float> p(static_cast<std::size_t>(n));
        cram::philox_stream rng(120, 0, 0);
        for (auto& x : p) x = (2.0f * rng.next_uniform() - 1.0f) * 3.0f;  // not representable: rounding matters
        // the edges of the 16-bit formats: fp16's overflow to infinity (65520 and up), its largest finite
        // value, ties, its subnormals and underflow to zero; bf16 keeps all of them finite
        const float edges[] = {65504.0f, 65519.0f, 65520.0f, -70000.0f, 1.00048828125f, 6.0e-5f, 3.0e-8f,
                               2.9e-8f, -1.0e-9f, 0.0f};
        for (std::size_t i = 0; i < std::size(edges); ++i) p[i] = edges[i];
        auto gp = upload(ctx, p);
        auto gw = poisoned<T>(ctx, p.size());
        B::params_to_weights(ctx, gw.data(), gp.data(), n);
        const auto got = download(ctx, gw.data(), p.size());
        std::size_t mismatched = 0;
        for (std::size_t i = 0; i < p.size(); ++i) mismatched += got[i].bits != T(p[i]).bits;
        INFO("n " << n << ": " << mismatched << " elements rounded differently");
        CHECK(mismatched == 0);
    }
}

}  // namespace
