// Budget policy against the formulas written out by hand: durations, the learning-rate schedules at
// chosen progress values, and the batch ramp (micro-batch multiples reaching the target at ramp_end).
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/train/budget.hpp"
#include "cram/train/recipe.hpp"
#include "cram/train/schedule.hpp"
#include "test_support.hpp"

using namespace cram::train;

namespace {
using cram::test::error_of;
}  // namespace

TEST_CASE("durations parse as written") {
    CHECK(parse_duration("24h") == 86400.0);
    CHECK(parse_duration("90m") == 5400.0);
    CHECK(parse_duration("45s") == 45.0);
    CHECK(parse_duration("1h30m") == 5400.0);
    CHECK(parse_duration("1d2h") == 93600.0);
    CHECK(parse_duration("2.5h") == 9000.0);
    CHECK(parse_duration("1500ms") == 1.5);
    CHECK(parse_duration("30") == 30.0);
    CHECK(error_of([] { parse_duration(""); }).find("empty duration") != std::string::npos);
    CHECK(error_of([] { parse_duration("10x"); }).find("unknown unit 'x'") != std::string::npos);
    CHECK(error_of([] { parse_duration("h"); }).find("bad duration 'h'") != std::string::npos);
    CHECK(error_of([] { parse_duration("-5m"); }).find("bad duration '-5m'") != std::string::npos);
    CHECK(error_of([] { parse_duration("0s"); }).find("must be positive") != std::string::npos);
    CHECK(error_of([] { parse_duration("1h30"); }).find("needs a unit") != std::string::npos);
    CHECK(format_duration(42.25) == "42.2s");
    CHECK(format_duration(125) == "2:05");
    CHECK(format_duration(86400) == "24:00:00");
}

TEST_CASE("budget clock: progress, resume offset, start-up counted") {
    double t = 100;
    budget_clock c(50, [&] { return t; }, 90);  // started 10 s before the first reading
    CHECK(c.elapsed() == 10);
    CHECK(c.progress() == doctest::Approx(0.2));
    c.add_spent(20);  // a resumed run: 20 s already spent
    CHECK(c.elapsed() == 30);
    t = 120;
    CHECK(c.elapsed() == 50);
    CHECK(c.expired());
    CHECK(c.progress() == 1.0);
    CHECK(c.progress_at(75) == 1.0);
}

TEST_CASE("budget clock pinned to another rank's time in its process: the same decisions from other origins") {
    // two ranks: time sources with unrelated origins, started at different moments, one checkpoint's spent time
    double t0 = 1000, t1 = 5;
    budget_clock root(100, [&] { return t0; }, 990.0), other(100, [&] { return t1; }, 2.0);
    root.add_spent(30);
    other.add_spent(30);
    const double agreed = root.live_this_process();  // 10 s into rank 0's process
    CHECK(agreed == 10);
    CHECK(other.live_this_process() == 3);
    root.pin_this_process(agreed);
    other.pin_this_process(agreed);
    t0 += 50, t1 += 7;  // the sources move on; pinned clocks do not until the next agreement
    for (const budget_clock* c : {&root, &other}) {
        CHECK(c->this_process() == 10);
        CHECK(c->elapsed() == 40);
        CHECK(c->progress() == doctest::Approx(0.4));
        CHECK(c->remaining() == 60);
        CHECK_FALSE(c->expired());
    }
    CHECK(root.live_this_process() == 60);
    other.pin_this_process(70);
    CHECK(other.expired());  // 30 spent + 70 here
}

TEST_CASE("budget-triangle2 is min(0.25 + p, 4 (1 - p))") {
    const lr_schedule s = lr_schedule::budget_triangle2();
    const double ps[] = {0.0, 0.1, 0.25, 0.5, 0.7, 0.75, 0.8, 0.9, 0.99, 1.0};
    for (double p : ps) {
        INFO("p = " << p);
        CHECK(s(p) == doctest::Approx(std::min(0.25 + p, 4 * (1 - p))).epsilon(1e-12));
    }
    // hand values: start at a quarter, peak 1 at p = 0.75, zero at the end
    CHECK(s(0) == doctest::Approx(0.25));
    CHECK(s(0.75) == doctest::Approx(1.0));
    CHECK(s(0.9) == doctest::Approx(0.4));
    CHECK(s(1) == doctest::Approx(0.0));
    CHECK(s(1.5) == doctest::Approx(0.0));  // clamped
}

