// The trainer loop on small models: a resumed run reproduces the uninterrupted run's losses bit for bit
// (deterministic clock), the budget stop lands within a few percent of the budget (real clock),
// non-finite steps are skipped and repeated ones stop the run with the last checkpoint intact, and bad
// inputs give messages that say what to change.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "cram/core/rng.hpp"
#include "cram/cpu/backend.hpp"
#include "cram/model/presets.hpp"
#include "cram/train/trainer.hpp"
#include "test_support.hpp"
#include "train_fixtures.hpp"

using namespace cram;
using namespace cram::train;
namespace fs = std::filesystem;

namespace {

constexpr bert_config small = presets::test_pre_glu;  // vocab 23, seq 8
using cpu_backend = cpu::backend<float>;

// A corpus with structure (a noisy repeating pattern) so the loss has something to learn.
memory_source make_source(int sequences = 64) { return test::pattern_source(12345, sequences); }

trainer_options base_options(const fs::path& out) {
    trainer_options o;
    o.ramp = {4, 16, 0.6};
    o.out = out;
    o.quiet = true;
    o.keep = 2;
    o.val_batches = 0;
    o.checkpoint_every = 5.0;
    return o;
}

using test::step_clock;

using cram::test::error_of;

}  // namespace

TEST_CASE("a resumed run reproduces the uninterrupted losses exactly") {
    const double budget = 40;  // 160 micro-steps of 0.25 s
    std::vector<double> full_loss, full_lr;
    std::vector<int> full_batch;
    {
        const auto dir = test::scratch_dir("train_resume_full");
        auto data = make_source();
        step_clock sc;
        budget_clock clock(budget, sc.source());
        auto o = base_options(dir);
        trainer_observers obs;
        obs.after_micro_step = [&] { sc.tick(); };
        obs.on_step = [&](const step_record& r) {
            full_loss.push_back(r.loss);
            full_lr.push_back(r.lr);
            full_batch.push_back(r.batch);
        };
        cpu_backend::context ctx;
        const auto res = train_mlm<small, cpu_backend>(ctx, data, o, clock, {}, nullptr, obs);
        CHECK(res.stop_reason == "budget");
        CHECK(res.elapsed == budget);
    }
    REQUIRE(full_loss.size() > 20);
    CHECK(full_batch.front() == 4);
    // the ramp reaches its target; the last step may be cut to what the budget holds (no partial step)
    CHECK(*std::max_element(full_batch.begin(), full_batch.end()) == 16);
    CHECK(full_batch.back() <= 16);
    CHECK(full_loss.back() < full_loss.front());

    std::vector<double> resumed_loss, resumed_lr;
    const auto dir = test::scratch_dir("train_resume_split");
    const std::int64_t split_at = 17;  // mid-ramp, between periodic checkpoints
    {
        auto data = make_source();
        step_clock sc;
        budget_clock clock(budget, sc.source());
        auto o = base_options(dir);
        trainer_observers obs;
        o.max_steps = split_at;
        obs.after_micro_step = [&] { sc.tick(); };
        obs.on_step = [&](const step_record& r) { resumed_loss.push_back(r.loss); resumed_lr.push_back(r.lr); };
        cpu_backend::context ctx;
        const auto res = train_mlm<small, cpu_backend>(ctx, data, o, clock, {}, nullptr, obs);
        CHECK(res.stop_reason == "max_steps");
        CHECK(res.steps == split_at);
    }
    {
        auto data = make_source();  // a fresh process: new source, model, clock
        step_clock sc;
        budget_clock clock(budget, sc.source());
        auto o = base_options(dir);
        trainer_observers obs;
        o.resume = true;
        obs.after_micro_step = [&] { sc.tick(); };
        obs.on_step = [&](const step_record& r) { resumed_loss.push_back(r.loss); resumed_lr.push_back(r.lr); };
        cpu_backend::context ctx;
        const auto res = train_mlm<small, cpu_backend>(ctx, data, o, clock, {}, nullptr, obs);
        CHECK(res.resumed);
        CHECK(res.resumed_from_step == split_at);
        CHECK(res.elapsed == budget);
    }
    REQUIRE(resumed_loss.size() == full_loss.size());
    int mismatches = 0;
    for (std::size_t i = 0; i < full_loss.size(); ++i) {
        if (resumed_loss[i] != full_loss[i] || resumed_lr[i] != full_lr[i]) {
            if (mismatches++ < 3)
                MESSAGE("step " << i + 1 << ": full " << full_loss[i] << " resumed " << resumed_loss[i]);
        }
    }
    CHECK(mismatches == 0);
    // metrics.jsonl holds each step once, in order, after the resume rewrote its tail
    std::ifstream in(dir / "metrics.jsonl");
    std::string line;
    std::int64_t expect = 1;
    bool ordered = true;
    while (std::getline(in, line)) {
        const auto j = nlohmann::json::parse(line);
        if (j.contains("event")) continue;
        ordered &= j["step"].get<std::int64_t>() == expect++;
    }
    CHECK(ordered);
    CHECK(expect - 1 == std::int64_t(full_loss.size()));
    CHECK(fs::exists(dir / "loss.svg"));
}

