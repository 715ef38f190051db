// Per-kernel times of the CUDA backend at crammed-BERT sizes (micro-batch 128 x 128 tokens unless a
// benchmark says otherwise), timed with CUDA events around each launch. Reports bytes or FLOP rates so
// memory-bound and compute-bound kernels can each be compared with the H100's peaks. Skips without a GPU.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "cram/cram.hpp"

namespace {

using cram::bf16;
using cram::index_t;
using cram::cuda::device_buffer;
namespace cu = cram::cuda;

constexpr index_t hidden = 768, heads = 12, head_dim = 64, seq = 128, inter = 3072, vocab = 32768;

cu::context* shared_context() {
    static const cu::device_probe probe = cu::probe_device(0);
    if (!probe.usable) return nullptr;
    static auto ctx = std::make_unique<cu::context>(0);
    return ctx.get();
}

template <class T>
device_buffer<T> filled(cu::context& ctx, std::size_t n, float scale = 0.5f) {
    std::vector<T> h(n);
    cram::philox_stream rng(n, 1, 2);
    for (auto& x : h) x = T((2.0f * rng.next_uniform() - 1.0f) * scale);
    device_buffer<T> d(n);
    cu::backend::to_device(ctx, d.data(), h.data(), index_t(n));
    return d;
}

// Runs f once to warm up (plans, scratch), then times each iteration with events.
template <class F>
void timed(benchmark::State& state, cu::context& ctx, F&& f) {
    f();
    CRAM_CUDA_CHECK(cudaStreamSynchronize(ctx.stream()));
    cudaEvent_t a, b;
    CRAM_CUDA_CHECK(cudaEventCreate(&a));
    CRAM_CUDA_CHECK(cudaEventCreate(&b));
    for (auto _ : state) {
        CRAM_CUDA_CHECK(cudaEventRecord(a, ctx.stream()));
        f();
        CRAM_CUDA_CHECK(cudaEventRecord(b, ctx.stream()));
        CRAM_CUDA_CHECK(cudaEventSynchronize(b));
        float ms = 0;
        CRAM_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        state.SetIterationTime(ms / 1e3);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
}

#define CRAM_BENCH_CONTEXT()                                   \
    cu::context* ctxp = shared_context();                      \
    if (!ctxp) {                                               \
        state.SkipWithError("SKIPPED: no usable CUDA device"); \
        return;                                                \
    }                                                          \
    cu::context& ctx = *ctxp

void set_flops(benchmark::State& state, double flops) {
    state.counters["TFLOP/s"] = benchmark::Counter(flops * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
}
void set_bytes(benchmark::State& state, double bytes) {
    state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// linear forward and backward for the block's three matmul shapes: args (out_features, in_features)
void BM_linear_forward(benchmark::State& state) {
    CRAM_BENCH_CONTEXT();
    const index_t rows = state.range(2) * seq, out_f = state.range(0), in_f = state.range(1);
    auto x = filled<bf16>(ctx, static_cast<std::size_t>(rows * in_f)), w = filled<bf16>(ctx, static_cast<std::size_t>(out_f * in_f), 0.02f);
    device_buffer<bf16> y(static_cast<std::size_t>(rows * out_f));
    timed(state, ctx, [&] { cu::linear_forward(ctx, y.data(), x.data(), w.data(), nullptr, rows, in_f, out_f); });
    set_flops(state, 2.0 * rows * in_f * out_f);
}
void BM_linear_backward(benchmark::State& state) {
    CRAM_BENCH_CONTEXT();
    const index_t rows = state.range(2) * seq, out_f = state.range(0), in_f = state.range(1);
    auto x = filled<bf16>(ctx, static_cast<std::size_t>(rows * in_f)), w = filled<bf16>(ctx, static_cast<std::size_t>(out_f * in_f), 0.02f);
    auto dy = filled<bf16>(ctx, static_cast<std::size_t>(rows * out_f));
    device_buffer<bf16> dx(static_cast<std::size_t>(rows * in_f));
    auto dw = filled<float>(ctx, static_cast<std::size_t>(out_f * in_f), 0.0f);
    timed(state, ctx, [&] {
        cu::linear_backward(ctx, dx.data(), dw.data(), nullptr, dy.data(), x.data(), w.data(), rows, in_f, out_f);
    });
    set_flops(state, 4.0 * rows * in_f * out_f);
}
#define CRAM_LINEAR_ARGS ->Args({3 * hidden, hidden, 128})->Args({hidden, hidden, 128})->Args({inter, hidden, 128})->Args({hidden, inter / 2, 128})->UseManualTime()->Unit(benchmark::kMicrosecond)
BENCHMARK(BM_linear_forward) CRAM_LINEAR_ARGS;
BENCHMARK(BM_linear_backward) CRAM_LINEAR_ARGS;

// Second argument: 0 = the block-per-row kernels (the predecessor), 1 = the warp-per-row ones (the default),
// side by side. Bytes: what each must move at least (16-bit rows read and written; the row statistics and the
// parameter vectors are small beside them).
void use_layernorm_kernels(cu::context& ctx, const benchmark::State& state) {
    ctx.layernorm = state.range(1) != 0 ? cu::layernorm_kernel::warp : cu::layernorm_kernel::block;
}
void BM_layernorm_forward(benchmark::State& state) {
    CRAM_BENCH_CONTEXT();
    use_layernorm_kernels(ctx, state);
    const index_t rows = state.range(0) * seq;
    auto x = filled<bf16>(ctx, static_cast<std::size_t>(rows * hidden)), w = filled<bf16>(ctx, hidden), b = filled<bf16>(ctx, hidden);
    device_buffer<bf16> y(static_cast<std::size_t>(rows * hidden));
    device_buffer<float> mean(static_cast<std::size_t>(rows)), rstd(static_cast<std::size_t>(rows));
    timed(state, ctx, [&] {
        cu::layernorm_forward(ctx, y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), rows, hidden, 1e-12f);
    });
    set_bytes(state, 2.0 * 2 * rows * hidden);
    ctx.layernorm = cu::layernorm_kernel::warp;
}
// The residual add and the norm after it: fused (add_layernorm_forward) against add then norm, on each path.
// Third argument: 0 = add, then layernorm_forward; 1 = add_layernorm_forward.
void BM_add_layernorm_forward(benchmark::State& state) {
    CRAM_BENCH_CONTEXT();
    use_layernorm_kernels(ctx, state);
    const bool fused = state.range(2) != 0;
    const index_t rows = state.range(0) * seq;
    const auto n = static_cast<std::size_t>(rows * hidden);
    auto a = filled<bf16>(ctx, n), r = filled<bf16>(ctx, n), w = filled<bf16>(ctx, hidden), b = filled<bf16>(ctx, hidden);
    device_buffer<bf16> sum(n), y(n);
    device_buffer<float> mean(static_cast<std::size_t>(rows)), rstd(static_cast<std::size_t>(rows));
    timed(state, ctx, [&] {
        if (fused) {
            cu::add_layernorm_forward(ctx, sum.data(), y.data(), mean.data(), rstd.data(), a.data(), r.data(), w.data(),
                                      b.data(), rows, hidden, 1e-12f);
        } else {
            cu::add(ctx, sum.data(), a.data(), r.data(), index_t(n));
            cu::layernorm_forward(ctx, y.data(), mean.data(), rstd.data(), sum.data(), w.data(), b.data(), rows, hidden,
                                  1e-12f);
        }
    });
    set_bytes(state, 2.0 * 4 * rows * hidden);  // the fused minimum: read a and r, write sum and y
    ctx.layernorm = cu::layernorm_kernel::warp;
}
void BM_layernorm_backward(benchmark::State& state) {
    CRAM_BENCH_CONTEXT();
    use_layernorm_kernels(ctx, state);
    const index_t rows = state.range(0) * seq;
    auto x = filled<bf16>(ctx, static_cast<std::size_t>(rows * hidden)), w = filled<bf16>(ctx, hidden);
    auto dy = filled<bf16>(ctx, static_cast<std::size_t>(rows * hidden)), dx = filled<bf16>(ctx, static_cast<std::size_t>(rows * hidden));
    auto mean = filled<float>(ctx, static_cast<std::size_t>(rows), 0.1f), rstd = filled<float>(ctx, static_cast<std::size_t>(rows), 1.0f);
    auto dw = filled<float>(ctx, hidden, 0.0f), db = filled<float>(ctx, hidden, 0.0f);
    timed(state, ctx, [&] {
        cu::layernorm_backward(ctx, dx.data(), dw.data(), db.data(), dy.data(), x.data(), mean.data(), rstd.data(),
                               w.data(), rows, hidden);
    });
    set_bytes(state, 2.0 * 4 * rows * hidden);
    ctx.layernorm = cu::layernorm_kernel::warp;
}
BENCHMARK(BM_layernorm_forward)->Args({128, 0})->Args({128, 1})->Args({512, 0})->Args({512, 1})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_add_layernorm_forward)->Args({512, 0, 0})->Args({512, 1, 0})->Args({512, 1, 1})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_layernorm_backward)->Args({128, 0})->Args({128, 1})->Args({512, 0})->Args({512, 1})->UseManualTime()->Unit(benchmark::kMicrosecond);

// One norm of the residual stream, forward and backward (what each of crammed BERT's 33 norms costs a micro-step),
// on the warp kernels. Second argument: 0 = the bf16 stream (the default), 1 = the fp32 stream (--residual fp32:
// fp32 input and input gradient, and the backward's bf16 copy of it that the next branch reads).
template <class R>
void stream_norm(benchmark::State& state, cu::context& ctx) {
    const index_t rows = state.range(0) * seq;
    const auto n = static_cast<std::size_t>(rows * hidden);
    auto x = filled<R>(ctx, n), dx = filled<R>(ctx, n);
    auto w = filled<bf16>(ctx, hidden), b = filled<bf16>(ctx, hidden), dy = filled<bf16>(ctx, n);
    device_buffer<bf16> y(n), narrow(n);
    device_buffer<float> mean(static_cast<std::size_t>(rows)), rstd(static_cast<std::size_t>(rows));
    auto dw = filled<float>(ctx, hidden, 0.0f), db = filled<float>(ctx, hidden, 0.0f);
    constexpr bool wide = !std::is_same_v<R, bf16>;
    timed(state, ctx, [&] {
        cu::layernorm_forward(ctx, y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), rows, hidden,
                              1e-12f);
        cu::layernorm_backward(ctx, dx.data(), dw.data(), db.data(), dy.data(), x.data(), mean.data(), rstd.data(),
                               w.data(), rows, hidden, wide ? narrow.data() : nullptr);
    });
    // forward: read x, write y; backward: read x, dy, read and write dx (+ write the 16-bit copy)
    set_bytes(state, double(n) * (4.0 * sizeof(R) + 2.0 * 2 + (wide ? 2.0 : 0.0)));
}
void BM_stream_layernorm(benchmark::State& state) {
    CRAM_BENCH_CONTEXT();
    ctx.layernorm = cu::layernorm_kernel::warp;
    if (state.range(1) != 0)
        stream_norm<float>(state, ctx);
    else
        stream_norm<bf16>(state, ctx);
}
BENCHMARK(BM_stream_layernorm)->Args({512, 0})->Args({512, 1})->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_glu_forward_backward(benchmark::State& state) {
    CRAM_BENCH_CONTEXT();
    const index_t rows = state.range(0) * seq, inner = inter / 2;
    auto in = filled<bf16>(ctx, static_cast<std::size_t>(rows * inter)), dout = filled<bf16>(ctx, static_cast<std::size_t>(rows * inner));
    device_buffer<bf16> out(static_cast<std::size_t>(rows * inner)), din(static_cast<std::size_t>(rows * inter));
    timed(state, ctx, [&] {
        cu::glu_forward(ctx, out.data(), in.data(), rows, inner);
        cu::glu_backward(ctx, din.data(), dout.data(), in.data(), rows, inner);
    });
    set_bytes(state, 2.0 * (3 * rows * inner + 5 * rows * inner));
}
BENCHMARK(BM_glu_forward_backward)->Arg(128)->UseManualTime()->Unit(benchmark::kMicrosecond);

