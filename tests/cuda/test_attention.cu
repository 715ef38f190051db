// cram/cuda/attention.hpp against the CPU oracle (cram/ops/attention.hpp): outputs and the q, k, v
// gradients on both paths (flash and GEMM), the GEMM path's saved probabilities and the flash path's saved
// log-sum-exp rows (against a double-precision sum computed here), for the crammed shape, shapes with key
// lengths (one of them longer than one 64-key block, not a multiple of 16; an empty sequence, one ending exactly at
// a block boundary), a head size only the GEMM path takes, with and without attention-probability dropout, for
// bf16 and fp16 storage. Outputs are compared against a tolerance scaled to their RMS (a fixed 1e-2 would hide a
// few percent). Which path ran is checked, so a silent fallback cannot pass as a flash result. Skips visibly
// without a GPU.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace ops = cram::ops;
namespace cu = cram::cuda;

// log sum_j<len exp(scale q.k_j) per (sequence, head, query) from the fused qkv, in double.
std::vector<float> reference_lse(const std::vector<float>& qkv, const std::int32_t* lengths, index_t batch,
                                 index_t seq, index_t heads, index_t hd) {
    const index_t hidden = heads * hd, row = 3 * hidden;
    const double scale = 1.0 / std::sqrt(double(hd));
    std::vector<float> lse;
    for (index_t b = 0; b < batch; ++b)
        for (index_t h = 0; h < heads; ++h)
            for (index_t q = 0; q < seq; ++q) {
                const index_t len = lengths ? lengths[b] : seq;
                std::vector<double> s;
                for (index_t k = 0; k < len; ++k) {
                    double dot = 0;
                    for (index_t d = 0; d < hd; ++d)
                        dot += double(qkv[std::size_t((b * seq + q) * row + h * hd + d)]) *
                               qkv[std::size_t((b * seq + k) * row + hidden + h * hd + d)];
                    s.push_back(dot * scale);
                }
                double mx = -INFINITY, sum = 0;
                for (double x : s) mx = std::max(mx, x);
                for (double x : s) sum += std::exp(x - mx);
                lse.push_back(float(mx + std::log(sum)));
            }
    return lse;
}

// Per element of dQ and dK (laid out as dqkv; dV's part 0), how far the flash backward's delta = rowsum(dO o O)
// moves them by reading O as stored in T, as FlashAttention does, where the fp32 oracle sums P dP unrounded:
// delta is off by up to u sum_d |dO||O| (u = 2^-8 bf16, 2^-11 fp16), dS = P (dP - delta) scale by P that times
// scale, and dQ, dK by that times |K|, |Q|. Where dS cancels to 0 (a one-key sequence under attention dropout, whose
// O = V / (1 - p) no 16-bit type holds: found emulated) this is the GPU's whole error, not 2 % of the RMS.
template <class T>
std::vector<double> delta_storage_bound(const std::vector<float>& qkv, const std::vector<float>& out,
                                        const std::vector<float>& dout, const std::vector<float>& probs,
                                        const std::int32_t* lengths, index_t batch, index_t seq, index_t heads,
                                        index_t hd) {
    const double u = std::is_same_v<T, fp16> ? 1.0 / 2048 : 1.0 / 256, scale = 1.0 / std::sqrt(double(hd));
    const index_t hidden = heads * hd, row = 3 * hidden;
    std::vector<double> bound(qkv.size(), 0.0);
    for (index_t b = 0; b < batch; ++b)
        for (index_t hh = 0; hh < heads; ++hh) {
            const index_t len = lengths ? std::min<index_t>(lengths[b], seq) : seq;
            for (index_t q = 0; q < seq; ++q) {
                double delta_err = 0;
                for (index_t d = 0; d < hd; ++d) {
                    const auto i = static_cast<std::size_t>((b * seq + q) * hidden + hh * hd + d);
                    delta_err += std::fabs(double(dout[i])) * std::fabs(double(out[i]));
                }
                delta_err *= u;
                for (index_t k = 0; k < len; ++k) {
                    const double ds = scale * delta_err *
                                      probs[static_cast<std::size_t>(((b * heads + hh) * seq + q) * seq + k)];
                    for (index_t d = 0; d < hd; ++d) {
                        const auto qi = static_cast<std::size_t>((b * seq + q) * row + hh * hd + d);
                        const auto ki = static_cast<std::size_t>((b * seq + k) * row + hidden + hh * hd + d);
                        bound[qi] += ds * std::fabs(double(qkv[ki]));  // dQ += dS K
                        bound[ki] += ds * std::fabs(double(qkv[qi]));  // dK += dS^T Q
                    }
                }
            }
        }
    return bound;
}

