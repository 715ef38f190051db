// Crammed-BERT training throughput on the GPU: one micro-step (forward, sparse MLM loss, backward) at
// several micro-batches, plus the optimizer step (grad norm, clip, AdamW, bf16 weight refresh) that runs
// once per accumulated batch. Reports tokens/s and MFU by CRAMMING.md's cost model (0.623 GFLOP per token,
// H100 SXM dense bf16 peak 989 TFLOP/s). Arg 0 = the micro-batch pick_micro_batch chooses for this GPU.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "cram/cram.hpp"

namespace {

namespace cu = cram::cuda;
constexpr auto C = cram::presets::crammed_bert;
using model_t = cram::bert<C, cu::backend>;
constexpr double flops_per_token = 0.623e9;
constexpr double peak_flops = 989e12;
constexpr int seq = 128;

cu::context* shared_context() {
    static const cu::device_probe probe = cu::probe_device(0);
    if (!probe.usable) return nullptr;
    static auto ctx = std::make_unique<cu::context>(0);
    return ctx.get();
}

// One model and batch per micro-batch size, built once (allocation is not what is measured).
struct setup {
    std::unique_ptr<cram::train::training_state<cu::backend>> state;
    std::unique_ptr<model_t> model;
    cu::device_mlm_batch batch;
    int micro = 0;
};

setup& get_setup(cu::context& ctx, int micro) {
    static std::unique_ptr<setup> s;
    if (!s || s->micro != micro) {
        s.reset();
        s = std::make_unique<setup>();
        s->micro = micro;
        s->state = std::make_unique<cram::train::training_state<cu::backend>>(ctx, model_t::layout());
        s->model = std::make_unique<model_t>(ctx, cram::bind_bert<C, cu::backend>(*s->state), micro, seq);
        s->state->init(1, cram::model_options{}.init_std, C.hidden, cram::model_options{}.pad_id);
        s->batch = cu::device_mlm_batch(micro, seq);
        std::vector<std::int32_t> tokens(std::size_t(micro) * seq);
        cram::philox_stream rng(5, 0, 0);
        for (auto& t : tokens) t = 5 + std::int32_t(rng.next_below(C.vocab - 5));
        s->batch.mask(ctx, tokens.data(), micro, cram::masking_options{}, 3, 0);
    }
    return *s;
}

int resolve_micro(cu::context& ctx, int arg) {
    if (arg > 0) return arg;
    const auto [free_b, total_b] = ctx.memory_info();
    return cram::pick_micro_batch<C, cu::backend>(free_b, total_b, seq, 8, 1024).micro_batch;
}

void BM_crammed_bert_micro_step(benchmark::State& state) {
    cu::context* ctxp = shared_context();
    if (!ctxp) {
        state.SkipWithError("SKIPPED: no usable CUDA device");
        return;
    }
    cu::context& ctx = *ctxp;
    int micro = 0;
    try {
        micro = resolve_micro(ctx, int(state.range(0)));
        ctx.fused_attention = state.range(1) != 0;
        auto& s = get_setup(ctx, micro);
        s.model->mlm_forward_backward(cram::mlm_view(s.batch));  // warm-up: plans, scratch growth
        ctx.synchronize();
        cudaEvent_t a, b;
        CRAM_CUDA_CHECK(cudaEventCreate(&a));
        CRAM_CUDA_CHECK(cudaEventCreate(&b));
        for (auto _ : state) {
            CRAM_CUDA_CHECK(cudaEventRecord(a, ctx.stream()));
            s.model->mlm_forward_backward(cram::mlm_view(s.batch));
            CRAM_CUDA_CHECK(cudaEventRecord(b, ctx.stream()));
            CRAM_CUDA_CHECK(cudaEventSynchronize(b));
            float ms = 0;
            CRAM_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
            state.SetIterationTime(ms / 1e3);
        }
        cudaEventDestroy(a);
        cudaEventDestroy(b);
        state.counters["loss"] = s.model->take_mlm_loss();
        ctx.fused_attention = false;
    } catch (const std::exception& e) {
        ctx.fused_attention = false;
        state.SkipWithError(e.what());
        return;
    }
    const double tokens = double(micro) * seq;
    state.counters["micro_batch"] = micro;
    state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["MFU"] =
        benchmark::Counter(tokens * flops_per_token / peak_flops, benchmark::Counter::kIsIterationInvariantRate);
}
// args: (micro-batch, fused attention)
BENCHMARK(BM_crammed_bert_micro_step)->Args({64, 0})->Args({128, 0})->Args({256, 0})->Args({512, 0})->Args({0, 0})
    ->Args({256, 1})->Args({512, 1})->Args({0, 1})->UseManualTime()
    ->Unit(benchmark::kMillisecond)->MinTime(3.0);

void BM_crammed_bert_optimizer_step(benchmark::State& state) {
    cu::context* ctxp = shared_context();
    if (!ctxp) {
        state.SkipWithError("SKIPPED: no usable CUDA device");
        return;
    }
    cu::context& ctx = *ctxp;
    auto& s = get_setup(ctx, 64);
    long step = 1;
    for (auto _ : state) {
        const double norm = s.state->grad_norm();
        s.state->adamw_step(cram::train::adamw_options{}, 1e-3f, step++, cram::train::clip_scale(norm, 0.5f));
        ctx.synchronize();
    }
    state.counters["params"] = double(model_t::parameter_count());
}
BENCHMARK(BM_crammed_bert_optimizer_step)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
