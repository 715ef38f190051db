// The budget-scaled recipe (cram/train/plan.hpp) against hand-worked values: the batch-target rule (the
// 24-hour reference case gives the recipe's 8192), the end-of-budget cap, the plan's arithmetic, the trainer's
// derivation after its warm-up (and a resume that keeps it), and a step the budget ends inside, applied as
// the AdamW update computed here by hand from the model's gradients.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cram/cpu/backend.hpp"
#include "cram/model/batch_upload.hpp"
#include "cram/train/plan.hpp"
#include "cram/train/trainer.hpp"
#include "test_support.hpp"
#include "train_fixtures.hpp"

using namespace cram;
using namespace cram::train;
namespace fs = std::filesystem;

namespace {
constexpr bert_config small = test::small_model;
using cpu_backend = cpu::backend<float>;
using model_t = bert<small, cpu_backend>;

// budget-triangle2 written out: min(0.25 + p, 4 (1 - p)).
double triangle(double p) { return std::min(0.25 + p, 4 * (1 - p)); }
}  // namespace

TEST_CASE("the batch-target rule: the reference case is the recipe, others scale as the power law") {
    recipe_scaling r;  // the shipped constants
    // 24 h on the paper's GPU: 10e9 / 128 = 78,125,000 sequences -> exactly the recipe's 8192, any micro-batch
    CHECK(r.target_for(78'125'000, 512) == 8192);
    CHECK(r.target_for(78'125'000, 8) == 8192);
    CHECK(r.target_for(78'125'000, 1000) == 8000);  // 8.192 micro-batches round to 8
    // more data than the reference: never above 8192
    CHECK(r.target_for(1e12, 512) == 8192);
    // never below one micro-batch
    CHECK(r.target_for(1, 8) == 8);
    CHECK(r.target_for(0, 8) == 8);
    CHECK(r.target_for(1e6, 16384) == 16384);  // a micro-batch above the reference target is the batch

    // hand-worked with exponent 1/2 and a reference of 6400 sequences at target 64:
    recipe_scaling h;
    h.reference_sequences = 6400;
    h.reference_target = 64;
    h.exponent = 0.5;
    CHECK(h.target_for(1600, 4) == 32);     // 64 * sqrt(1/4) = 32
    CHECK(h.target_for(100, 4) == 8);       // 64 * sqrt(1/64) = 8
    CHECK(h.target_for(900, 4) == 24);      // 64 * 0.375 = 24
    CHECK(h.target_for(1000, 4) == 24);     // 64 * 0.3953 = 25.30 -> 6.32 micro-batches -> 6 -> 24
    CHECK(h.target_for(1200, 4) == 28);     // 64 * 0.4330 = 27.71 -> 6.93 -> 7 -> 28
    CHECK(h.target_for(25600, 4) == 64);    // 64 * 2 = 128, held at the reference target
    // the learning-rate rule: the recipe's rate at the reference target, scaled below it, capped
    h.reference_lr = 1e-3f;
    h.lr_exponent = 0.5;
    h.max_lr = 3e-3f;
    CHECK(h.lr_for(64) == doctest::Approx(1e-3));
    CHECK(h.lr_for(16) == doctest::Approx(2e-3));  // 1e-3 * sqrt(64 / 16)
    CHECK(h.lr_for(4) == doctest::Approx(3e-3));   // 4e-3, capped
    h.lr_exponent = 0;
    CHECK(h.lr_for(4) == doctest::Approx(1e-3));
}

TEST_CASE("derive_recipe keeps what the user set and derives the rest") {
    recipe_scaling h;
    h.reference_sequences = 6400;
    h.reference_target = 64;
    h.exponent = 0.5;
    h.lr_exponent = 1;
    h.max_lr = 1;
    auto d = derive_recipe(h, 1600, 4, std::nullopt, std::nullopt);
    CHECK(d.batch_target == 32);
    CHECK(d.target_derived);
    CHECK(d.lr == doctest::Approx(2e-3));  // 1e-3 * (64 / 32)^1
    d = derive_recipe(h, 1600, 4, 48, 5e-4f);
    CHECK(d.batch_target == 48);
    CHECK(d.lr == 5e-4f);
    CHECK_FALSE(d.target_derived);
    CHECK_FALSE(d.lr_derived);
}