TEST_CASE("one-cycle, linear and cosine") {
    const lr_schedule oc = lr_schedule::one_cycle();
    CHECK(oc(0) == doctest::Approx(0));
    CHECK(oc(0.25) == doctest::Approx(0.5));
    CHECK(oc(0.5) == doctest::Approx(1));
    CHECK(oc(0.75) == doctest::Approx(0.5));
    CHECK(oc(1) == doctest::Approx(0));
    const lr_schedule lin = lr_schedule::linear();
    CHECK(lin(0) == doctest::Approx(1));
    CHECK(lin(0.3) == doctest::Approx(0.7));
    CHECK(lin(1) == doctest::Approx(0));
    const lr_schedule lin_w = lr_schedule::linear(0.1);
    CHECK(lin_w(0.05) == doctest::Approx(0.5));
    CHECK(lin_w(0.55) == doctest::Approx(0.5));
    const lr_schedule cos0 = lr_schedule::cosine();
    CHECK(cos0(0) == doctest::Approx(1));
    CHECK(cos0(0.25) == doctest::Approx(0.5 * (1 + std::sqrt(0.5))));  // cos(pi/4) = 1/sqrt(2)
    CHECK(cos0(0.5) == doctest::Approx(0.5));
    CHECK(cos0(1) == doctest::Approx(0).epsilon(1e-12));
    const lr_schedule cos_w = lr_schedule::cosine(0.2);
    CHECK(cos_w(0.1) == doctest::Approx(0.5));
    CHECK(cos_w(0.6) == doctest::Approx(0.5));
}

