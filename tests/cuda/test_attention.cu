// cram/cuda/attention.hpp against the CPU oracle (cram/ops/attention.hpp): probabilities, outputs and the
// q, k, v gradients, crammed shape and odd shapes with key lengths, GEMM and fused paths, with and without
// attention-probability dropout (which takes the GEMM path even when the fused one is enabled), for bf16 and
// fp16 storage (fp16 always takes the GEMM path: the fused kernels are bf16 WMMA, and asking for them must not
// change that). Skips visibly without a GPU.
#include <cstdint>
#include <vector>

#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace ops = cram::ops;
namespace cu = cram::cuda;

TEST_CASE_TEMPLATE("cuda attention forward and backward (crammed shape; odd shapes with key lengths; GEMM and fused paths)",
                   T, bf16, fp16) {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<T>;
    struct shape { index_t batch, seq, heads, hd; bool lengths; };
    struct restore_flag {
        cu::context& c;
        ~restore_flag() { c.fused_attention = false; }
    } restore{ctx};
    const std::uint64_t seed = 99;
    const std::uint32_t stream = 5;
    for (const float drop : {0.0f, 0.1f})
    for (const bool fused : {false, true})
    for (const auto s : {shape{4, 128, 12, 64, false}, shape{3, 37, 3, 16, true}, shape{3, 37, 2, 64, true}}) {
        ctx.fused_attention = fused;
        INFO("batch " << s.batch << " seq " << s.seq << " heads " << s.heads << " head_dim " << s.hd << " fused "
                      << fused << " attention dropout " << drop);
        const index_t h = s.heads * s.hd, rows = s.batch * s.seq;
        const auto qkv = random_vec_as<T>(static_cast<std::size_t>(rows * 3 * h), 50, 1.5f),
                   dout = random_vec_as<T>(static_cast<std::size_t>(rows * h), 51);
        std::vector<std::int32_t> len;
        if (s.lengths) len = {37, 20, 1};
        const std::int32_t* lp = s.lengths ? len.data() : nullptr;
        std::vector<float> out(static_cast<std::size_t>(rows * h)), probs(static_cast<std::size_t>(s.batch * s.heads * s.seq * s.seq)),
            dqkv(qkv.size());
        ops::attention_forward(out.data(), probs.data(), qkv.data(), lp, s.batch, s.seq, s.heads, s.hd, drop, seed,
                               stream);
        auto gqkv = upload(ctx, to_storage<T>(qkv)), gdout = upload(ctx, to_storage<T>(dout));
        device_buffer<std::int32_t> glen;
        if (s.lengths) glen = upload(ctx, len);
        auto gout = poisoned<T>(ctx, out.size()), gprobs = poisoned<T>(ctx, probs.size()),
             gdqkv = poisoned<T>(ctx, dqkv.size());
        B::attention_forward(ctx, gout.data(), gprobs.data(), gqkv.data(), glen.data(), s.batch, s.seq,
                                       s.heads, s.hd, drop, seed, stream);
        const auto got_probs = download_f(ctx, gprobs.data(), probs.size());
        // backward against the CPU fed with the GPU's (16-bit) probabilities, as the GPU itself is
        ops::attention_backward(dqkv.data(), dout.data(), qkv.data(), got_probs.data(), lp, s.batch, s.seq, s.heads,
                                s.hd, drop, seed, stream);
        B::attention_backward(ctx, gdqkv.data(), gdout.data(), gqkv.data(), gprobs.data(), glen.data(),
                                        s.batch, s.seq, s.heads, s.hd, drop, seed, stream);
        check_close("attention probs", got_probs, probs, 2e-3, 1e-2);
        check_close("attention out", download_f(ctx, gout.data(), out.size()), out, 1e-2, 1e-2);
        // q, k and v parts separately, each against its own scale (dQ and dK are ~100x smaller than dV)
        const auto got_d = download_f(ctx, gdqkv.data(), dqkv.size());
        const char* names[3] = {"attention dq", "attention dk", "attention dv"};
        for (int part = 0; part < 3; ++part) {
            std::vector<float> g, r;
            for (index_t row = 0; row < rows; ++row)
                for (index_t c = 0; c < h; ++c) {
                    const auto i = static_cast<std::size_t>(row * 3 * h + part * h + c);
                    g.push_back(got_d[i]);
                    r.push_back(dqkv[i]);
                }
            check_close_scaled(names[part], g, r, 2e-2, 2e-2);
        }
    }
}

}  // namespace
