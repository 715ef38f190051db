// cram/cuda/activation.hpp against the CPU oracle (cram/ops/activation.hpp): GELU, the fused GELU-GLU
// (vector and scalar paths) and tanh, forward and backward. Skips visibly without a GPU.
#include <cstdint>
#include <vector>

#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace ops = cram::ops;
namespace cu = cram::cuda;

TEST_CASE("cuda activations: GELU, GELU-GLU, tanh forward and backward") {
    CRAM_REQUIRE_GPU();
    for (const index_t rows : {index_t(256), index_t(3)}) {
        const index_t inner = rows == 3 ? 13 : 1536;
        INFO("rows " << rows << " inner " << inner);
        const std::size_t n = static_cast<std::size_t>(rows * 2 * inner), m = static_cast<std::size_t>(rows * inner);
        const auto in = random_vec(n, 30, 3.0f), dout = random_vec(m, 31), other = random_vec(n, 32);
        std::vector<float> glu(m), dglu(n), ge(n), dge(n), th(n), dth(n);
        ops::glu_forward(glu.data(), in.data(), rows, inner);
        ops::glu_backward(dglu.data(), dout.data(), in.data(), rows, inner);
        ops::gelu_forward(ge.data(), in.data(), index_t(n));
        ops::gelu_backward(dge.data(), other.data(), in.data(), index_t(n));
        ops::tanh_forward(th.data(), in.data(), index_t(n));
        std::vector<float> th_b(n);
        for (std::size_t i = 0; i < n; ++i) th_b[i] = cram::round_to_bf16(th[i]);  // backward reads the stored output
        ops::tanh_backward(dth.data(), other.data(), th_b.data(), index_t(n));
        auto gin = upload(ctx, to_bf16(in)), gdo = upload(ctx, to_bf16(dout)), got = upload(ctx, to_bf16(other));
        auto gth_in = upload(ctx, to_bf16(th_b));
        auto g1 = poisoned<bf16>(ctx, m), g2 = poisoned<bf16>(ctx, n), g3 = poisoned<bf16>(ctx, n),
             g4 = poisoned<bf16>(ctx, n), g5 = poisoned<bf16>(ctx, n), g6 = poisoned<bf16>(ctx, n);
        cu::backend::glu_forward(ctx, g1.data(), gin.data(), rows, inner);
        cu::backend::glu_backward(ctx, g2.data(), gdo.data(), gin.data(), rows, inner);
        cu::backend::gelu_forward(ctx, g3.data(), gin.data(), index_t(n));
        cu::backend::gelu_backward(ctx, g4.data(), got.data(), gin.data(), index_t(n));
        cu::backend::tanh_forward(ctx, g5.data(), gin.data(), index_t(n));
        cu::backend::tanh_backward(ctx, g6.data(), got.data(), gth_in.data(), index_t(n));
        check_close("glu", download_f(ctx, g1.data(), m), glu, 1e-2, 1e-2);
        check_close("glu backward", download_f(ctx, g2.data(), n), dglu, 1e-2, 1e-2);
        check_close("gelu", download_f(ctx, g3.data(), n), ge, 1e-2, 1e-2);
        check_close("gelu backward", download_f(ctx, g4.data(), n), dge, 1e-2, 1e-2);
        check_close("tanh", download_f(ctx, g5.data(), n), th, 1e-2, 1e-2);
        check_close("tanh backward", download_f(ctx, g6.data(), n), dth, 1e-2, 1e-2);
    }
}

}  // namespace
