// cram/cuda/activation.hpp against the CPU oracle (cram/ops/activation.hpp): GELU, the fused GELU-GLU
// (vector and scalar paths) and tanh, forward and backward, for bf16 and fp16 storage. Skips visibly without
// a GPU.
#include <cstdint>
#include <vector>

#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace ops = cram::ops;
namespace cu = cram::cuda;

TEST_CASE_TEMPLATE("cuda activations: GELU, GELU-GLU, tanh forward and backward", T, bf16, fp16) {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<T>;
    for (const index_t rows : {index_t(256), index_t(3)}) {
        const index_t inner = rows == 3 ? 13 : 1536;
        INFO("rows " << rows << " inner " << inner);
        const std::size_t n = static_cast<std::size_t>(rows * 2 * inner), m = static_cast<std::size_t>(rows * inner);
        const auto in = random_vec_as<T>(n, 30, 3.0f), dout = random_vec_as<T>(m, 31), other = random_vec_as<T>(n, 32);
        std::vector<float> glu(m), dglu(n), ge(n), dge(n), th(n), dth(n);
        ops::glu_forward(glu.data(), in.data(), rows, inner);
        ops::glu_backward(dglu.data(), dout.data(), in.data(), rows, inner);
        ops::gelu_forward(ge.data(), in.data(), index_t(n));
        ops::gelu_backward(dge.data(), other.data(), in.data(), index_t(n));
        ops::tanh_forward(th.data(), in.data(), index_t(n));
        const std::vector<float> th_stored = rounded_to<T>(th);  // backward reads the stored output
        ops::tanh_backward(dth.data(), other.data(), th_stored.data(), index_t(n));
        auto gin = upload(ctx, to_storage<T>(in)), gdo = upload(ctx, to_storage<T>(dout)),
             got = upload(ctx, to_storage<T>(other));
        auto gth_in = upload(ctx, to_storage<T>(th_stored));
        auto g1 = poisoned<T>(ctx, m), g2 = poisoned<T>(ctx, n), g3 = poisoned<T>(ctx, n), g4 = poisoned<T>(ctx, n),
             g5 = poisoned<T>(ctx, n), g6 = poisoned<T>(ctx, n);
        B::glu_forward(ctx, g1.data(), gin.data(), rows, inner);
        B::glu_backward(ctx, g2.data(), gdo.data(), gin.data(), rows, inner);
        B::gelu_forward(ctx, g3.data(), gin.data(), index_t(n));
        B::gelu_backward(ctx, g4.data(), got.data(), gin.data(), index_t(n));
        B::tanh_forward(ctx, g5.data(), gin.data(), index_t(n));
        B::tanh_backward(ctx, g6.data(), got.data(), gth_in.data(), index_t(n));
        check_close("glu", download_f(ctx, g1.data(), m), glu, 1e-2, 1e-2);
        check_close("glu backward", download_f(ctx, g2.data(), n), dglu, 1e-2, 1e-2);
        check_close("gelu", download_f(ctx, g3.data(), n), ge, 1e-2, 1e-2);
        check_close("gelu backward", download_f(ctx, g4.data(), n), dge, 1e-2, 1e-2);
        check_close("tanh", download_f(ctx, g5.data(), n), th, 1e-2, 1e-2);
        check_close("tanh backward", download_f(ctx, g6.data(), n), dth, 1e-2, 1e-2);
    }
}

}  // namespace
