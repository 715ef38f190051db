// Budget-driven schedules: the learning-rate factor and the batch-size ramp as functions of budget
// progress p = elapsed / budget in [0, 1] (CRAMMING.md "Training recipe"), not of step counts, so the
// same recipe fits any budget. One shape is the exception on purpose: the original BERT's polynomial
// decay runs over a fixed amount of data (1M steps of 512 sequences) and is simply cut off where the
// budget ends, as the paper ran it ("the original recipe stopped at the budget"). The schedule is a runtime value (lr_schedule), not a policy type: the
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

// The learning-rate factor in [0, 1] that scales the peak learning rate. Five shapes, each with its own
// parameters; the others are ignored (and are not part of the training fingerprint):
//   budget-triangle2 (the recipe's default): a linear rise from `low` at p = 0 to 1 at p = peak_at, then a
//     linear fall to 0 at p = 1; with low = 0.25, peak_at = 0.75 it is min(0.25 + p, 4 (1 - p)).
//   one-cycle: a linear rise from 0 to 1 at p = peak_at, then a linear fall to 0 at p = 1.
//   linear: an optional linear warm-up over [0, warmup], then a linear decay from 1 to 0 at p = 1.
//   cosine: an optional linear warm-up over [0, warmup], then 0.5 (1 + cos(pi (p - warmup) / (1 - warmup))).
//   polynomial-decay: over the sequences s trained before the step, not over p: a linear warm-up to 1 at
//     s = warmup_sequences, then (1 - (s - w) / (total_sequences - w))^power down to 0 at total_sequences.
//     The defaults are the original BERT's 10,000 warm-up steps of 1,000,000 at batch 512 (the cramming
//     code's 80,000 and 8,000,000 micro-batches of 64), power 1; counting sequences keeps that independent of
//     the micro-batch. (Its library ends at a floor of 1e-7 rather than 0; no budget reaches that end.)
struct lr_schedule {
    enum class shape { budget_triangle2, one_cycle, linear, cosine, polynomial_decay };

    shape kind = shape::budget_triangle2;
    double low = 0.25;      // budget-triangle2
    double peak_at = 0.75;  // budget-triangle2, one-cycle
    double warmup = 0.0;    // linear, cosine
    double warmup_sequences = 10'000.0 * 512;     // polynomial-decay
    double total_sequences = 1'000'000.0 * 512;   // polynomial-decay
    double power = 1.0;                           // polynomial-decay

    // The names --schedule accepts, in the order they are listed to users.
    static constexpr std::array<std::string_view, 5> names{"budget-triangle2", "one-cycle", "linear", "cosine",
                                                           "polynomial-decay"};

    static constexpr lr_schedule budget_triangle2(double low = 0.25, double peak_at = 0.75) {
        return with(shape::budget_triangle2, [&](lr_schedule& s) { s.low = low; s.peak_at = peak_at; });
    }
    static constexpr lr_schedule one_cycle(double peak_at = 0.5) {
        return with(shape::one_cycle, [&](lr_schedule& s) { s.peak_at = peak_at; });
    }
    static constexpr lr_schedule linear(double warmup = 0.0) {
        return with(shape::linear, [&](lr_schedule& s) { s.warmup = warmup; });
    }
    static constexpr lr_schedule cosine(double warmup = 0.0) {
        return with(shape::cosine, [&](lr_schedule& s) { s.warmup = warmup; });
    }
    static constexpr lr_schedule polynomial_decay(double warmup_sequences = 10'000.0 * 512,
                                                  double total_sequences = 1'000'000.0 * 512, double power = 1.0) {
        return with(shape::polynomial_decay, [&](lr_schedule& s) {
            s.warmup_sequences = warmup_sequences;
            s.total_sequences = total_sequences;
            s.power = power;
        });
    }

    // A name of `names` with that shape's default parameters; anything else throws, listing the names.
    static lr_schedule parse(std::string_view name) {
        if (name == names[0]) return budget_triangle2();
        if (name == names[1]) return one_cycle();
        if (name == names[2]) return linear();
        if (name == names[3]) return cosine();
        if (name == names[4]) return polynomial_decay();
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
            case shape::polynomial_decay:
                return {{"warmup_sequences", warmup_sequences}, {"total_sequences", total_sequences}, {"power", power}};
        }
        return {};
    }

    // Whether the factor depends on the sequences trained rather than on budget progress alone.
    bool counts_sequences() const { return kind == shape::polynomial_decay; }

    void validate() const {
        if (kind != shape::polynomial_decay) return;
        CRAM_CHECK(warmup_sequences >= 0 && total_sequences > warmup_sequences && power > 0,
                   "polynomial-decay needs 0 <= warm-up sequences < total sequences and a positive power (got ",
                   warmup_sequences, ", ", total_sequences, ", ", power, ")");
    }

    // The factor at budget progress p after `sequences` trained sequences (what polynomial-decay reads).
    double operator()(double p, double sequences) const {
        if (kind != shape::polynomial_decay) return (*this)(p);
        const double s = std::max(0.0, sequences);
        if (s < warmup_sequences) return s / warmup_sequences;
        if (s >= total_sequences) return 0.0;
        return std::pow(1.0 - (s - warmup_sequences) / (total_sequences - warmup_sequences), power);
    }

    // The factor at budget progress p, for the shapes that follow the budget alone (polynomial-decay is
    // given no sequences here: it reads 0, the start of its warm-up; use the two-argument form for it).
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
            case shape::polynomial_decay: return (*this)(p, 0.0);
        }
        return 0.0;
    }

private:
    template <class Edit>
    static constexpr lr_schedule with(shape k, Edit edit) {
        lr_schedule s;
        s.kind = k;
        edit(s);
        return s;
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
