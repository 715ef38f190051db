// Google Benchmark harness for the CPU backend: GEMM, linear forward/backward, LayerNorm, attention, the
// fused sparse decoder loss, and one whole training micro-step of crammed_tiny and crammed_mini (tokens/s,
// per micro-batch and thread count). The CPU backend is what users without a GPU train with and what the
// tests run on; benchmarks/cpu_vs_pytorch.py sets its step against the PyTorch peer. Built by CI, not run
// there. See docs/benchmarks.md.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "cram/core/thread_pool.hpp"
#include "cram/cram.hpp"

namespace {

std::vector<float> random_floats(std::size_t n, std::uint32_t stream) {
    cram::philox_stream rng(7, stream, 0);
    std::vector<float> v(n);
    for (auto& x : v) x = rng.next_uniform() * 2.0f - 1.0f;
    return v;
}

// C[n,n] = A[n,n] * B[n,n]^T (the linear layer's layout); FLOP/s reported as "flops".
void bm_gemm(benchmark::State& state) {
    const auto n = static_cast<cram::index_t>(state.range(0));
    const auto a = random_floats(std::size_t(n * n), 1), b = random_floats(std::size_t(n * n), 2);
    std::vector<float> c(std::size_t(n * n));
    for (auto _ : state) {
        cram::ops::gemm<float>(false, true, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
        benchmark::DoNotOptimize(c.data());
    }
    state.counters["flops"] = benchmark::Counter(2.0 * double(n) * double(n) * double(n), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(bm_gemm)->Arg(128)->Arg(256)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();

// A crammed_mini-sized linear: 1024 rows (8 x 128 tokens), 256 -> 1024.
constexpr cram::index_t lin_rows = 1024, lin_in = 256, lin_out = 1024;
void bm_linear_forward(benchmark::State& state) {
    const auto x = random_floats(lin_rows * lin_in, 3), w = random_floats(lin_out * lin_in, 4);
    const auto bias = random_floats(lin_out, 5);
    std::vector<float> y(lin_rows * lin_out);
    for (auto _ : state) {
        cram::ops::linear_forward(y.data(), x.data(), w.data(), bias.data(), lin_rows, lin_in, lin_out);
        benchmark::DoNotOptimize(y.data());
    }
    state.counters["flops"] = benchmark::Counter(2.0 * lin_rows * lin_in * lin_out, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(bm_linear_forward)->Unit(benchmark::kMillisecond)->UseRealTime();

void bm_linear_backward(benchmark::State& state) {
    const auto x = random_floats(lin_rows * lin_in, 3), w = random_floats(lin_out * lin_in, 4);
    const auto dy = random_floats(lin_rows * lin_out, 6);
    std::vector<float> dx(lin_rows * lin_in), dw(lin_out * lin_in), db(lin_out);
    for (auto _ : state) {
        cram::ops::linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), lin_rows, lin_in,
                                   lin_out);
        benchmark::DoNotOptimize(dw.data());
    }
    state.counters["flops"] = benchmark::Counter(4.0 * lin_rows * lin_in * lin_out, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(bm_linear_backward)->Unit(benchmark::kMillisecond)->UseRealTime();

// crammed_bert width: 4096 rows x 768.
constexpr cram::index_t ln_rows = 4096, ln_cols = 768;
void bm_layernorm_forward(benchmark::State& state) {
    const auto x = random_floats(ln_rows * ln_cols, 7), w = random_floats(ln_cols, 8), b = random_floats(ln_cols, 9);
    std::vector<float> y(x.size()), mean(ln_rows), rstd(ln_rows);
    for (auto _ : state) {
        cram::ops::layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), ln_rows,
                                     ln_cols, 1e-12f);
        benchmark::DoNotOptimize(y.data());
    }
    state.SetBytesProcessed(std::int64_t(state.iterations()) * 2 * ln_rows * ln_cols * std::int64_t(sizeof(float)));
}
BENCHMARK(bm_layernorm_forward)->Unit(benchmark::kMillisecond)->UseRealTime();

void bm_layernorm_backward(benchmark::State& state) {
    const auto x = random_floats(ln_rows * ln_cols, 7), w = random_floats(ln_cols, 8), b = random_floats(ln_cols, 9);
    const auto dy = random_floats(x.size(), 10);
    std::vector<float> y(x.size()), mean(ln_rows), rstd(ln_rows), dx(x.size()), dw(ln_cols), db(ln_cols);
    cram::ops::layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), ln_rows, ln_cols,
                                 1e-12f);
    for (auto _ : state) {
        cram::ops::layernorm_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), mean.data(), rstd.data(),
                                      w.data(), ln_rows, ln_cols);
        benchmark::DoNotOptimize(dx.data());
    }
    state.SetBytesProcessed(std::int64_t(state.iterations()) * 3 * ln_rows * ln_cols * std::int64_t(sizeof(float)));
}
BENCHMARK(bm_layernorm_backward)->Unit(benchmark::kMillisecond)->UseRealTime();

