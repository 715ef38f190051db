// cram/cuda/dropout.hpp against the CPU oracle (cram/ops/dropout.hpp): the same Philox addressing drops
// exactly the same elements, with the same scale, in bf16 and fp16 storage. Skips visibly without a GPU.
#include <cstdint>
#include <vector>

#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace ops = cram::ops;
namespace cu = cram::cuda;

TEST_CASE_TEMPLATE("cuda dropout drops exactly the CPU's elements (same Philox addressing)", T, bf16, fp16) {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<T>;
    for (const index_t n : {index_t(1) << 20, index_t(1001)}) {
        const auto in = random_vec_as<T>(static_cast<std::size_t>(n), 40);
        std::vector<float> ref(static_cast<std::size_t>(n));
        ops::dropout_forward(ref.data(), in.data(), n, 0.1f, 0x5EEDull << 33 | 7u, 5u);
        auto gin = upload(ctx, to_storage<T>(in));
        auto gout = poisoned<T>(ctx, static_cast<std::size_t>(n));
        B::dropout_forward(ctx, gout.data(), gin.data(), n, 0.1f, 0x5EEDull << 33 | 7u, 5u);
        const auto got = download_f(ctx, gout.data(), static_cast<std::size_t>(n));
        std::size_t mismatched = 0, dropped = 0;
        for (index_t i = 0; i < n; ++i) {
            mismatched += (got[static_cast<std::size_t>(i)] == 0.0f) != (ref[static_cast<std::size_t>(i)] == 0.0f) && in[static_cast<std::size_t>(i)] != 0.0f;
            dropped += ref[static_cast<std::size_t>(i)] == 0.0f;
        }
        INFO("n " << n << ": " << mismatched << " mask mismatches, " << dropped << " dropped");
        CHECK(mismatched == 0);
        CHECK(dropped > 0);
        check_close("dropout", got, ref, 1e-2, 1e-2);
    }
}

}  // namespace
