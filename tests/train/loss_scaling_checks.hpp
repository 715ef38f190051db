// What a run trained at a loss scale forced past the 16-bit range must show, on any backend (the CPU's emulated
// fp16 in tests/train, the GPU's fp16 in tests/cuda): each step record carries the scale it ran with; an overflow
// step is skipped and halves the scale (no growth within the run: growth_interval is larger than it); applied
// steps have finite numbers; the opening streak of overflows outlasts max_bad_steps (5) without stopping the run;
// the summary counts what the records show, and the run learns after the scale fits.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "cram/train/metrics.hpp"
#include "cram/train/trainer.hpp"

namespace cram::test {

inline void check_forced_overflow_run(const std::vector<train::step_record>& steps, const train::train_result& result,
                                      double init_scale, std::int64_t applied_steps) {
    int overflows = 0, first_applied = -1;
    double expected_scale = init_scale;
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const auto& r = steps[i];
        CAPTURE(i);
        CHECK(r.loss_scale == expected_scale);  // each record carries the scale its step ran with
        if (r.overflow) {
            CHECK(r.skipped_step);
            ++overflows;
            expected_scale /= 2;  // no growth within the run
        } else {
            if (first_applied < 0) first_applied = int(i);
            CHECK(std::isfinite(r.loss));
            CHECK(std::isfinite(r.grad_norm));
        }
    }
    CHECK(first_applied > 5);  // the opening streak of overflows, all survived
    REQUIRE(first_applied >= 0);
    CHECK(result.steps == applied_steps);  // max_steps counts applied steps
    CHECK(result.skipped == overflows);
    CHECK(result.loss_scaler["overflows"] == overflows);
    CHECK(result.loss_scaler["scale"] == expected_scale);
    CHECK(std::isfinite(result.final_loss));
    CHECK(result.final_loss < steps[std::size_t(first_applied)].loss);  // and it learns
}

}  // namespace cram::test