// batch 4, seq 128, 4 heads of 64 (crammed_mini's attention).
constexpr cram::index_t at_batch = 4, at_seq = 128, at_heads = 4, at_dim = 64, at_hidden = at_heads * at_dim;
void bm_attention(benchmark::State& state) {
    const bool backward = state.range(0) != 0;
    const auto qkv = random_floats(at_batch * at_seq * 3 * at_hidden, 11);
    const auto dout = random_floats(at_batch * at_seq * at_hidden, 12);
    std::vector<float> out(dout.size()), probs(at_batch * at_heads * at_seq * at_seq), dqkv(qkv.size());
    cram::ops::attention_forward(out.data(), probs.data(), qkv.data(), nullptr, at_batch, at_seq, at_heads, at_dim);
    for (auto _ : state) {
        if (backward)
            cram::ops::attention_backward(dqkv.data(), dout.data(), qkv.data(), probs.data(), nullptr, at_batch,
                                          at_seq, at_heads, at_dim);
        else
            cram::ops::attention_forward(out.data(), probs.data(), qkv.data(), nullptr, at_batch, at_seq, at_heads,
                                         at_dim);
        benchmark::ClobberMemory();
    }
    const double mm = 2.0 * 2.0 * at_batch * at_heads * at_seq * at_seq * at_dim;  // QK^T and PV
    state.counters["flops"] = benchmark::Counter(backward ? 2 * mm : mm, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(bm_attention)->ArgName("backward")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// Sparse MLM decoder + loss: 256 masked rows (8 x 32), hidden 128, vocab 8192 (crammed_tiny).
void bm_decoder_cross_entropy(benchmark::State& state) {
    const bool backward = state.range(0) != 0;
    const cram::index_t n = 256, h = 128, v = 8192;
    const auto hid = random_floats(std::size_t(n * h), 13), w = random_floats(std::size_t(v * h), 14);
    std::vector<std::int32_t> targets(static_cast<std::size_t>(n));
    for (cram::index_t i = 0; i < n; ++i) targets[std::size_t(i)] = std::int32_t((i * 7919) % v);
    std::vector<float> dh(hid.size()), dw(w.size());
    for (auto _ : state) {
        const double loss = cram::ops::decoder_cross_entropy<float>(backward ? dh.data() : nullptr,
                                                             backward ? dw.data() : nullptr, nullptr, hid.data(),
                                                             w.data(), nullptr, targets.data(), n, h, v, 1.0f / n);
        benchmark::DoNotOptimize(loss);
    }
    state.counters["flops"] = benchmark::Counter((backward ? 6.0 : 2.0) * n * h * v, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(bm_decoder_cross_entropy)->ArgName("backward")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// One full training micro-step of a preset (micro-batch x 128 tokens): zero the gradients, MLM forward +
// backward on a masked batch, gradient norm, AdamW update (with the clip scale) -- what the trainer does per
// micro-step when every micro-step is an optimizer step. Arguments: the micro-batch and cram's thread count
// (set_cpu_threads before the model is built, restored to 0 = all cores afterwards). Reports tokens/s.
// benchmarks/cpu_vs_pytorch.py runs these against the PyTorch peer (docs/benchmarks.md).
template <cram::bert_config C>
void bm_train_step(benchmark::State& state) {
    using backend = cram::cpu::backend<float>;
    const int batch = static_cast<int>(state.range(0)), seq = 128;
    cram::set_cpu_threads(static_cast<int>(state.range(1)));
    {
        backend::context ctx;
        cram::train::training_state<backend> params(ctx, cram::cpu_bert<C>::layout());
        cram::cpu_bert<C> model(ctx, cram::bind_bert<C, backend>(params), batch, seq);
        params.init(1, cram::model_options{}.init_std, C.hidden, cram::model_options{}.pad_id);
        std::vector<std::int32_t> tokens(std::size_t(batch) * seq);
        cram::philox_stream rng(3, 0, 0);
        for (auto& t : tokens) t = 5 + std::int32_t(rng.next_below(C.vocab - 5));
        cram::masking_options mo;
        mo.vocab = C.vocab;
        const auto mb = cram::mask_batch(tokens.data(), batch, seq, mo, 1, 0);
        const cram::train::adamw_options o;
        long step = 0;
        for (auto _ : state) {
            params.zero_grads();
            model.mlm_forward_backward(mb.view());
            params.adamw_step(o, o.lr, ++step, cram::train::clip_scale(params.grad_norm(), o.clip_norm));
        }
        benchmark::DoNotOptimize(model.take_mlm_loss());
    }
    cram::set_cpu_threads(0);
    state.counters["tokens/s"] = benchmark::Counter(double(batch) * seq, benchmark::Counter::kIsIterationInvariantRate);
}
// Names as bm_train_step<crammed_tiny>/micro:8/threads:2/real_time (BENCHMARK_TEMPLATE spells the argument).
using cram::presets::crammed_mini;
using cram::presets::crammed_tiny;
void train_step_args(benchmark::internal::Benchmark* b) {
    b->ArgNames({"micro", "threads"});
    for (const int micro : {8, 32})
        for (const int threads : {1, 2}) b->Args({micro, threads});
}
BENCHMARK_TEMPLATE(bm_train_step, crammed_tiny)->Apply(train_step_args)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(bm_train_step, crammed_mini)->Apply(train_step_args)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