TEST_CASE("the end-of-budget cap leaves no accumulation that the budget cannot finish") {
    CHECK(accumulation_that_fits(8, 10.0, 1.0) == 8);   // room for 10
    CHECK(accumulation_that_fits(8, 3.0, 1.0) == 3);    // room for exactly 3
    CHECK(accumulation_that_fits(8, 2.9, 1.0) == 2);
    CHECK(accumulation_that_fits(8, 0.4, 1.0) == 1);    // always at least one micro-step
    CHECK(accumulation_that_fits(8, 0.4, 0.0) == 8);    // micro-step time unknown: no cap
    CHECK(accumulation_that_fits(4, 0.75, 0.25) == 3);  // 0.75 / 0.25 = 3 exactly
}

TEST_CASE("the warm-up policy: enough timed micro-steps and enough of the budget") {
    warmup_policy w;  // 4 timed micro-steps, 1% of the budget, at most 120 s
    CHECK_FALSE(w.done(3, 50, 1000));
    CHECK_FALSE(w.done(4, 9.9, 1000));
    CHECK(w.done(4, 10, 1000));
    CHECK(w.done(4, 120, 86400));  // 1% of a day is 864 s: capped at 120
    CHECK_FALSE(w.done(100, 119, 86400));
}

TEST_CASE("plan_run: hand-worked runs") {
    SUBCASE("fixed target from the start: 10 steps of 4 micro-steps, checkpoints every 3 s") {
        plan_inputs in;
        in.budget_s = 10;
        in.sequences_per_s = 4;  // micro-batch 1: 0.25 s per micro-step
        in.micro_batch = 1;
        in.batch_target = 4;
        in.lr = 1e-3f;
        in.ramp_end = 0;
        in.checkpoint_every_s = 3;
        in.dataset_sequences = 20;
        const auto p = plan_run(in);
        CHECK(p.steps == 10);
        CHECK(p.micro_steps == 40);
        CHECK(p.sequences == 40);
        CHECK(p.tokens == 40 * 128);
        CHECK(p.passes == doctest::Approx(2.0));
        REQUIRE(p.checkpoint_times.size() == 4);
        CHECK(p.checkpoint_times[0] == doctest::Approx(3));
        CHECK(p.checkpoint_times[1] == doctest::Approx(6));
        CHECK(p.checkpoint_times[2] == doctest::Approx(9));
        CHECK(p.checkpoint_times[3] == doctest::Approx(10));
        REQUIRE(p.curve.size() == 11);
        CHECK(p.curve[5].progress == doctest::Approx(0.5));
        CHECK(p.curve[5].lr == doctest::Approx(1e-3 * 0.75));
        CHECK(p.curve[5].batch == 4);
        CHECK(p.curve[10].lr == doctest::Approx(0));
    }
    SUBCASE("a target that does not divide the budget: the last step is cut to what fits") {
        plan_inputs in;
        in.budget_s = 10;
        in.sequences_per_s = 4;
        in.micro_batch = 1;
        in.batch_target = 3;  // 0.75 s steps: 13 of them end at 9.75, then one micro-step fits
        in.lr = 1e-3f;
        in.ramp_end = 0;
        const auto p = plan_run(in);
        CHECK(p.steps == 14);
        CHECK(p.micro_steps == 40);
        CHECK(p.checkpoint_times.back() == doctest::Approx(10));
    }
    SUBCASE("derived target: the warm-up measures, then the rule") {
        plan_inputs in;
        in.budget_s = 1000;
        in.sequences_per_s = 8;  // micro-batch 8: 1 s per micro-step
        in.micro_batch = 8;
        in.scaling.reference_sequences = 6400 * 4;
        in.scaling.reference_target = 128;
        in.scaling.exponent = 0.5;
        const auto p = plan_run(in);
        // warm-up: 1% of 1000 s = 10 s and 4 timed micro-steps: at t = 10 (10 micro-steps, 9 timed after the
        // first ended at t = 1): rate 9 * 8 / 9 = 8 sequences/s, projected 80 + 8 * 990 = 8000 sequences;
        // target 128 * sqrt(8000 / 25600) = 71.55 -> 8.94 micro-batches -> 9 -> 72
        CHECK(p.recipe.at_elapsed == doctest::Approx(10));
        CHECK(p.recipe.sequences_per_s == doctest::Approx(8));
        CHECK(p.recipe.projected_sequences == doctest::Approx(8000));
        CHECK(p.recipe.batch_target == 72);
        CHECK(p.recipe.target_derived);
        CHECK(p.sequences == 8000);  // 1000 micro-steps, none lost
        CHECK(p.curve.back().batch == 72);
        CHECK_FALSE(p.ends_inside_warmup);
    }
    SUBCASE("a budget shorter than the warm-up keeps one micro-batch") {
        plan_inputs in;
        in.budget_s = 3;
        in.sequences_per_s = 8;
        in.micro_batch = 8;
        const auto p = plan_run(in);
        CHECK(p.ends_inside_warmup);
        CHECK(p.steps == 3);
        CHECK(p.recipe.batch_target == 8);
    }
}

