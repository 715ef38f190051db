// The wall-clock budget of the cramming rules: durations as users write them ("24h", "90m", "1h30m"),
// and a clock whose elapsed time includes start-up and survives a resume (a resumed run continues from
// the elapsed time stored in its checkpoint). Progress p = elapsed / budget drives the whole recipe.
#pragma once

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>

#include "cram/core/clock.hpp"
#include "cram/core/error.hpp"

namespace cram::train {

// The longest duration parse_duration accepts (1000 days): beyond it a budget is a typo, and times would
// no longer print.
inline constexpr double max_duration_seconds = 1000.0 * 86400;

// "24h", "90m", "45s", "1h30m", "1d", "2.5h", "1500ms" or a bare number of seconds -> seconds.
inline double parse_duration(std::string_view text) {
    const std::string original(text);
    CRAM_CHECK(!text.empty(), "empty duration: write e.g. 24h, 90m, 45s or 1h30m");
    double total = 0;
    bool any = false;
    std::size_t i = 0;
    while (i < text.size()) {
        std::size_t j = i;
        while (j < text.size() && (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '.')) ++j;
        if (j == i)
            CRAM_THROW("bad duration '", original, "' at '", text.substr(i),
                       "': write a number followed by d, h, m, s or ms, e.g. 24h, 90m, 45s or 1h30m");
        const std::string number(text.substr(i, j - i));
        char* end = nullptr;
        const double v = std::strtod(number.c_str(), &end);
        if (end != number.c_str() + number.size() || !std::isfinite(v))
            CRAM_THROW("bad number '", number, "' in duration '", original, "'");
        std::size_t k = j;
        while (k < text.size() && std::isalpha(static_cast<unsigned char>(text[k]))) ++k;
        const std::string_view unit = text.substr(j, k - j);
        double scale = 0;
        if (unit.empty()) {
            CRAM_CHECK(!any && k == text.size(), "bad duration '", original,
                       "': every number after the first needs a unit (d, h, m, s, ms)");
            scale = 1;
        } else if (unit == "d") {
            scale = 86400;
        } else if (unit == "h") {
            scale = 3600;
        } else if (unit == "m" || unit == "min") {
            scale = 60;
        } else if (unit == "s") {
            scale = 1;
        } else if (unit == "ms") {
            scale = 1e-3;
        } else {
            CRAM_THROW("unknown unit '", unit, "' in duration '", original, "' (use d, h, m, s or ms)");
        }
        total += v * scale;
        any = true;
        i = k;
    }
    CRAM_CHECK(total > 0, "duration '", original, "' must be positive");
    CRAM_CHECK(total <= max_duration_seconds, "duration '", original, "' is longer than 1000 days: surely a typo");
    return total;
}

// Seconds as "1:02:03" (h:mm:ss), "2:03" (m:ss), "4.2s" below a minute, "50d 04:05:06" from 1000 hours on.
inline std::string format_duration(double seconds) {
    if (!std::isfinite(seconds)) return "?";
    if (seconds < 0) seconds = 0;
    char buf[64];
    if (seconds >= 1e12) {  // beyond any budget; no integer conversion can overflow below this
        std::snprintf(buf, sizeof buf, "%.3g days", seconds / 86400);
    } else if (seconds >= 1000.0 * 3600) {
        const long long s = std::llround(seconds);
        std::snprintf(buf, sizeof buf, "%lldd %02lld:%02lld:%02lld", s / 86400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    } else if (seconds < 60) {
        std::snprintf(buf, sizeof buf, "%.1fs", seconds);
    } else {
        const long s = std::lround(seconds);
        if (s >= 3600)
            std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
        else
            std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
    }
    return buf;
}

// Where the budget clock reads seconds: cram::steady_seconds, or in tests a deterministic source so that
// runs are reproducible.
using time_source = std::function<double()>;

// Elapsed budget = time already spent before this process (restored from a checkpoint) + time since
// this clock started. Start the clock first thing, so allocation, data loading and warm-up count.
class budget_clock {
public:
    explicit budget_clock(double budget_seconds, time_source now = steady_seconds)
        : budget_(budget_seconds), now_(std::move(now)), start_(now_()) {
        CRAM_CHECK(budget_seconds > 0, "the budget must be positive, got ", budget_seconds, " s");
    }
    // A clock that started at `start` (a reading of `now` taken earlier, e.g. when the command began).
    budget_clock(double budget_seconds, time_source now, double start)
        : budget_(budget_seconds), now_(std::move(now)), start_(start) {
        CRAM_CHECK(budget_seconds > 0, "the budget must be positive, got ", budget_seconds, " s");
    }
    // On resume: the elapsed budget stored in the checkpoint counts as already spent.
    void add_spent(double seconds) { spent_before_ += seconds; }
    double spent_before() const { return spent_before_; }
    double budget() const { return budget_; }
    double elapsed() const { return spent_before_ + (now() - start_); }
    double this_process() const { return now() - start_; }
    double progress() const { return progress_at(elapsed()); }
    double progress_at(double elapsed_seconds) const {
        const double p = elapsed_seconds / budget_;
        return p < 0 ? 0 : (p > 1 ? 1 : p);
    }
    bool expired() const { return elapsed() >= budget_; }
    double remaining() const { return budget_ - elapsed(); }

    // Data-parallel ranks share one clock: at each of its agreement points the trainer pins every rank's
    // clock to rank 0's time in its process (time sources of different machines share no origin, and each
    // rank started at its own moment), so every decision taken from the clock until the next point (stop,
    // batch size, learning rate, checkpoint due) is the same on all ranks.
    double live_this_process() const { return now_() - start_; }
    void pin_this_process(double seconds) {
        pinned_ = start_ + seconds;
        is_pinned_ = true;
    }

private:
    double now() const { return is_pinned_ ? pinned_ : now_(); }

    double budget_;
    time_source now_;
    double start_;
    double spent_before_ = 0;
    double pinned_ = 0;
    bool is_pinned_ = false;
};

}  // namespace cram::train
