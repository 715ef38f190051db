// Budget-driven schedules: the learning-rate factor and the batch-size ramp as functions of budget
// progress p = elapsed / budget in [0, 1] (CRAMMING.md "Training recipe"), not of step counts, so the
// same recipe fits any budget. Each schedule is a policy type (the trainer is a template over it) with
// runtime parameters; the app maps --schedule names to the types.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>

#include "cram/core/error.hpp"

namespace cram::train {

// budget-triangle2 (the recipe's default): min(0.25 + p, 4 (1 - p)) for low = 0.25, peak_at = 0.75.
// In general: a linear rise from `low` at p = 0 to 1 at p = peak_at, then a linear fall to 0 at p = 1.
struct budget_triangle2 {
    static constexpr const char* name = "budget-triangle2";
    double low = 0.25;
    double peak_at = 0.75;
    double operator()(double p) const {
        p = std::clamp(p, 0.0, 1.0);
        const double up = low + (1.0 - low) * p / peak_at;
        const double down = (1.0 - p) / (1.0 - peak_at);
        return std::max(0.0, std::min(up, down));
    }
};

// One-cycle: a linear rise from 0 to 1 at p = peak_at, then a linear fall to 0 at p = 1.
struct one_cycle {
    static constexpr const char* name = "one-cycle";
    double peak_at = 0.5;
    double operator()(double p) const {
        p = std::clamp(p, 0.0, 1.0);
        return p < peak_at ? p / peak_at : (1.0 - p) / (1.0 - peak_at);
    }
};

// Linear: optional linear warm-up over [0, warmup], then a linear decay from 1 to 0 at p = 1.
struct linear_decay {
    static constexpr const char* name = "linear";
    double warmup = 0.0;
    double operator()(double p) const {
        p = std::clamp(p, 0.0, 1.0);
        if (p < warmup) return p / warmup;
        return warmup >= 1.0 ? 1.0 : (1.0 - p) / (1.0 - warmup);
    }
};

// Cosine: optional linear warm-up over [0, warmup], then 0.5 (1 + cos(pi (p - warmup) / (1 - warmup))).
struct cosine_decay {
    static constexpr const char* name = "cosine";
    double warmup = 0.0;
    double operator()(double p) const {
        p = std::clamp(p, 0.0, 1.0);
        if (p < warmup) return p / warmup;
        if (warmup >= 1.0) return 1.0;
        const double pi = 3.14159265358979323846;
        return 0.5 * (1.0 + std::cos(pi * (p - warmup) / (1.0 - warmup)));
    }
};

// The batch ramp: sequences per optimizer step grow linearly from one micro-batch at p = 0 to `target`
// at p = ramp_end, in whole micro-batches (gradient accumulation):
//   s(p) = m + (T - m) min(1, p / ramp_end),  accumulation(p) = max(1, floor(s(p) / m)).
// A target that is not a multiple of the micro-batch is reached as floor(T / m) micro-batches.
struct batch_ramp {
    int micro_batch = 1;
    int target = 8192;
    double ramp_end = 0.6;

    void validate() const {
        CRAM_CHECK(micro_batch > 0, "the micro-batch must be positive, got ", micro_batch);
        CRAM_CHECK(target > 0, "the batch target must be positive, got ", target, " sequences");
        CRAM_CHECK(ramp_end >= 0 && ramp_end <= 1, "the ramp end must be a budget fraction in [0, 1], got ", ramp_end);
    }
    int final_accumulation() const { return std::max(1, target / micro_batch); }
    int accumulation(double p) const {
        const int last = final_accumulation();
        if (p >= ramp_end) return last;
        p = std::max(0.0, p);
        const double m = micro_batch;
        const double s = m + (double(target) - m) * (p / ramp_end);
        // the small epsilon keeps exact multiples (s / m = 16 computed as 15.999999) from rounding down
        const int a = static_cast<int>(std::floor(s / m + 1e-9));
        return std::clamp(a, 1, last);
    }
    int sequences(double p) const { return accumulation(p) * micro_batch; }
};

}  // namespace cram::train