// check_close_scaled with a per-element bound added to the tolerance (and, loosely, not all zero).
void check_close_scaled_with_bound(const char* what, const std::vector<float>& got, const std::vector<float>& ref,
                                   const std::vector<double>& bound, double atol_fraction_of_rms, double rtol) {
    double ss = 0;
    for (float r : ref) ss += double(r) * r;
    const double atol = ref.empty() ? 0.0 : atol_fraction_of_rms * std::sqrt(ss / double(ref.size()));
    std::size_t outside = 0, worst = 0;
    double worst_excess = -INFINITY;
    for (std::size_t i = 0; i < ref.size(); ++i) {
        const double excess =
            std::fabs(double(got[i]) - ref[i]) - (atol + rtol * std::fabs(double(ref[i])) + bound[i]);
        outside += excess > 0;
        if (excess > worst_excess) worst_excess = excess, worst = i;
    }
    double got_ss = 0;
    for (float g : got) got_ss += double(g) * g;
    INFO(std::string(what) << ": worst element " << worst << " of " << ref.size() << ": got " << got[worst]
                           << " ref " << ref[worst] << " (atol " << atol << ", rtol " << rtol << ", storage bound "
                           << bound[worst] << ")");
    CHECK(outside == 0);
    CHECK(ss > 0);  // a test whose reference is all zero proves nothing
    CHECK(got_ss > 0);
}

// Per element of out, how far the 16-bit probabilities move it where the fp32 oracle does not round them: P is
// stored in T (the GEMM path; the flash path rounds it before P V), and under dropout the GEMM path rounds the
// dropped copy P / (1 - p) again: out is off by up to 2 u sum_k P/(1 - p) |V| (u = 2^-8 bf16, 2^-11 fp16). At seq 200
// under dropout 0.1 the bf16 GEMM path's worst element is 1.4x 1 % of the RMS, inside this (found emulated).
template <class T>
std::vector<double> probs_storage_bound(const std::vector<float>& qkv, const std::vector<float>& probs,
                                        const std::int32_t* lengths, index_t batch, index_t seq, index_t heads,
                                        index_t hd, float dropout) {
    const double u = std::is_same_v<T, fp16> ? 1.0 / 2048 : 1.0 / 256, keep = 1.0 - double(dropout);
    const index_t hidden = heads * hd, row = 3 * hidden;
    std::vector<double> bound(static_cast<std::size_t>(batch * seq * hidden), 0.0);
    for (index_t b = 0; b < batch; ++b)
        for (index_t hh = 0; hh < heads; ++hh) {
            const index_t len = lengths ? std::min<index_t>(lengths[b], seq) : seq;
            for (index_t q = 0; q < seq; ++q)
                for (index_t k = 0; k < len; ++k) {
                    const double w =
                        2 * u * probs[static_cast<std::size_t>(((b * heads + hh) * seq + q) * seq + k)] / keep;
                    for (index_t d = 0; d < hd; ++d)
                        bound[static_cast<std::size_t>((b * seq + q) * hidden + hh * hd + d)] +=
                            w * std::fabs(double(qkv[static_cast<std::size_t>((b * seq + k) * row + 2 * hidden +
                                                                              hh * hd + d)]));
                }
        }
    return bound;
}