// Second argument: 0 = the GEMM path (the reference, split heads + batched GEMMs + softmax kernels), 1 = the flash
// kernels (cram/cuda/flash_attention.hpp), side by side on the same shapes.
cu::attention_kernel attention_path(const benchmark::State& state) {
    return state.range(1) != 0 ? cu::attention_kernel::flash : cu::attention_kernel::gemm;
}
void BM_attention_forward(benchmark::State& state) {
    CRAM_BENCH_CONTEXT();
    const index_t batch = state.range(0), rows = batch * seq;
    auto qkv = filled<bf16>(ctx, static_cast<std::size_t>(rows * 3 * hidden));
    device_buffer<bf16> out(static_cast<std::size_t>(rows * hidden)), probs(static_cast<std::size_t>(batch * heads * seq * seq));
    ctx.attention = attention_path(state);
    timed(state, ctx, [&] {
        cu::attention_forward(ctx, out.data(), probs.data(), qkv.data(), nullptr, batch, seq, heads, head_dim);
    });
    ctx.attention = cu::attention_kernel::flash;
    set_flops(state, 4.0 * batch * heads * seq * seq * head_dim);
}
void BM_attention_backward(benchmark::State& state) {
    CRAM_BENCH_CONTEXT();
    const index_t batch = state.range(0), rows = batch * seq;
    auto qkv = filled<bf16>(ctx, static_cast<std::size_t>(rows * 3 * hidden)), dout = filled<bf16>(ctx, static_cast<std::size_t>(rows * hidden));
    device_buffer<bf16> dqkv(static_cast<std::size_t>(rows * 3 * hidden)), out(static_cast<std::size_t>(rows * hidden)),
        probs(static_cast<std::size_t>(batch * heads * seq * seq));
    ctx.attention = attention_path(state);  // the backward reads what the same path's forward saved
    cu::attention_forward(ctx, out.data(), probs.data(), qkv.data(), nullptr, batch, seq, heads, head_dim);
    timed(state, ctx, [&] {
        cu::attention_backward(ctx, dqkv.data(), dout.data(), qkv.data(), out.data(), probs.data(), nullptr, batch, seq,
                               heads, head_dim);
    });
    ctx.attention = cu::attention_kernel::flash;
    // the flash backward recomputes QK^T: 10 products' worth of work, counted as the 8 the GEMM path does
    set_flops(state, 8.0 * batch * heads * seq * seq * head_dim);
}
BENCHMARK(BM_attention_forward)->Args({128, 0})->Args({128, 1})->Args({512, 0})->Args({512, 1})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_attention_backward)->Args({128, 0})->Args({128, 1})->Args({512, 0})->Args({512, 1})->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_decoder_cross_entropy(benchmark::State& state) {
    CRAM_BENCH_CONTEXT();
    // range(1): 0 the chunked decoder (the predecessor), 1 the fused one
    ctx.decoder = state.range(1) != 0 ? cu::decoder_kernel::fused : cu::decoder_kernel::chunked;
    const index_t n = state.range(0) * 32;  // 25% of 128 tokens per sequence
    auto hid = filled<bf16>(ctx, static_cast<std::size_t>(n * hidden)), w = filled<bf16>(ctx, static_cast<std::size_t>(vocab * hidden), 0.02f);
    std::vector<std::int32_t> t(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) t[static_cast<std::size_t>(i)] = std::int32_t((i * 7919) % vocab);
    device_buffer<std::int32_t> targets(t.size());
    cu::backend::to_device(ctx, targets.data(), t.data(), index_t(t.size()));
    device_buffer<bf16> dh(static_cast<std::size_t>(n * hidden));
    auto dw = filled<float>(ctx, static_cast<std::size_t>(vocab * hidden), 0.0f), loss = filled<float>(ctx, 1, 0.0f);
    timed(state, ctx, [&] {
        cu::decoder_cross_entropy(ctx, loss.data(), dh.data(), dw.data(), nullptr, hid.data(), w.data(), nullptr,
                                  targets.data(), n, hidden, vocab, 1.0f / float(n));
    });
    ctx.decoder = cu::decoder_kernel::fused;
    set_flops(state, 6.0 * n * hidden * vocab);
}
BENCHMARK(BM_decoder_cross_entropy)->Args({128, 0})->Args({128, 1})->Args({512, 0})->Args({512, 1})->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_embedding_forward_backward(benchmark::State& state) {
    CRAM_BENCH_CONTEXT();
    const index_t batch = state.range(0), rows = batch * seq;
    std::vector<std::int32_t> ids(static_cast<std::size_t>(rows));
    for (index_t i = 0; i < rows; ++i) ids[static_cast<std::size_t>(i)] = std::int32_t((i * 104729) % vocab);
    device_buffer<std::int32_t> gids(ids.size());
    cu::backend::to_device(ctx, gids.data(), ids.data(), rows);
    auto word = filled<bf16>(ctx, static_cast<std::size_t>(vocab * hidden)), pos = filled<bf16>(ctx, static_cast<std::size_t>(seq * hidden));
    auto scale = filled<bf16>(ctx, 1), dout = filled<bf16>(ctx, static_cast<std::size_t>(rows * hidden));
    auto dword = filled<float>(ctx, static_cast<std::size_t>(vocab * hidden), 0.0f), dscale = filled<float>(ctx, 1, 0.0f);
    device_buffer<bf16> out(static_cast<std::size_t>(rows * hidden));
    timed(state, ctx, [&] {
        cu::embedding_forward(ctx, out.data(), gids.data(), nullptr, word.data(), pos.data(), scale.data(), nullptr,
                              batch, seq, hidden, vocab, index_t(0));
        cu::embedding_backward(ctx, dword.data(), nullptr, dscale.data(), nullptr, dout.data(), gids.data(), nullptr,
                               pos.data(), scale.data(), batch, seq, hidden, vocab);
    });
    set_bytes(state, 2.0 * 4 * rows * hidden);
}
BENCHMARK(BM_embedding_forward_backward)->Arg(128)->UseManualTime()->Unit(benchmark::kMicrosecond);