TEST_CASE("a checkpoint from another configuration is refused, naming the difference") {
    const auto dir = test::scratch_dir("train_resume_mismatch");
    {
        auto data = make_source();
        step_clock sc;
        budget_clock clock(10, sc.source());
        auto o = base_options(dir);
        trainer_observers obs;
        o.max_steps = 3;
        obs.after_micro_step = [&] { sc.tick(); };
        cpu_backend::context ctx;
        train_mlm<small, cpu_backend>(ctx, data, o, clock, {}, nullptr, obs);
    }
    auto data = make_source();
    step_clock sc;
    budget_clock clock(10, sc.source());
    auto o = base_options(dir);
    trainer_observers obs;
    o.resume = true;
    o.adamw.lr = 2e-3f;
    obs.after_micro_step = [&] { sc.tick(); };
    cpu_backend::context ctx;
    const auto msg = error_of([&] { train_mlm<small, cpu_backend>(ctx, data, o, clock, {}, nullptr, obs); });
    CHECK(msg.find("different training configuration") != std::string::npos);
    CHECK(msg.find("adamw.lr: checkpoint 0.001") != std::string::npos);
    // and a fresh run refuses to write over it
    o.resume = false;
    o.adamw.lr = 1e-3f;
    CHECK(error_of([&] { train_mlm<small, cpu_backend>(ctx, data, o, clock, {}, nullptr, obs); }).find("pass --resume") != std::string::npos);
}

TEST_CASE("the budget stop lands within a few percent of the budget") {
    const double budget = 1.5;
    auto data = make_source();
    auto o = base_options({});
    o.checkpoint_every = 0;
    const auto t0 = std::chrono::steady_clock::now();
    budget_clock clock(budget);
    cpu_backend::context ctx;
    const auto res = train_mlm<small, cpu_backend>(ctx, data, o, clock);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    INFO("stopped at " << res.elapsed << " s, wall " << wall << " s, " << res.micro_steps << " micro-steps");
    CHECK(res.stop_reason == "budget");
    CHECK(res.elapsed >= budget);
    CHECK(res.elapsed <= budget * 1.05);
    CHECK(wall <= budget * 1.05 + 0.05);
    CHECK(res.micro_steps > 10);
}

TEST_CASE("non-finite steps are skipped; repeated ones stop the run with the last checkpoint intact") {
    // The trainer's own pieces drive these runs: between accumulate() and apply() the step's gradients are in
    // the training state, where a bad value is planted.
    SUBCASE("one bad step is skipped and training continues") {
        auto data = make_source();
        step_clock sc;
        budget_clock clock(10, sc.source());
        auto o = base_options({});
        trainer_observers obs;
        obs.after_micro_step = [&] { sc.tick(); };
        int skipped_records = 0;
        obs.on_step = [&](const step_record& r) { skipped_records += r.skipped_step; };
        cpu_backend::context ctx;
        mlm_trainer<small, cpu_backend> trainer(ctx, data, o, clock, {}, nullptr, obs);
        bool planted = false;
        while (const auto step = trainer.accumulate()) {
            if (trainer.counters().step == 3 && !planted) {
                trainer.state().grads()[0] = std::numeric_limits<float>::quiet_NaN();
                planted = true;
            }
            trainer.apply(*step);
        }
        const auto res = trainer.finish();
        CHECK(planted);
        CHECK(res.skipped == 1);
        CHECK(skipped_records == 1);
        CHECK(std::isfinite(res.final_loss));
        CHECK(res.steps > 5);
    }
    SUBCASE("five in a row stop the run; the checkpoint written before is untouched") {
        const auto dir = test::scratch_dir("train_diverge");
        auto data = make_source();
        step_clock sc;
        budget_clock clock(100, sc.source());
        auto o = base_options(dir);
        o.checkpoint_every = 2.0;
        trainer_observers obs;
        obs.after_micro_step = [&] { sc.tick(); };
        cpu_backend::context ctx;
        const auto msg = error_of([&] {
            mlm_trainer<small, cpu_backend> trainer(ctx, data, o, clock, {}, nullptr, obs);
            // run()'s loop with a gradient turned infinite from step 10 on
            while (const auto step = trainer.accumulate()) {
                if (trainer.counters().step >= 10) trainer.state().grads()[1] = std::numeric_limits<float>::infinity();
                if (trainer.apply(*step) == decltype(trainer)::step_outcome::applied) trainer.checkpoint_if_due();
            }
        });
        CHECK(msg.find("training diverged: 5 optimizer steps in a row") != std::string::npos);
        CHECK(msg.find("last good checkpoint is") != std::string::npos);
        const auto ck = load_latest_checkpoint<float>(dir / "checkpoints", bert<small, cpu_backend>::layout());
        REQUIRE(ck.has_value());
        CHECK(ck->state["step"].get<int>() <= 10);
        bool finite = true;
        for (float x : ck->params) finite &= std::isfinite(x);
        CHECK(finite);
    }
}