TEST_CASE("polynomial-decay counts sequences: the original BERT's 10k warm-up steps of 1M at batch 512") {
    const lr_schedule s = lr_schedule::polynomial_decay();
    CHECK(s.counts_sequences());
    // hand values at batch 512: step k (0-based, the sequences before it: 512 k) -> k / 10000 during the
    // warm-up, then 1 - (k - 10000) / 990000
    CHECK(s(0.3, 0.0) == 0.0);                                    // HF's step 0: a factor of 0
    CHECK(s(0.3, 512.0 * 2'500) == doctest::Approx(0.25));
    CHECK(s(0.3, 512.0 * 10'000) == doctest::Approx(1.0));
    CHECK(s(0.3, 512.0 * 505'000) == doctest::Approx(0.5));      // 1 - 495000 / 990000
    CHECK(s(0.3, 512.0 * 1'000'000) == 0.0);
    CHECK(s(0.3, 512.0 * 2'000'000) == 0.0);
    // the budget does not enter: the same sequences give the same factor at any progress
    CHECK(s(0.0, 512.0 * 6'000) == s(0.99, 512.0 * 6'000));
    // power 2 on a small hand case: warm-up 10, total 110 sequences; at 60: (1 - 50/100)^2
    const lr_schedule q = lr_schedule::polynomial_decay(10, 110, 2);
    CHECK(q(0.5, 5) == doctest::Approx(0.5));
    CHECK(q(0.5, 60) == doctest::Approx(0.25));
    CHECK(q.parameters() == std::vector<std::pair<std::string, double>>{
                                {"warmup_sequences", 10}, {"total_sequences", 110}, {"power", 2}});
    // the budget shapes ignore the sequences
    CHECK(lr_schedule::budget_triangle2()(0.5, 1e9) == doctest::Approx(0.75));
    // an impossible shape is refused, naming the values
    const std::string msg = error_of([] { lr_schedule::polynomial_decay(100, 50).validate(); });
    CHECK(msg.find("polynomial-decay") != std::string::npos);
    CHECK(msg.find("100") != std::string::npos);
}

TEST_CASE("named recipes carry the original configs' values") {
    using namespace cram::train;
    const auto& c = find_recipe("crammed");
    CHECK(c.preset == "crammed_bert");
    CHECK(c.schedule.name() == "budget-triangle2");
    CHECK(c.adamw.lr == 1e-3f);
    CHECK(c.adamw.beta2 == 0.98f);
    CHECK(c.adamw.eps == 1e-12f);
    CHECK(c.adamw.clip_norm == 0.5f);
    CHECK(!c.batch_target);  // derived from the budget (8192 for 24 hours)
    CHECK(c.lr_from_budget);
    CHECK(c.ramp_end == 0.6);
    CHECK(c.mask_fraction == 0.25f);
    CHECK(c.dropout == 0.0f);

    const auto& o = find_recipe("bert-original");
    CHECK(o.preset == "bert_base");
    CHECK(o.adamw.lr == 1e-4f);
    CHECK(o.adamw.beta1 == 0.9f);
    CHECK(o.adamw.beta2 == 0.999f);
    CHECK(o.adamw.eps == 1e-8f);
    CHECK(o.adamw.weight_decay == 0.01f);
    CHECK(o.adamw.clip_norm == 0.0f);  // gradient_clipping: (none)
    CHECK(o.batch_target == 512);
    CHECK(o.ramp_end == 0.0);          // a fixed batch from the first step
    CHECK(o.mask_fraction == 0.15f);
    CHECK(o.dropout == 0.1f);
    CHECK(o.attention_dropout == 0.1f);
    // the cramming code's 80,000 warm-up and 8,000,000 total micro-batches of 64, in sequences
    CHECK(o.schedule.name() == "polynomial-decay");
    CHECK(o.schedule.warmup_sequences == 80'000.0 * 64);
    CHECK(o.schedule.total_sequences == 8'000'000.0 * 64);
    CHECK(o.schedule.power == 1.0);

    const auto& z = find_recipe("izsak");
    CHECK(z.preset == "bert_large_izsak");
    CHECK(z.adamw.lr == 2e-3f);
    CHECK(z.adamw.eps == 1e-6f);
    CHECK(z.adamw.beta2 == 0.98f);
    CHECK(z.adamw.weight_decay == 0.01f);
    CHECK(z.adamw.clip_norm == 0.0f);
    CHECK(z.batch_target == 4096);
    CHECK(z.mask_fraction == 0.15f);
    CHECK(z.dropout == 0.1f);
    // 6% warm-up, then linear to 0 at the budget: hand values
    CHECK(z.schedule.name() == "linear");
    CHECK(z.schedule(0.03) == doctest::Approx(0.5));
    CHECK(z.schedule(0.06) == doctest::Approx(1.0));
    CHECK(z.schedule(0.53) == doctest::Approx(0.5));  // (1 - 0.53) / 0.94
    CHECK(z.schedule(1.0) == doctest::Approx(0.0));

    const std::string msg = error_of([] { find_recipe("roberta"); });
    CHECK(msg.find("'roberta'") != std::string::npos);
    CHECK(msg.find("crammed, bert-original, izsak") != std::string::npos);
}

TEST_CASE("schedule names: parse gives each shape its defaults; unknown names list the choices") {
    CHECK(lr_schedule{}.name() == "budget-triangle2");  // the recipe's default
    for (const auto name : lr_schedule::names) CHECK(lr_schedule::parse(name).name() == name);
    // defaults written out: budget-triangle2 (0.25, 0.75), one-cycle peak 0.5, no warm-up for the decays
    CHECK(lr_schedule::parse("budget-triangle2")(0) == doctest::Approx(0.25));
    CHECK(lr_schedule::parse("budget-triangle2")(0.75) == doctest::Approx(1.0));
    CHECK(lr_schedule::parse("one-cycle")(0.5) == doctest::Approx(1.0));
    CHECK(lr_schedule::parse("linear")(0) == doctest::Approx(1.0));
    CHECK(lr_schedule::parse("cosine")(0) == doctest::Approx(1.0));
    // only the parameters a shape reads are named (they are what a checkpoint fingerprints)
    CHECK(lr_schedule::budget_triangle2().parameters().size() == 2);
    CHECK(lr_schedule::one_cycle(0.3).parameters() ==
          std::vector<std::pair<std::string, double>>{{"peak_at", 0.3}});
    CHECK(lr_schedule::cosine(0.2).parameters() == std::vector<std::pair<std::string, double>>{{"warmup", 0.2}});
    const std::string msg = error_of([] { lr_schedule::parse("step"); });
    CHECK(msg.find("'step'") != std::string::npos);
    CHECK(msg.find("budget-triangle2, one-cycle, linear, cosine, polynomial-decay") != std::string::npos);
}

TEST_CASE("batch ramp: whole micro-batches, 8192 at p = 0.6") {
    const batch_ramp r{512, 8192, 0.6};
    // s(p) = 512 + 7680 p / 0.6; accumulation = floor(s / 512)
    CHECK(r.accumulation(0) == 1);
    CHECK(r.accumulation(0.03) == 1);  // s = 896
    CHECK(r.accumulation(0.04) == 2);  // s = 1024 exactly
    CHECK(r.accumulation(0.3) == 8);   // s = 4352 -> 8.5
    CHECK(r.accumulation(0.59) == 15); // s = 8064 -> 15.75
    CHECK(r.accumulation(0.6) == 16);
    CHECK(r.accumulation(1.0) == 16);
    CHECK(r.sequences(0.6) == 8192);
    for (int i = 0; i <= 100; ++i) {
        const double p = i / 100.0;
        const double s = std::min(8192.0, 512 + 7680 * p / 0.6);
        INFO("p = " << p);
        CHECK(r.accumulation(p) == std::max(1, int(std::floor(s / 512 + 1e-9))));
        if (i > 0) CHECK(r.accumulation(p) >= r.accumulation(p - 0.01));  // never shrinks
    }
    const batch_ramp odd{3, 10, 0.5};
    CHECK(odd.final_accumulation() == 3);  // floor(10 / 3): 9 sequences
    CHECK(odd.accumulation(0.25) == 2);    // s = 3 + 7 * 0.5 = 6.5 -> 2
    const batch_ramp big_micro{64, 32, 0.6};
    CHECK(big_micro.accumulation(0.9) == 1);
    const batch_ramp instant{8, 64, 0.0};
    CHECK(instant.accumulation(0) == 8);
    CHECK(error_of([] { batch_ramp{0, 8, 0.5}.validate(); }).find("micro-batch must be positive") != std::string::npos);
    CHECK(error_of([] { batch_ramp{8, 8, 1.5}.validate(); }).find("ramp end") != std::string::npos);
}
