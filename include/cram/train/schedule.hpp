// Budget-driven schedules: the learning-rate factor and the batch-size ramp as functions of budget
// progress p = elapsed / budget in [0, 1] (CRAMMING.md "Training recipe"), not of step counts, so the
// same recipe fits any budget. The schedule is a runtime value (lr_schedule), not a policy type: the
// trainer is instantiated once per model and backend, whichever schedule the command line names.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cram/core/error.hpp"

namespace cram::train {

// The learning-rate factor in [0, 1] that scales the peak learning rate. Four shapes, each with its own
// parameters; the others are ignored (and are not part of the training fingerprint):
//   budget-triangle2 (the recipe's default): a linear rise from `low` at p = 0 to 1 at p = peak_at, then a
//     linear fall to 0 at p = 1; with low = 0.25, peak_at = 0.75 it is min(0.25 + p, 4 (1 - p)).
//   one-cycle: a linear rise from 0 to 1 at p = peak_at, then a linear fall to 0 at p = 1.
//   linear: an optional linear warm-up over [0, warmup], then a linear decay from 1 to 0 at p = 1.
//   cosine: an optional linear warm-up over [0, warmup], then 0.5 (1 + cos(pi (p - warmup) / (1 - warmup))).
struct lr_schedule {
    enum class shape { budget_triangle2, one_cycle, linear, cosine };

    shape kind = shape::budget_triangle2;
    double low = 0.25;      // budget-triangle2
    double peak_at = 0.75;  // budget-triangle2, one-cycle
    double warmup = 0.0;    // linear, cosine

    // The names --schedule accepts, in the order they are listed to users.
    static constexpr std::array<std::string_view, 4> names{"budget-triangle2", "one-cycle", "linear", "cosine"};

    static constexpr lr_schedule budget_triangle2(double low = 0.25, double peak_at = 0.75) {
        return {shape::budget_triangle2, low, peak_at, 0.0};
    }
    static constexpr lr_schedule one_cycle(double peak_at = 0.5) { return {shape::one_cycle, 0.25, peak_at, 0.0}; }
    static constexpr lr_schedule linear(double warmup = 0.0) { return {shape::linear, 0.25, 0.75, warmup}; }
    static constexpr lr_schedule cosine(double warmup = 0.0) { return {shape::cosine, 0.25, 0.75, warmup}; }

    // A name of `names` with that shape's default parameters; anything else throws, listing the names.
    static lr_schedule parse(std::string_view name) {
        if (name == names[0]) return budget_triangle2();
        if (name == names[1]) return one_cycle();
        if (name == names[2]) return linear();
        if (name == names[3]) return cosine();
        CRAM_THROW("unknown learning-rate schedule '", std::string(name), "' (", names_text(), ")");
    }
    static std::string names_text() {
        std::string s;
        for (const auto n : names) s += (s.empty() ? "" : ", ") + std::string(n);
        return s;
    }

    std::string_view name() const { return names[static_cast<std::size_t>(kind)]; }

    // The parameters this shape reads, by name: what a checkpoint fingerprints, so that changing one of
    // them refuses a resume while an unused one does not matter.
    std::vector<std::pair<std::string, double>> parameters() const {
        switch (kind) {
            case shape::budget_triangle2: return {{"low", low}, {"peak_at", peak_at}};
            case shape::one_cycle: return {{"peak_at", peak_at}};
            case shape::linear:
            case shape::cosine: return {{"warmup", warmup}};
        }
        return {};
    }

    double operator()(double p) const {
        p = std::clamp(p, 0.0, 1.0);
        switch (kind) {
            case shape::budget_triangle2: {
                const double up = low + (1.0 - low) * p / peak_at;
                const double down = (1.0 - p) / (1.0 - peak_at);
                return std::max(0.0, std::min(up, down));
            }
            case shape::one_cycle: return p < peak_at ? p / peak_at : (1.0 - p) / (1.0 - peak_at);
            case shape::linear:
                if (p < warmup) return p / warmup;
                return warmup >= 1.0 ? 1.0 : (1.0 - p) / (1.0 - warmup);
            case shape::cosine: {
                if (p < warmup) return p / warmup;
                if (warmup >= 1.0) return 1.0;
                const double pi = 3.14159265358979323846;
                return 0.5 * (1.0 + std::cos(pi * (p - warmup) / (1.0 - warmup)));
            }
        }
        return 0.0;
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
