// fp16 training's dynamic loss scaling (cram/train/precision.hpp) on the CPU, where fp16 is emulated by passing
// the gradients through fp16 after every micro-step: the scaler's rule against a hand-worked sequence; a
// power-of-two scale is undone exactly (scaled and unscaled runs agree bit for bit); a scale forced far past
// fp16's range overflows, each overflow skips its step and halves the scale, more than max_bad_steps of them in
// a row do not stop the run, and training goes on; an interrupted run resumes with the scaler's state exactly.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "cram/cpu/backend.hpp"
#include "cram/model/presets.hpp"
#include "cram/train/precision.hpp"
#include "cram/train/trainer.hpp"
#include "loss_scaling_checks.hpp"
#include "test_support.hpp"
#include "train_fixtures.hpp"

using namespace cram;
using namespace cram::train;
namespace fs = std::filesystem;

namespace {

constexpr bert_config small = test::small_model;
using cpu_backend = cpu::backend<float>;

using cram::test::error_of;

struct run_log {
    std::vector<step_record> steps;
    train_result result;
    std::vector<float> params;
};

// max_steps optimizer steps of a fixed batch of 8 (two micro-batches of 4) on the pattern corpus.
run_log train_steps(std::optional<loss_scaler_options> scaling, bool emulate, std::int64_t max_steps,
                    const fs::path& out = {}, bool resume = false) {
    auto data = test::pattern_source(777);
    test::step_clock sc;
    budget_clock clock(1000, sc.source());
    trainer_options o;
    o.ramp = {4, 8, 0.0};
    o.out = out;
    o.quiet = true;
    o.val_batches = 0;
    o.checkpoint_every = 0;
    o.max_steps = max_steps;
    o.resume = resume;
    o.loss_scaling = scaling;
    o.emulate_fp16_gradients = emulate;
    run_log log;
    trainer_observers obs;
    obs.after_micro_step = [&] { sc.tick(); };
    obs.on_step = [&](const step_record& r) { log.steps.push_back(r); };
    cpu_backend::context ctx;
    mlm_trainer<small, cpu_backend> trainer(ctx, data, o, clock, lr_schedule::linear(), nullptr, obs);
    log.result = trainer.run();
    log.params.assign(trainer.state().params(), trainer.state().params() + trainer.state().size());
    return log;
}

}  // namespace

TEST_CASE("loss scaler: halve and restart the count on overflow, double after growth_interval clean steps") {
    loss_scaler s({.init_scale = 1024, .growth_factor = 2, .backoff_factor = 0.5, .growth_interval = 3, .min_scale = 1});
    CHECK(s.scale() == 1024);
    s.update(true);
    s.update(true);
    CHECK(s.scale() == 1024);  // two clean steps of three
    s.update(false);
    CHECK(s.scale() == 512);   // overflow: halve, count restarts
    CHECK(s.clean_steps() == 0);
    s.update(true);
    s.update(true);
    s.update(true);
    CHECK(s.scale() == 1024);  // three clean in a row: double
    CHECK(s.clean_steps() == 0);
    CHECK(s.overflows() == 1);
    for (int i = 0; i < 20; ++i) s.update(false);
    CHECK(s.scale() == 1);  // floored at the minimum
    CHECK(s.at_minimum());
    // the state survives a checkpoint's JSON
    loss_scaler r({.init_scale = 65536});
    r.restore(s.to_json(), "state.json");
    CHECK(r.scale() == 1);
    CHECK(r.overflows() == 21);
    // bad values are refused, naming the file
    loss_scaler bad;
    const std::string msg = error_of([&] { bad.restore({{"scale", -1}, {"clean_steps", 0}, {"overflows", 0}}, "ck/state.json"); });
    CHECK(msg.find("ck/state.json") != std::string::npos);
    CHECK(error_of([] { loss_scaler x({.init_scale = 1, .backoff_factor = 1.5}); }).find("back-off") !=
          std::string::npos);
    CHECK(parse_precision("fp16") == precision::fp16);
    CHECK(auto_precision(7) == precision::fp16);  // Volta, Turing (the RTX 2080 Ti is 7.5)
    CHECK(auto_precision(8) == precision::bf16);
    CHECK(auto_precision(9) == precision::bf16);
    CHECK(auto_precision(0) == precision::fp32);
    CHECK(error_of([] { parse_precision("fp8"); }).find("'fp8'") != std::string::npos);
}

TEST_CASE("a power-of-two loss scale is undone exactly: scaled and unscaled runs agree bit for bit") {
    const auto plain = train_steps(std::nullopt, false, 6);
    const auto scaled = train_steps(loss_scaler_options{.init_scale = 4096}, false, 6);
    REQUIRE(plain.steps.size() == 6);
    REQUIRE(scaled.steps.size() == 6);
    for (std::size_t i = 0; i < 6; ++i) {
        CAPTURE(i);
        CHECK(scaled.steps[i].loss == plain.steps[i].loss);
        CHECK(scaled.steps[i].grad_norm == plain.steps[i].grad_norm);  // reported unscaled
        CHECK(scaled.steps[i].loss_scale == 4096);
        CHECK(!scaled.steps[i].overflow);
    }
    CHECK(scaled.params == plain.params);
}

TEST_CASE("fp16-emulated gradients at a scale forced past fp16's range: skip, back off, train on") {
    // 2^40 x gradients of order 1e-3 are far beyond 65504: the first steps overflow, each halves the scale,
    // until the scaled gradients fit; far more than max_bad_steps (5) overflows in a row, and the run goes on
    // (a later step near the edge may overflow again: the same rule applies)
    const auto log = train_steps(loss_scaler_options{.init_scale = 0x1p40, .growth_interval = 1000}, true, 8);
    test::check_forced_overflow_run(log.steps, log.result, 0x1p40, 8);
}

TEST_CASE("an fp16 run interrupted and resumed continues with the scaler's state exactly") {
    // a growth interval of 2 makes the scale grow and overflow again within the run, so the state matters
    const loss_scaler_options o{.init_scale = 0x1p30, .growth_interval = 2};
    const auto full = train_steps(o, true, 14);
    const auto dir = test::scratch_dir("loss_scaling_resume");
    const auto first = train_steps(o, true, 7, dir);
    const auto second = train_steps(o, true, 14, dir, true);
    REQUIRE(first.steps.size() + second.steps.size() == full.steps.size());
    for (std::size_t i = 0; i < full.steps.size(); ++i) {
        const auto& r = i < first.steps.size() ? first.steps[i] : second.steps[i - first.steps.size()];
        CAPTURE(i);
        CHECK(r.loss_scale == full.steps[i].loss_scale);
        CHECK(r.overflow == full.steps[i].overflow);
        CHECK(r.loss == full.steps[i].loss);
    }
    CHECK(second.params == full.params);
    int grown = 0;
    for (std::size_t i = 1; i < full.steps.size(); ++i) grown += full.steps[i].loss_scale > full.steps[i - 1].loss_scale;
    CHECK(grown > 0);  // the schedule of scales really moved both ways
}