TEST_CASE_TEMPLATE("cuda attention forward and backward (flash and GEMM paths; key lengths; dropout)", T, bf16, fp16) {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<T>;
    struct shape {
        index_t batch, seq, heads, hd;
        std::vector<std::int32_t> len;  // one per sequence, or empty: every key valid
    };
    const keep_setting keep_attention(ctx.attention);
    const std::uint64_t seed = 99;
    const std::uint32_t stream = 5;
    const bool tensor_cores = std::is_same_v<T, fp16> || ctx.props().major >= 8;
    // lengths: full, one past a 64-key block plus 3 (not a multiple of 16), a single key; and an empty sequence,
    // one ending exactly at the first block boundary, a full one
#if defined(CRAM_CUDA_EMULATED)
    // emulated: the same lengths and block boundaries with fewer heads (each head is the same kernel path)
    const std::vector<shape> shapes{{2, 128, 2, 64, {}},            {3, 128, 2, 64, {128, 67, 1}},
                                    {3, 37, 2, 64, {37, 21, 1}},    {3, 200, 1, 64, {200, 103, 1}},
                                    {3, 200, 1, 64, {0, 64, 200}},  {3, 37, 3, 16, {37, 21, 1}}};
#else
    const std::vector<shape> shapes{{4, 128, 12, 64, {}},           {3, 128, 4, 64, {128, 67, 1}},
                                    {3, 37, 2, 64, {37, 21, 1}},    {3, 200, 2, 64, {200, 103, 1}},
                                    {3, 200, 2, 64, {0, 64, 200}},  {3, 37, 3, 16, {37, 21, 1}}};
#endif
    for (const float drop : {0.0f, 0.1f})
    for (const auto path : {cu::attention_kernel::gemm, cu::attention_kernel::flash})
    for (const auto& s : shapes) {
        ctx.attention = path;
        const bool flash = cu::attention_route_for<T>(ctx, s.seq, s.heads, s.hd).flash;
        INFO("batch " << s.batch << " seq " << s.seq << " heads " << s.heads << " head_dim " << s.hd << " path "
                      << std::string(flash ? "flash" : "gemm") << " attention dropout " << drop);
        CHECK(flash == (path == cu::attention_kernel::flash && s.hd == 64 && tensor_cores));
        const index_t h = s.heads * s.hd, rows = s.batch * s.seq;
        const auto qkv = random_vec_as<T>(static_cast<std::size_t>(rows * 3 * h), 50, 1.5f),
                   dout = random_vec_as<T>(static_cast<std::size_t>(rows * h), 51);
        const std::vector<std::int32_t>& len = s.len;
        const std::int32_t* lp = len.empty() ? nullptr : len.data();
        const std::size_t n_probs = static_cast<std::size_t>(s.batch * s.heads * s.seq * s.seq);
        std::vector<float> out(static_cast<std::size_t>(rows * h)), probs(n_probs), dqkv(qkv.size());
        ops::attention_forward(out.data(), probs.data(), qkv.data(), lp, s.batch, s.seq, s.heads, s.hd, drop, seed,
                               stream);
        auto gqkv = upload(ctx, to_storage<T>(qkv)), gdout = upload(ctx, to_storage<T>(dout));
        device_buffer<std::int32_t> glen;
        if (lp) glen = upload(ctx, len);
        auto gout = poisoned<T>(ctx, out.size()), gprobs = poisoned<T>(ctx, n_probs),
             gdqkv = poisoned<T>(ctx, dqkv.size());
        B::attention_forward(ctx, gout.data(), gprobs.data(), gqkv.data(), glen.data(), s.batch, s.seq, s.heads,
                             s.hd, drop, seed, stream);
        if (flash) {
            // the saved buffer starts with the fp32 log-sum-exp rows; the backward recomputes P from them
            const auto lse = download(ctx, cu::attention_lse(gprobs.data()),
                                      static_cast<std::size_t>(s.batch * s.heads * s.seq));
            // an empty sequence's rows are -inf on both sides (compared apart: -inf - -inf is NaN)
            const auto ref_lse = reference_lse(qkv, lp, s.batch, s.seq, s.heads, s.hd);
            std::vector<float> got_finite, ref_finite;
            std::size_t infinite_mismatch = 0;
            for (std::size_t i = 0; i < ref_lse.size(); ++i) {
                if (std::isinf(ref_lse[i])) {
                    infinite_mismatch += !(std::isinf(lse[i]) && lse[i] < 0);
                } else {
                    got_finite.push_back(lse[i]);
                    ref_finite.push_back(ref_lse[i]);
                }
            }
            CHECK(infinite_mismatch == 0);
            check_close("attention lse", got_finite, ref_finite, 2e-3, 1e-3);
            ops::attention_backward(dqkv.data(), dout.data(), qkv.data(), probs.data(), lp, s.batch, s.seq, s.heads,
                                    s.hd, drop, seed, stream);
        } else {
            const auto got_probs = download_f(ctx, gprobs.data(), n_probs);
            check_close_scaled("attention probs", got_probs, probs, 1e-2, 1e-2);
            // backward against the CPU fed with the GPU's (16-bit) probabilities, as the GPU itself is
            ops::attention_backward(dqkv.data(), dout.data(), qkv.data(), got_probs.data(), lp, s.batch, s.seq,
                                    s.heads, s.hd, drop, seed, stream);
        }
        B::attention_backward(ctx, gdqkv.data(), gdout.data(), gqkv.data(), gout.data(), gprobs.data(), glen.data(),
                              s.batch, s.seq, s.heads, s.hd, drop, seed, stream);
        check_close_scaled_with_bound(
            "attention out", download_f(ctx, gout.data(), out.size()), out,
            probs_storage_bound<T>(qkv, probs, lp, s.batch, s.seq, s.heads, s.hd, drop), 1e-2, 1e-2);
        // q, k and v parts separately, each against its own scale (dQ and dK are ~100x smaller than dV)
        const auto got_d = download_f(ctx, gdqkv.data(), dqkv.size());
        const char* names[3] = {"attention dq", "attention dk", "attention dv"};
        const std::vector<double> bound =
            flash ? delta_storage_bound<T>(qkv, out, dout, probs, lp, s.batch, s.seq, s.heads, s.hd)
                  : std::vector<double>(qkv.size(), 0.0);
        for (int part = 0; part < 3; ++part) {
            std::vector<float> g, r;
            std::vector<double> b;
            for (index_t row = 0; row < rows; ++row)
                for (index_t c = 0; c < h; ++c) {
                    const auto i = static_cast<std::size_t>(row * 3 * h + part * h + c);
                    g.push_back(got_d[i]);
                    r.push_back(dqkv[i]);
                    b.push_back(bound[i]);
                }
            check_close_scaled_with_bound(names[part], g, r, b, 2e-2, 2e-2);
        }
    }
}