TEST_CASE("bad inputs give messages that say what to change") {
    cpu_backend::context ctx;
    budget_clock clock(5);
    auto o = base_options({});
    SUBCASE("vocabulary mismatch") {
        std::vector<std::int32_t> toks(64 * 8, 7);
        masking_options m;
        m.vocab = 30;
        memory_source data(toks, 8, m);
        CHECK(error_of([&] { train_mlm<small, cpu_backend>(ctx, data, o, clock); })
                  .find("vocabulary has 30 tokens but the model needs exactly 23 (re-run prepare with --vocab-size 23") !=
              std::string::npos);
    }
    SUBCASE("sequences longer than the model supports") {
        std::vector<std::int32_t> toks(64 * 16, 7);
        masking_options m;
        m.vocab = 23;
        memory_source data(toks, 16, m);
        CHECK(error_of([&] { train_mlm<small, cpu_backend>(ctx, data, o, clock); }).find("at most 8") != std::string::npos);
    }
    SUBCASE("resume without a checkpoint") {
        auto data = make_source();
        o.out = test::scratch_dir("train_resume_none");
        o.resume = true;
        CHECK(error_of([&] { train_mlm<small, cpu_backend>(ctx, data, o, clock); }).find("no usable checkpoint") !=
              std::string::npos);
    }
    SUBCASE("zero micro-batch") {
        auto data = make_source();
        o.ramp.micro_batch = 0;
        CHECK(error_of([&] { train_mlm<small, cpu_backend>(ctx, data, o, clock); }).find("micro-batch must be positive") !=
              std::string::npos);
    }
}

TEST_CASE("recipes in the trainer: polynomial-decay reads the sequences before each step; dropout is on") {
    // warm-up over 64 sequences at a fixed batch of 16 (ramp_end 0): step k (0-based) has 16 k sequences behind
    // it, so its factor is 16 k / 64 until the warm-up ends, then (1 - (16 k - 64) / (640 - 64))
    auto run = [](float dropout, int steps) {
        auto data = make_source();
        step_clock sc;
        budget_clock clock(1000, sc.source());
        auto o = base_options({});
        o.ramp = {4, 16, 0.0};
        o.max_steps = steps;
        o.adamw.lr = 1e-3f;
        o.dropout = dropout;
        o.attention_dropout = dropout;
        trainer_observers obs;
        obs.after_micro_step = [&] { sc.tick(); };
        std::vector<step_record> records;
        obs.on_step = [&](const step_record& r) { records.push_back(r); };
        cpu_backend::context ctx;
        train_mlm<small, cpu_backend>(ctx, data, o, clock, lr_schedule::polynomial_decay(64, 640, 1.0), nullptr, obs);
        return records;
    };
    const auto plain = run(0.0f, 8);
    REQUIRE(plain.size() == 8);
    for (int k = 0; k < 8; ++k) {
        INFO("step " << k);
        CHECK(plain[std::size_t(k)].batch == 16);
        const double factor = k < 4 ? 16.0 * k / 64 : 1.0 - (16.0 * k - 64) / (640 - 64);
        CHECK(plain[std::size_t(k)].lr == doctest::Approx(1e-3 * factor).epsilon(1e-6));
    }
    // dropout in pretraining (bert-original, izsak): the same data and seed give other losses, and the same
    // ones again on a second run (the masks are keyed by seed and micro-step)
    const auto dropped = run(0.1f, 3), again = run(0.1f, 3);
    CHECK(dropped[1].loss != plain[1].loss);
    CHECK(dropped[1].loss == again[1].loss);
    CHECK(dropped[2].loss == again[2].loss);
}
