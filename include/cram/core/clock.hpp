// The library's one clock: monotonic seconds as a double (std::chrono::steady_clock, which never jumps
// when the wall clock is adjusted, so budgets, ETAs and rates stay right), and a stopwatch over it for
// the "how long did this phase take" measurements.
#pragma once

#include <chrono>

namespace cram {

// Seconds since an arbitrary fixed point; only differences mean anything.
inline double steady_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds since construction (or the last restart).
class stopwatch {
public:
    stopwatch() : start_(steady_seconds()) {}
    double seconds() const { return steady_seconds() - start_; }
    void restart() { start_ = steady_seconds(); }

private:
    double start_;
};

}  // namespace cram