// A key block wholly past a sequence's length (seq 200, length 3: blocks 1-3 hold no valid key) must come
// back with exactly zero dK and dV, and padded query rows still attend over the valid keys; with and without
// attention dropout.
TEST_CASE_TEMPLATE("cuda flash attention: keys past the length get exactly zero gradients", T, bf16, fp16) {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<T>;
    const index_t batch = 1, seq = 200, heads = 2, hd = 64, h = heads * hd;
    if (!cu::attention_route_for<T>(ctx, seq, heads, hd).flash) {
        MESSAGE("SKIPPED: flash attention does not run for this type on this GPU");
        return;
    }
    const auto qkv = random_vec_as<T>(static_cast<std::size_t>(batch * seq * 3 * h), 60),
               dout = random_vec_as<T>(static_cast<std::size_t>(batch * seq * h), 61);
    const std::vector<std::int32_t> len{3};
    auto gqkv = upload(ctx, to_storage<T>(qkv)), gdout = upload(ctx, to_storage<T>(dout));
    auto glen = upload(ctx, len);
    auto gout = poisoned<T>(ctx, static_cast<std::size_t>(batch * seq * h)),
         gprobs = poisoned<T>(ctx, static_cast<std::size_t>(batch * heads * seq * seq)),
         gdqkv = poisoned<T>(ctx, qkv.size());
    for (const float drop : {0.0f, 0.1f}) {
        CAPTURE(drop);
        B::attention_forward(ctx, gout.data(), gprobs.data(), gqkv.data(), glen.data(), batch, seq, heads, hd, drop,
                             7, 3);
        B::attention_backward(ctx, gdqkv.data(), gdout.data(), gqkv.data(), gout.data(), gprobs.data(), glen.data(),
                              batch, seq, heads, hd, drop, 7, 3);
        const auto d = download_f(ctx, gdqkv.data(), qkv.size());
        std::size_t nonzero_past = 0, nonzero_valid = 0;
        for (index_t row = 0; row < seq; ++row)
            for (index_t c = h; c < 3 * h; ++c) {  // the k and v parts
                const float x = d[static_cast<std::size_t>(row * 3 * h + c)];
                if (row >= len[0]) nonzero_past += x != 0.0f;  // NaN counts too
                else nonzero_valid += x != 0.0f;
            }
        CHECK(nonzero_past == 0);
        CHECK(nonzero_valid > 0);
        const auto out = download_f(ctx, gout.data(), static_cast<std::size_t>(seq * h));
        for (float x : out) REQUIRE(std::isfinite(x));
    }
}

}  // namespace