TEST_CASE("the trainer derives the target after its warm-up, and a resume keeps it") {
    // 0.25 s per micro-step, micro-batch 4, budget 100 s. The warm-up ends at the first step boundary with 4
    // timed micro-steps and 1 s of process time: after micro-step 5 (t = 1.25; timing from t = 0.25):
    // rate 4 * 4 / 1.0 = 16 sequences/s, projected 20 + 16 * 98.75 = 1600 sequences;
    // target 64 * sqrt(1600 / 6400) = 32.
    auto options = [](const fs::path& dir) {
        trainer_options o;
        o.ramp = {4, 4, 0.6};
        o.out = dir;
        o.quiet = true;
        o.val_batches = 0;
        o.checkpoint_every = 0;
        o.derive_batch_target = true;
        o.derive_lr = true;
        o.scaling.reference_sequences = 6400;
        o.scaling.reference_target = 64;
        o.scaling.exponent = 0.5;
        o.scaling.lr_exponent = 0.5;  // lr 1e-3 * sqrt(64 / T): 4e-3 at one micro-batch, 1.414e-3 at 32
        o.scaling.max_lr = 1;
        return o;
    };
    const double budget = 100;
    std::vector<double> full;
    std::vector<int> batches;
    std::vector<double> lrs;
    {
        const auto dir = test::scratch_dir("recipe_derive_full");
        auto data = test::pattern_source(99);
        test::step_clock sc;
        budget_clock clock(budget, sc.source());
        trainer_observers obs;
        obs.after_micro_step = [&] { sc.tick(); };
        obs.on_step = [&](const step_record& r) {
            full.push_back(r.loss);
            batches.push_back(r.batch);
            lrs.push_back(r.lr);
        };
        cpu_backend::context ctx;
        mlm_trainer<small, cpu_backend> t(ctx, data, options(dir), clock, {}, nullptr, obs);
        const auto res = t.run();
        REQUIRE(t.recipe_derived());
        CHECK(t.recipe().at_elapsed == 1.25);
        CHECK(t.recipe().sequences_per_s == doctest::Approx(16));
        CHECK(t.recipe().projected_sequences == doctest::Approx(1600));
        CHECK(t.recipe().batch_target == 32);
        CHECK(t.peak_lr() == doctest::Approx(1e-3 * std::sqrt(2.0)));
        CHECK(t.recipe().lr_derived);
        CHECK(res.recipe["batch_target"] == 32);
        CHECK(res.sequences == 1600);  // 400 micro-steps: the budget ended on a step boundary
        CHECK(batches.front() == 4);
        CHECK(lrs.front() == doctest::Approx(4e-3 * (0.25 + 0.0025)));  // lr_for(4) x triangle(p = 0.25 / 100)
        CHECK(batches[size_t(batches.size()) / 2] > 4);
        // the derivation is in the metrics
        std::ifstream in(dir / "metrics.jsonl");
        std::string line;
        int derived_events = 0;
        while (std::getline(in, line))
            if (line.find("\"event\":\"derived\"") != std::string::npos) ++derived_events;
        CHECK(derived_events == 1);
    }
    // the same run interrupted after the derivation, then resumed: the same losses, step for step
    std::vector<double> resumed;
    const auto dir = test::scratch_dir("recipe_derive_split");
    for (int part = 0; part < 2; ++part) {
        auto data = test::pattern_source(99);
        test::step_clock sc;
        budget_clock clock(budget, sc.source());
        auto o = options(dir);
        if (part == 0) o.max_steps = 40;
        o.resume = part == 1;
        trainer_observers obs;
        obs.after_micro_step = [&] { sc.tick(); };
        obs.on_step = [&](const step_record& r) { resumed.push_back(r.loss); };
        cpu_backend::context ctx;
        mlm_trainer<small, cpu_backend> t(ctx, data, o, clock, {}, nullptr, obs);
        t.run();
        CHECK(t.ramp().target == 32);
    }
    REQUIRE(resumed.size() == full.size());
    for (std::size_t i = 0; i < full.size(); ++i) CHECK(resumed[i] == full[i]);
}

