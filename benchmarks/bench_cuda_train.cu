// Crammed-BERT training throughput on the GPU: one micro-step (forward, sparse MLM loss, backward) at
// several micro-batches and both attention paths, with the residual stream in bf16 (the default) and in fp32
// (BM_crammed_bert_micro_step_residual32: cuda::residual_fp32_backend, train --residual fp32), its time per op
// (BM_crammed_bert_phases), plus the optimizer step (grad norm, clip, AdamW, bf16 weight refresh) that runs
// once per accumulated batch. Reports tokens/s and MFU by CRAMMING.md's cost model (0.623 GFLOP per token,
// the H100/H200 SXM dense bf16 peak 989 TFLOP/s). Arg 0 = the micro-batch pick_micro_batch chooses for this GPU.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <type_traits>
#include <vector>

#include "cram/cram.hpp"

namespace {

namespace cu = cram::cuda;
constexpr auto C = cram::presets::crammed_bert;
using model_t = cram::bert<C, cu::backend>;
using residual32 = cu::residual_fp32_backend;
constexpr double flops_per_token = 0.623e9;
constexpr double peak_flops = 989e12;
constexpr int seq = 128;

cu::context* shared_context() {
    static const cu::device_probe probe = cu::probe_device(0);
    if (!probe.usable) return nullptr;
    static auto ctx = std::make_unique<cu::context>(0);
    return ctx.get();
}

// One model and batch per backend and micro-batch size, built once (allocation is not what is measured); one at
// a time, so that two full-size models never hold the GPU's memory together.
struct setup_base {
    virtual ~setup_base() = default;
    int micro = 0;
};
template <class B>
struct setup : setup_base {
    std::unique_ptr<cram::train::training_state<B>> state;
    std::unique_ptr<cram::bert<C, B>> model;
    cu::device_mlm_batch batch;
};

template <class B = cu::backend>
setup<B>& get_setup(cu::context& ctx, int micro) {
    static std::unique_ptr<setup_base> current;
    auto* s = dynamic_cast<setup<B>*>(current.get());
    if (!s || s->micro != micro) {
        current.reset();
        auto fresh = std::make_unique<setup<B>>();
        s = fresh.get();
        current = std::move(fresh);
        s->micro = micro;
        s->state = std::make_unique<cram::train::training_state<B>>(ctx, model_t::layout());
        s->model = std::make_unique<cram::bert<C, B>>(ctx, cram::bind_bert<C, B>(*s->state), micro, seq);
        s->state->init(1, cram::model_options{}.init_std, C.hidden, cram::model_options{}.pad_id);
        s->batch = cu::device_mlm_batch(micro, seq);
        std::vector<std::int32_t> tokens(std::size_t(micro) * seq);
        cram::philox_stream rng(5, 0, 0);
        for (auto& t : tokens) t = 5 + std::int32_t(rng.next_below(C.vocab - 5));
        s->batch.mask(ctx, tokens.data(), micro, cram::masking_options{}, 3, 0);
    }
    return *s;
}

template <class B>
int resolve_micro(cu::context& ctx, int arg) {
    if (arg > 0) return arg;
    const auto [free_b, total_b] = ctx.memory_info();
    return cram::pick_micro_batch<C, B>(free_b, total_b, seq, 8, 1024).micro_batch;
}

// The per-op table of BM_crammed_bert_phases: milliseconds per micro-step, share of the step, calls per step.
void print_phases(benchmark::State& state, const std::vector<cu::phase_timer::total>& totals, long steps,
                  double step_ms, int micro) {
    double attributed = 0;
    for (const auto& t : totals) attributed += t.ms / double(steps);
    std::printf("\ncrammed_bert micro-step, micro-batch %d, %s attention, %s residual stream: %.3f ms per micro-step\n",
                micro, state.range(1) != 0 ? "flash" : "GEMM-path", state.range(2) != 0 ? "fp32" : "bf16", step_ms);
    std::printf("  %-34s %10s %7s %6s\n", "op", "ms/step", "share", "calls");
    for (const auto& t : totals) {
        const double ms = t.ms / double(steps);
        std::printf("  %-34s %10.3f %6.1f%% %6ld\n", t.phase.c_str(), ms, 100.0 * ms / step_ms, t.calls / steps);
        state.counters["ms " + t.phase] = ms;
    }
    std::printf("  %-34s %10.3f %6.1f%%\n", "(between ops: launches, host)", step_ms - attributed,
                100.0 * (step_ms - attributed) / step_ms);
    state.counters["ms between ops"] = step_ms - attributed;
    // the GEMM shapes of the step: each one's algorithm choice and, when timed (context::gemm_choice), its rate
    std::printf("  GEMM plans (timed once each when chosen; compare with bench_cuda_kernels' BM_gemm ceiling):\n");
    for (const auto& g : cu::gemm_report(*shared_context())) {
        std::printf("    %-56s %s\n", g.shape.c_str(), cu::describe(g).c_str());
        if (g.ms > 0) state.counters["TFLOP/s " + g.shape] = g.tflops;
    }
}

// Times micro-steps (forward, sparse MLM loss, backward) with CUDA events on the stream, at the micro-batch
// and attention path of the benchmark's arguments, on backend B; with `phases`, the per-op timer
// (cuda/phase_timer.hpp) is on and its table is printed and kept as counters. Returns the micro-batch, or 0 after
// SkipWithError.
template <class B = cu::backend>
int timed_micro_steps(benchmark::State& state, bool phases) {
    cu::context* ctxp = shared_context();
    if (!ctxp) {
        state.SkipWithError("SKIPPED: no usable CUDA device");
        return 0;
    }
    cu::context& ctx = *ctxp;
    struct restore_defaults {
        cu::context& c;
        ~restore_defaults() {
            c.attention = cu::attention_kernel::flash;
            c.phases.enable(false);
        }
    } restore{ctx};
    int micro = 0;
    try {
        micro = resolve_micro<B>(ctx, int(state.range(0)));
        ctx.attention = state.range(1) != 0 ? cu::attention_kernel::flash : cu::attention_kernel::gemm;
        auto& s = get_setup<B>(ctx, micro);
        s.model->mlm_forward_backward(cram::mlm_view(s.batch));  // warm-up: plans, scratch growth
        ctx.synchronize();
        ctx.phases.enable(phases);
        cudaEvent_t a, b;
        CRAM_CUDA_CHECK(cudaEventCreate(&a));
        CRAM_CUDA_CHECK(cudaEventCreate(&b));
        long steps = 0;
        double total_ms = 0;
        for (auto _ : state) {
            CRAM_CUDA_CHECK(cudaEventRecord(a, ctx.stream()));
            s.model->mlm_forward_backward(cram::mlm_view(s.batch));
            CRAM_CUDA_CHECK(cudaEventRecord(b, ctx.stream()));
            CRAM_CUDA_CHECK(cudaEventSynchronize(b));
            float ms = 0;
            CRAM_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
            state.SetIterationTime(ms / 1e3);
            total_ms += ms;
            ++steps;
        }
        cudaEventDestroy(a);
        cudaEventDestroy(b);
        state.counters["loss"] = s.model->take_mlm_loss();
        if (phases && steps > 0) print_phases(state, ctx.phases.report(), steps, total_ms / double(steps), micro);
    } catch (const std::exception& e) {
        state.SkipWithError(e.what());
        return 0;
    }
    return micro;
}

template <class B = cu::backend>
void micro_step_rate(benchmark::State& state) {
    const int micro = timed_micro_steps<B>(state, false);
    if (micro == 0) return;
    const double tokens = double(micro) * seq;
    state.counters["micro_batch"] = micro;
    state.counters["tokens/s"] = benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["MFU"] =
        benchmark::Counter(tokens * flops_per_token / peak_flops, benchmark::Counter::kIsIterationInvariantRate);
}
void BM_crammed_bert_micro_step(benchmark::State& state) { micro_step_rate(state); }
// args: (micro-batch, attention path: 0 = GEMM, 1 = flash); micro-batch 0 = the planner's pick
BENCHMARK(BM_crammed_bert_micro_step)->Args({64, 0})->Args({128, 0})->Args({256, 0})->Args({512, 0})->Args({0, 0})
    ->Args({256, 1})->Args({512, 1})->Args({0, 1})->UseManualTime()
    ->Unit(benchmark::kMillisecond)->MinTime(3.0);
// The same with the residual stream and its gradient in fp32 (not yet run on a GPU); args as above.
void BM_crammed_bert_micro_step_residual32(benchmark::State& state) { micro_step_rate<residual32>(state); }
BENCHMARK(BM_crammed_bert_micro_step_residual32)->Args({512, 1})->Args({0, 1})->UseManualTime()
    ->Unit(benchmark::kMillisecond)->MinTime(3.0);

// Where a micro-step's time goes: a few micro-steps with every backend op timed by CUDA events; the table
// (largest first, and the gaps between ops) is printed, and each op's milliseconds per micro-step is a counter
// ("ms <op>") in the JSON output. The events add a little to the step: compare totals with the plain case.
// Args: (micro-batch, attention path, residual stream: 0 = bf16, 1 = fp32).
void BM_crammed_bert_phases(benchmark::State& state) {
    const int micro = state.range(2) != 0 ? timed_micro_steps<residual32>(state, true) : timed_micro_steps(state, true);
    if (micro > 0) state.counters["micro_batch"] = micro;
}
BENCHMARK(BM_crammed_bert_phases)->Args({512, 0, 0})->Args({512, 1, 0})->Args({512, 1, 1})->UseManualTime()
    ->Iterations(5)->Unit(benchmark::kMillisecond);

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