void BM_adamw_and_norm(benchmark::State& state) {
    CRAM_BENCH_CONTEXT();
    const index_t n = index_t(cram::bert_layout<cram::presets::crammed_bert>().buffer_size());
    auto p = filled<float>(ctx, static_cast<std::size_t>(n), 0.02f), g = filled<float>(ctx, static_cast<std::size_t>(n), 0.001f);
    auto m = filled<float>(ctx, static_cast<std::size_t>(n), 0.0f), v = filled<float>(ctx, static_cast<std::size_t>(n), 0.0f);
    device_buffer<bf16> w(static_cast<std::size_t>(n));
    device_buffer<double> acc(1);
    timed(state, ctx, [&] {
        cu::sum_squares_async(ctx, acc.data(), g.data(), n);
        cu::adamw_step(ctx, p.data(), g.data(), m.data(), v.data(), n, cram::ops::adamw_hparams{}, 1.0f);
        cu::convert(ctx, w.data(), p.data(), n);
    });
    set_bytes(state, double(n) * (4 + 4 * 7 + 2));
}
BENCHMARK(BM_adamw_and_norm)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();

// The measured ceiling for the MFU of benchmarks/run_gpu.sh: one square bf16 GEMM through the backend's cuBLASLt
// path (out = in * w^T, fp32 accumulation, no bias), 8192^3 on random operands (128 MiB each, past the L2), so
// the training step's tokens/s can be set against what cuBLASLt itself reaches on this GPU as well as against the
// datasheet peak. Appended after BENCHMARK_MAIN: registration is static, main() is above.
namespace {
void BM_gemm_ceiling(benchmark::State& state) {
    CRAM_BENCH_CONTEXT();
    const index_t n = index_t(state.range(0));
    const auto elems = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
    try {
        auto a = filled<bf16>(ctx, elems), w = filled<bf16>(ctx, elems, 0.02f);
        device_buffer<bf16> c(elems);
        timed(state, ctx, [&] { cu::linear_forward(ctx, c.data(), a.data(), w.data(), nullptr, n, n, n); });
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        return;
    }
    set_flops(state, 2.0 * double(n) * double(n) * double(n));
}
BENCHMARK(BM_gemm_ceiling)->Arg(8192)->UseManualTime()->Unit(benchmark::kMillisecond);
}  // namespace
