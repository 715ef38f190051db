// cram/cuda/elementwise.hpp against the CPU oracle (cram/ops/elementwise.hpp): the residual add, in place
// and not (vector and scalar paths), the fp32 -> 16-bit weight refresh, and the fp32 residual stream's add and
// conversions, for bf16 and fp16 storage. Skips visibly without a GPU.
#include <algorithm>
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

// The fp32 residual stream's ops (cuda::residual_fp32_backend): out = residual (fp32) + branch (16-bit) in fp32,
// in place and not; the stream widened from the 16-bit type, and narrowed to it (cuda::convert, as the norms'
// backward narrows it: test_layernorm.cu) rounded as the host rounds. The packed path (n a multiple of 8, all
// aligned), and the scalar one for an odd n and for each pointer off 16-byte alignment at a packable n (which must
// not take 16-byte accesses there).
TEST_CASE_TEMPLATE("cuda fp32 residual stream: add_residual, to_residual and the narrowing conversion", T, bf16,
                   fp16) {
    CRAM_REQUIRE_GPU();
    using B = cu::basic_backend<T, float>;
    struct layout {
        index_t n;
        int residual_off, branch_off;  // elements past a 16-byte aligned address
    };
    for (const layout l : {layout{index_t(3) << 16, 0, 0}, layout{index_t(3) << 16, 1, 0},
                           layout{index_t(3) << 16, 0, 1}, layout{index_t(1001), 1, 0}}) {
        const index_t n = l.n;
        const std::size_t un = static_cast<std::size_t>(n);
        INFO("n " << n << ", residual " << l.residual_off << " and branch " << l.branch_off << " elements off");
        auto res = random_vec(un, 70, 3.0f);
        for (auto& v : res) v += 100.0f;  // fp32 values a 16-bit type cannot hold
        const auto branch = random_vec_as<T>(un, 71);
        std::vector<float> sum(un);
        for (std::size_t i = 0; i < un; ++i) sum[i] = res[i] + branch[i];  // fp32, as the kernel adds
        std::vector<float> res_padded(un + 1, 0.0f), branch_padded(un + 1, 0.0f);
        std::copy(res.begin(), res.end(), res_padded.begin() + l.residual_off);
        std::copy(branch.begin(), branch.end(), branch_padded.begin() + l.branch_off);
        auto gres_buf = upload(ctx, res_padded);
        auto gbranch_buf = upload(ctx, to_storage<T>(branch_padded));
        float* gres = gres_buf.data() + l.residual_off;
        const T* gbranch = gbranch_buf.data() + l.branch_off;
        auto gout = poisoned<float>(ctx, un);
        B::add_residual(ctx, gout.data(), gres, gbranch, n);
        check_close("add_residual", download_f(ctx, gout.data(), un), sum, 0.0, 0.0);
        B::add_residual(ctx, gres, gres, gbranch, n);  // in place
        check_close("add_residual in place", download_f(ctx, gres, un), sum, 0.0, 0.0);
        // narrowing rounds to nearest even exactly as the host type does; widening is exact
        auto gnarrow = poisoned<T>(ctx, un);
        cu::convert(ctx, gnarrow.data(), static_cast<const float*>(gres), n);
        const auto narrowed = download(ctx, gnarrow.data(), un);
        std::size_t mismatched = 0;
        for (std::size_t i = 0; i < un; ++i) mismatched += narrowed[i].bits != T(sum[i]).bits;
        CHECK(mismatched == 0);
        auto gwide = poisoned<float>(ctx, un);
        B::to_residual(ctx, gwide.data(), gbranch, n);
        check_close("to_residual", download_f(ctx, gwide.data(), un), branch, 0.0, 0.0);
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
