// The CUDA backend's host-side logic, testable without a GPU: error macros and their messages, the
// device probe and the context's refusal without a usable device, the bf16-below-sm_80 refusal, and the
// micro-batch planner's arithmetic (against hand-derived numbers), with the memory table of docs/cuda.md for
// 11 to 80 GB cards. The model types instantiate here as a compile check, on both backends.
#include <cstdint>
#include <cstdio>
#include <string>

#include "cram/cram.hpp"
#include "cuda_test_support.hpp"

// Explicit instantiation compiles every member of the models on the CUDA backend.
template class cram::bert<cram::presets::crammed_bert, cram::cuda::backend>;
template class cram::bert_classifier<cram::presets::crammed_bert, cram::cuda::backend>;
template class cram::bert<cram::presets::test_post_biases, cram::cuda::backend>;
template class cram::bert_classifier<cram::presets::test_post_biases, cram::cuda::backend>;
// fp16: the same model code on the other storage type (every kernel it uses instantiates for cram::fp16)
template class cram::bert<cram::presets::test_post_biases, cram::cuda::fp16_backend>;
template class cram::bert_classifier<cram::presets::test_post_biases, cram::cuda::fp16_backend>;

namespace {

namespace cu = cram::cuda;

TEST_CASE("CRAM_CUDA_CHECK and CRAM_CUBLAS_CHECK throw with the call, the error name and file:line") {
    try {
        CRAM_CUDA_CHECK(cudaErrorInvalidValue);
        FAIL("no throw");
    } catch (const cram::error& e) {
        const std::string m = e.what();
        CHECK(m.find("cudaErrorInvalidValue") != std::string::npos);
        CHECK(e.where().find("test_cuda_host.cu") != std::string::npos);  // the call site, for developers
        CHECK(e.line() > 0);
    }
    try {
        CRAM_CUBLAS_CHECK(CUBLAS_STATUS_NOT_SUPPORTED);
        FAIL("no throw");
    } catch (const cram::error& e) {
        CHECK(std::string(e.what()).find("CUBLAS_STATUS_NOT_SUPPORTED") != std::string::npos);
    }
    CHECK_NOTHROW(CRAM_CUDA_CHECK(cudaSuccess));
}

TEST_CASE("device probe: a usable device, or a reason that says what to do") {
    const auto p = cu::probe_device(0);
    if (p.usable) {
        CHECK(p.major >= 7);  // sm_70 and newer run (fp16); bf16 needs sm_80 (below)
        CHECK(!p.name.empty());
        CHECK(p.total_bytes > 0);
    } else {
        std::printf("no usable CUDA device here: %s\n", p.reason.c_str());
        CHECK(!p.reason.empty());
        CHECK(p.reason.find("--device cpu") != std::string::npos);
        CHECK_THROWS_AS(cu::context(0), cram::error);
    }
    const auto bad = cu::probe_device(1000);
    CHECK_FALSE(bad.usable);
    CHECK(!bad.reason.empty());
}

TEST_CASE("bf16 on a GPU below sm_80 is refused, naming the card and suggesting fp16; fp16 runs from sm_70") {
    cu::device_probe turing;
    turing.usable = true;
    turing.name = "NVIDIA GeForce RTX 2080 Ti";
    turing.major = 7;
    turing.minor = 5;
    const std::string why = cu::activation_type_problem<cram::bf16>(turing);
    CHECK(why.find("RTX 2080 Ti") != std::string::npos);
    CHECK(why.find("sm_75") != std::string::npos);
    CHECK(why.find("fp16") != std::string::npos);
    CHECK(cu::activation_type_problem<cram::fp16>(turing).empty());
    cu::device_probe hopper = turing;
    hopper.name = "NVIDIA H200";
    hopper.major = 9;
    hopper.minor = 0;
    CHECK(cu::activation_type_problem<cram::bf16>(hopper).empty());
    CHECK(cu::activation_type_problem<cram::fp16>(hopper).empty());
    CHECK(cu::sm_name(7, 5) == "sm_75");
}

TEST_CASE("attention route: flash where its kernels can run (head_dim 64, tensor cores, shared memory), else the GEMM path with the reason") {
    using cu::attention_kernel;
    cudaDeviceProp hopper{}, turing{}, small{};
    hopper.major = 9;
    hopper.sharedMemPerBlockOptin = 227 * 1024;
    turing.major = 7;
    turing.minor = 5;
    turing.sharedMemPerBlockOptin = 64 * 1024;  // the RTX 2080 Ti's opt-in limit
    small = hopper;
    small.sharedMemPerBlockOptin = 48 * 1024;
    const auto flash = attention_kernel::flash;
    // crammed_bert's shape (seq 128, 12 heads of 64) and GLUE's longer ones
    CHECK(cu::attention_route_for<cram::bf16>(flash, hopper, 128, 12, 64).flash);
    CHECK(cu::attention_route_for<cram::fp16>(flash, hopper, 128, 12, 64).flash);
    CHECK(cu::attention_route_for<cram::bf16>(flash, hopper, 512, 16, 64).flash);
    CHECK(cu::attention_route_for<cram::fp16>(flash, turing, 128, 12, 64).flash);  // the paper's card, in fp16
    const auto why = [](cu::attention_route r) {
        CHECK_FALSE(r.flash);
        return std::string(r.why);
    };
    CHECK(why(cu::attention_route_for<cram::bf16>(attention_kernel::gemm, hopper, 128, 12, 64)).find("GEMM") !=
          std::string::npos);
    CHECK(why(cu::attention_route_for<cram::bf16>(flash, turing, 128, 12, 64)).find("sm_80") != std::string::npos);
    CHECK(why(cu::attention_route_for<float>(flash, hopper, 128, 12, 64)).find("fp32") != std::string::npos);
    CHECK(why(cu::attention_route_for<cram::bf16>(flash, hopper, 128, 4, 32)).find("head_dim") != std::string::npos);
    CHECK(why(cu::attention_route_for<cram::bf16>(flash, hopper, 1, 12, 64)).find("one-token") != std::string::npos);
    CHECK(why(cu::attention_route_for<cram::bf16>(flash, small, 128, 12, 64)).find("shared memory") !=
          std::string::npos);
    // the tiles fit Turing's 64 KiB per block, and an H200 SM (228 KiB) holds three of the largest
    CHECK(cu::flash::max_smem <= 64 * 1024);
    CHECK(3 * cu::flash::max_smem <= 228 * 1024);
}

TEST_CASE("micro-batch planner: hand-derived sizes, multiples of the granularity, clear failure") {
    // 80 GiB free, 1 GiB fixed, 50 MiB per sequence: floor((0.92*80 GiB - 1 GiB) / 50 MiB) = 1486 -> 1480
    const std::size_t gib = std::size_t(1) << 30, mib = std::size_t(1) << 20;
    const auto p = cram::pick_micro_batch(80 * gib, 80 * gib, 50 * mib, gib, 8, 4096);
    CHECK(p.micro_batch == 1480);
    CHECK(cram::pick_micro_batch(80 * gib, 80 * gib, 50 * mib, gib, 8, 512).micro_batch == 512);
    CHECK(cram::pick_micro_batch(2 * gib, 2 * gib, 100 * mib, gib, 8).micro_batch == 8);  // (1.84-1) GiB / 100 MiB = 8.6
    CHECK(cram::pick_micro_batch(2 * gib, 2 * gib, 300 * mib, gib, 8).micro_batch == 2);  // fewer than 8 fit: all that fit
    CHECK(cram::pick_micro_batch(80 * gib, 80 * gib, 50 * mib, gib, 8, 4096, 0.92, true).micro_batch == 1024);
    CHECK(cram::pick_micro_batch(2 * gib, 2 * gib, 300 * mib, gib, 8, 4096, 0.92, true).micro_batch == 2);
    try {
        cram::pick_micro_batch(gib, gib, 10 * mib, gib, 8);
        FAIL("no throw");
    } catch (const cram::error& e) {
        CHECK(std::string(e.what()).find("too little GPU memory") != std::string::npos);
    }
}

TEST_CASE("bytes per sequence follow bert.hpp's buffers (hand count for crammed_bert)") {
    constexpr auto C = cram::presets::crammed_bert;
    using gpu = cram::cuda::backend;
    // per token: emb 2h + 2f; forward branch scratch 2h; 16 layers x ((8h + I + inner) * 2 + heads*T*2 + 16);
    // final 2h + 8; head 2h; backward (d_*) (9h + inner + I) * 2; attention scratch 14h + heads*T*8 (fp32 dP,
    // bf16 dS and the bf16 dropped probabilities of attention dropout); staged ints 20
    const std::size_t h = 768, I = 3072, inner = 1536, heads = 12, T = 128;
    const std::size_t per_token = (2 * h + 2 * h + 8) + 2 * h + 16 * ((8 * h + I + inner) * 2 + heads * T * 2 + 16) +
                                  (2 * h + 8) + 2 * h + (9 * h + inner + I) * 2 + 14 * h + heads * T * 8 + 20;
    CHECK(cram::bytes_per_sequence<C, gpu>(128) == per_token * T);
    CHECK(cram::bert<C, gpu>::activation_bytes(3, 128) == 3 * cram::bert<C, gpu>::activation_bytes(1, 128));
    CHECK(cram::bytes_per_sequence<C, gpu>(64) < cram::bytes_per_sequence<C, gpu>(128) / 2 + 1);
    // about 50 MB per 128-token sequence: a 80 GB H100 holds micro-batches of well over 1000
    CHECK(cram::bytes_per_sequence<C, gpu>(128) > 40'000'000);
    CHECK(cram::bytes_per_sequence<C, gpu>(128) < 60'000'000);
    CHECK(cram::fixed_bytes<C, gpu>() > cram::bert_layout<C>().buffer_size() * 18);
}

TEST_CASE("per-sequence op scratch: attention backward's or the fused decoder's logits, whichever is larger") {
    using gpu = cram::cuda::backend;
    // crammed: 32 masked rows of 32768 bf16 logits (2 MiB) are less than attention backward's 128 tokens x
    // (7 x 768 x 2 + 12 x 128 x 8) bytes (2.95 MB)
    CHECK(cram::decoder_rows_per_sequence<cram::presets::crammed_bert>(128) == 32);
    CHECK(gpu::scratch_bytes_per_sequence(128, 768, 12, 32768, 32) == 128 * (7 * 768 * 2 + 12 * 128 * 8));
    // the original BERT's dense head: all 128 rows of 30522 logits (7.8 MB) are more
    constexpr auto D = cram::presets::bert_base;
    static_assert(!D.sparse_prediction);
    CHECK(cram::decoder_rows_per_sequence<D>(128) == 128);
    CHECK(gpu::scratch_bytes_per_sequence(128, 768, 12, 30522, 128) == std::size_t(128) * 30522 * 2);
    CHECK(cram::bytes_per_sequence<D, gpu>(128) ==
          cram::bert<D, gpu>::activation_bytes(1, 128) + std::size_t(128) * 30522 * 2 + 20 * 128);
    // the planner's mask fraction covers every recipe's
    for (const auto* r : cram::train::recipes::all) CHECK(r->mask_fraction <= cram::planned_mask_fraction);
}

// cuBLASLt's documented semantics, on the host: D(i,j) = alpha sum_p op(A)(i,p) op(B)(p,j) + beta C(i,j), column-major
// X(i,j) = x[i + j*ld], op T reads X(j,i), batch b offsets each operand by b * stride.
void lt_reference(const cram::cuda::detail::gemm_key& key, float alpha, const float* a, const float* b, float beta,
                  float* c) {
    for (int bt = 0; bt < key.batch; ++bt) {
        const float* ab = a + bt * key.stride_a;
        const float* bb = b + bt * key.stride_b;
        float* cb = c + bt * key.stride_c;
        for (std::int64_t j = 0; j < key.n; ++j)
            for (std::int64_t i = 0; i < key.m; ++i) {
                double acc = 0;
                for (std::int64_t p = 0; p < key.k; ++p) {
                    const float av = key.op_a ? ab[p + i * key.lda] : ab[i + p * key.lda];
                    const float bv = key.op_b ? bb[j + p * key.ldb] : bb[p + j * key.ldb];
                    acc += double(av) * bv;
                }
                float& cij = cb[i + j * key.ldc];
                cij = float(alpha * acc + (beta == 0.0f ? 0.0 : double(beta) * cij));
            }
    }
}

TEST_CASE("the row-major -> cuBLASLt column-major mapping computes the CPU oracle's gemm (host emulation)") {
    // Exercises exactly what cram::cuda::gemm hands cuBLASLt (operand swap, ops, leading dimensions, batch
    // strides, stored layout shapes) against ops::gemm, with padded leading dimensions and batches.
    cram::philox_stream rng(77, 0, 0);
    for (int trial = 0; trial < 48; ++trial) {
        const bool ta = trial & 1, tb = trial & 2;
        const int batch = 1 + int(rng.next_below(3));
        const cram::index_t m = 1 + rng.next_below(9), n = 1 + rng.next_below(9), k = 1 + rng.next_below(9);
        const cram::index_t lda = (ta ? m : k) + rng.next_below(3), ldb = (tb ? k : n) + rng.next_below(3),
                            ldc = n + rng.next_below(3);
        const cram::index_t sa = (ta ? k : m) * lda + rng.next_below(4), sb = (tb ? n : k) * ldb + rng.next_below(4),
                            sc = m * ldc + rng.next_below(4);
        std::vector<float> a(static_cast<std::size_t>(sa * batch)), b(static_cast<std::size_t>(sb * batch)),
            c(static_cast<std::size_t>(sc * batch));
        for (auto& x : a) x = rng.next_uniform() - 0.5f;
        for (auto& x : b) x = rng.next_uniform() - 0.5f;
        for (auto& x : c) x = rng.next_uniform() - 0.5f;
        const float alpha = 0.75f, beta = trial % 3 == 0 ? 0.0f : 1.0f;
        std::vector<float> ref = c, got = c;
        for (int bt = 0; bt < batch; ++bt)
            cram::ops::gemm<float>(ta, tb, m, n, k, alpha, a.data() + bt * sa, lda, b.data() + bt * sb, ldb, beta,
                                   ref.data() + bt * sc, ldc);
        const auto key = cram::cuda::detail::column_major_problem(ta, tb, m, n, k, lda, sa, ldb, sb, ldc, sc, batch);
        const auto sh = cram::cuda::detail::stored_shapes_of(key);
        INFO("trial " << trial << " ta " << ta << " tb " << tb << " m n k " << m << " " << n << " " << k);
        CHECK(key.lda >= sh.a_rows);  // cuBLASLt rejects a layout whose ld is below its row count
        CHECK(key.ldb >= sh.b_rows);
        CHECK(key.ldc >= key.m);
        lt_reference(key, alpha, b.data(), a.data(), beta, got.data());  // cuBLASLt's A is our B
        for (std::size_t i = 0; i < ref.size(); ++i) REQUIRE(std::abs(got[i] - ref[i]) <= 1e-5f);
    }
}

// The table in docs/cuda.md ("Memory and the micro-batch"): crammed_bert at 128 tokens on cards of 11 to 80 GiB,
// computed by the project's memory model (model/memory_plan.hpp) exactly as the app plans (`cram_bert_24h plan
// --gpu ...`: free = the card's memory; the app asks for a power of two). Printed, and pinned to the numbers the
// document shows, so the two cannot drift apart. bf16 and fp16 activations take the same bytes.
TEST_CASE("memory table of docs/cuda.md: crammed_bert, seq 128, on 11/16/24/48/80 GiB cards") {
    constexpr auto C = cram::presets::crammed_bert;
    using bf16_gpu = cram::cuda::backend;
    using fp16_gpu = cram::cuda::fp16_backend;
    const std::size_t per_sequence = cram::bytes_per_sequence<C, bf16_gpu>(128), fixed = cram::fixed_bytes<C, bf16_gpu>();
    CHECK(cram::bytes_per_sequence<C, fp16_gpu>(128) == per_sequence);
    CHECK(cram::fixed_bytes<C, fp16_gpu>() == fixed);
    const std::size_t mib = std::size_t(1) << 20;
    std::printf("crammed_bert, seq 128: %.1f MiB per sequence, %.0f MiB fixed (training state %.0f MiB)\n",
                double(per_sequence) / double(mib), double(fixed) / double(mib),
                double(cram::bert_layout<C>().buffer_size() * (4 * sizeof(float) + 2)) / double(mib));
    std::printf("| card | usable (92%%) | sequences that fit | micro-batch picked (power of two) | memory it takes | "
                "free memory it needs |\n");
    struct row { int gib, fits, micro_batch; };
    const row expected[] = {{11, 134, 128}, {16, 220, 128}, {24, 358, 256}, {48, 772, 512}, {80, 1324, 1024}};
    for (const row& r : expected) {
        const std::size_t total = std::size_t(r.gib) << 30;
        const auto any = cram::pick_micro_batch(total, total, per_sequence, fixed, 1, 1 << 20, 0.92, false);
        const auto pow2 = cram::pick_micro_batch<C, bf16_gpu>(total, total, 128, 8, 4096, true);
        const double used = double(fixed) + double(per_sequence) * pow2.micro_batch, gib = double(std::size_t(1) << 30);
        std::printf("| %d GiB | %.2f GiB | %d | %d | %.2f GiB | %.2f GiB |\n", r.gib, 0.92 * r.gib, any.micro_batch,
                    pow2.micro_batch, used / gib, used / 0.92 / gib);
        CAPTURE(r.gib);
        CHECK(any.micro_batch == r.fits);
        CHECK(pow2.micro_batch == r.micro_batch);
        CHECK(pow2.micro_batch == cram::pick_micro_batch<C, fp16_gpu>(total, total, 128, 8, 4096, true).micro_batch);
        CHECK(used <= 0.92 * double(total));
    }
}

TEST_CASE("the chunked decoder never holds more than its 192 MiB of logits") {
    CHECK(cu::decoder_chunk_rows(8192, 32768) == 1024);
    CHECK(cu::decoder_chunk_rows(100, 32768) == 100);
    CHECK(cu::decoder_chunk_rows(1 << 20, 1001) % 8 == 0);
}

}  // namespace
