// The fp16 training path end to end through the trainer (cram::train::mlm_trainer with cuda::fp16_backend and
// dynamic loss scaling, as `train --precision fp16` and --precision auto on an sm_70/sm_75 GPU run it): a few
// optimizer steps against the CPU oracle (fp32, the same scaler) from the same initial parameters and batches,
// the losses close step by step; and a loss scale forced far past fp16's range (2^40): the scaled gradients
// overflow in fp16 on the GPU itself, each such step is skipped and halves the scale, the opening streak of
// skips (longer than max_bad_steps) does not stop the run, and it trains on. Skips visibly without a GPU.
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include "cram/cpu/backend.hpp"
#include "cram/train/precision.hpp"
#include "cram/train/trainer.hpp"
#include "cuda_test_support.hpp"
#include "train/loss_scaling_checks.hpp"
#include "train/train_fixtures.hpp"

namespace {

using namespace cram::cuda_test;
namespace train = cram::train;
constexpr cram::bert_config small = cram::test::small_model;

struct run_log {
    std::vector<train::step_record> steps;
    train::train_result result;
};

// max_steps optimizer steps of 8 sequences (two micro-batches of 4) on the trainer tests' pattern corpus.
template <class Backend>
run_log train_steps(typename Backend::context& ctx, const train::loss_scaler_options& scaling, std::int64_t max_steps) {
    auto data = cram::test::pattern_source(777);
    cram::test::step_clock sc;
    train::budget_clock clock(1000, sc.source());
    train::trainer_options o;
    o.ramp = {4, 8, 0.0};
    o.quiet = true;
    o.val_batches = 0;
    o.checkpoint_every = 0;
    o.max_steps = max_steps;
    o.loss_scaling = scaling;
    run_log log;
    train::trainer_observers obs;
    obs.after_micro_step = [&] { sc.tick(); };
    obs.on_step = [&](const train::step_record& r) { log.steps.push_back(r); };
    train::mlm_trainer<small, Backend> trainer(ctx, data, o, clock, train::lr_schedule::linear(), nullptr, obs);
    log.result = trainer.run();
    return log;
}

TEST_CASE("cuda fp16 training with loss scaling follows the CPU, step by step") {
    CRAM_REQUIRE_GPU();
    const train::loss_scaler_options scaling{.init_scale = 65536, .growth_interval = 1000};  // the trainer's start
    cram::cpu::backend<float>::context cctx;
    const auto cpu = train_steps<cram::cpu::backend<float>>(cctx, scaling, 6);
    const auto gpu = train_steps<cram::cuda::fp16_backend>(ctx, scaling, 6);
    REQUIRE(cpu.steps.size() == 6);  // the oracle never overflows: fp32
    // the GPU's fp16 may overflow at the initial scale and skip a step (backing off), never more than a few
    CHECK(gpu.result.steps == 6);
    CHECK(gpu.result.skipped <= 3);
    std::vector<const train::step_record*> applied;
    for (const auto& r : gpu.steps)
        if (!r.skipped_step) applied.push_back(&r);
    REQUIRE(applied.size() == 6);
    if (gpu.result.skipped == 0)  // the same steps on the same batches: the losses agree step by step
        for (std::size_t i = 0; i < 6; ++i) {
            INFO("step " << i + 1 << ": loss cpu " << cpu.steps[i].loss << " gpu " << applied[i]->loss);
            CHECK(applied[i]->loss_scale == 65536);
            CHECK(std::abs(applied[i]->loss - cpu.steps[i].loss) <= 2e-2 * cpu.steps[i].loss);
            CHECK(std::abs(applied[i]->grad_norm - cpu.steps[i].grad_norm) <= 5e-2 * cpu.steps[i].grad_norm);
        }
    INFO("final loss cpu " << cpu.result.final_loss << " gpu " << gpu.result.final_loss);
    CHECK(std::isfinite(gpu.result.final_loss));
    CHECK(std::abs(gpu.result.final_loss - cpu.result.final_loss) <= 5e-2 * cpu.result.final_loss);
    CHECK(gpu.result.final_loss < gpu.result.first_loss);  // it learns
    CHECK(!gpu.result.loss_scaler.is_null());
}

TEST_CASE("cuda fp16 training at a loss scale forced past fp16's range: skip, back off, train on") {
    CRAM_REQUIRE_GPU();
    // 2^40 x the loss gradient overflows fp16 in the first backward op (the logit gradients), so the gradient
    // norm is not finite while the loss is: each such step is skipped and halves the scale, until the scaled
    // gradients fit; far more than max_bad_steps (5) in a row, and the run goes on
    const auto log = train_steps<cram::cuda::fp16_backend>(
        ctx, train::loss_scaler_options{.init_scale = 0x1p40, .growth_interval = 1000}, 8);
    for (const auto& r : log.steps) CHECK(std::isfinite(r.loss));  // the loss is fp32: only the gradients overflow
    cram::test::check_forced_overflow_run(log.steps, log.result, 0x1p40, 8);
}

}  // namespace