TEST_CASE("a step the budget ends inside is applied as the mean of its micro-batches") {
    // Micro-batch 4, two per step. Micro-steps take 0.25, 0.25 and then 1.0 s; the budget is 1.2 s. Step 1
    // (two micro-steps) ends at 0.5 s; at the measured 0.25 s per micro-step two more fit, but the third
    // micro-step takes 1.0 s and the budget ends inside step 2 after one of its two micro-batches. Step 2 must
    // then be AdamW (step index 2) on that micro-batch's gradient, at the learning rate of the step's start.
    const auto dir = test::scratch_dir("recipe_partial_step");
    trainer_options o;
    o.ramp = {4, 8, 0.0};
    o.out = dir;
    o.quiet = true;
    o.val_batches = 0;
    o.checkpoint_every = 0;
    // no clipping: a clipped gradient has the clip's norm whatever its scale, which would hide a wrong rescale
    o.adamw.clip_norm = 0;
    const double budget = 1.2;
    const std::vector<double> durations{0.25, 0.25, 1.0};

    std::vector<float> trained;
    std::vector<step_record> records;
    {
        auto data = test::pattern_source(5);
        double t = 0;
        std::size_t i = 0;
        budget_clock clock(budget, [&t] { return t; });
        trainer_observers obs;
        obs.after_micro_step = [&] { t += durations.at(i++); };
        obs.on_step = [&](const step_record& r) { records.push_back(r); };
        cpu_backend::context ctx;
        mlm_trainer<small, cpu_backend> tr(ctx, data, o, clock, {}, nullptr, obs);
        const auto res = tr.run();
        CHECK(res.steps == 2);
        CHECK(res.micro_steps == 3);
        trained.resize(tr.state().size());
        tr.state().store_params(trained.data());
    }
    REQUIRE(records.size() == 2);
    CHECK_FALSE(records[0].partial_step);
    CHECK(records[1].partial_step);
    CHECK(records[1].batch == 4);

    // By hand: the same initial parameters and batches; gradients from the model, the update in double.
    cpu_backend::context ctx;
    training_state<cpu_backend> st(ctx, model_t::layout());
    st.init(o.seed, o.model.init_std, small.hidden, o.model.pad_id);
    model_t model(ctx, bind_bert<small, cpu_backend>(st), 4, small.max_seq, o.model.pad_id);
    batch_upload<cpu_backend> upload(ctx);
    auto data = test::pattern_source(5);
    const std::size_t n = st.size();
    const std::size_t decay_end = model_t::layout().decay_end();
    std::vector<float> p(n);
    st.store_params(p.data());
    std::vector<double> pd(p.begin(), p.end()), m(n, 0.0), v(n, 0.0);
    auto gradient_of = [&](int micro_batches) {
        st.load_params(p.data());
        st.zero_grads();
        for (int k = 0; k < micro_batches; ++k)
            model.mlm_forward_backward(upload(data.next_batch(4, o.seed)), forward_options{0.0f, 0}, 1.0f);
        (void)model.take_mlm_loss();
        std::vector<double> g(st.grads(), st.grads() + n);
        for (auto& x : g) x /= micro_batches;  // the mean over the step's micro-batches
        return g;
    };
    auto adamw = [&](const std::vector<double>& g, double lr, int step) {
        const double b1 = 0.9, b2 = 0.98, eps = 1e-12, wd = 0.01;
        const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
        for (std::size_t i = 0; i < n; ++i) {
            const double gi = g[i];
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            if (i < decay_end) pd[i] -= lr * wd * pd[i];
            pd[i] -= lr * (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
        }
        for (std::size_t i = 0; i < n; ++i) p[i] = float(pd[i]);
    };
    const double p_step1 = 0.5 / budget;  // both steps are timed from t = 0.5: step 1's end, step 2's start
    adamw(gradient_of(2), 1e-3 * triangle(p_step1), 1);
    CHECK(records[0].lr == doctest::Approx(1e-3 * triangle(p_step1)));
    CHECK(records[1].lr == doctest::Approx(1e-3 * triangle(p_step1)));
    adamw(gradient_of(1), 1e-3 * triangle(p_step1), 2);

    double worst = 0, moved = 0;
    std::vector<float> initial(n);
    {
        training_state<cpu_backend> fresh(ctx, model_t::layout());
        fresh.init(o.seed, o.model.init_std, small.hidden, o.model.pad_id);
        fresh.store_params(initial.data());
    }
    for (std::size_t i = 0; i < n; ++i) {
        worst = std::max(worst, std::abs(double(trained[i]) - pd[i]));
        moved = std::max(moved, std::abs(double(trained[i]) - initial[i]));
    }
    MESSAGE("largest difference from the hand update " << worst << ", largest parameter change " << moved);
    CHECK(moved > 1e-4);    // the steps did move the parameters
    CHECK(worst < 2e-6);    // and exactly as by hand (float rounding only)
}
