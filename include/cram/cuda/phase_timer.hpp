// Where a training step's GPU time goes, op by op: when enabled, every backend op (cuda/backend.hpp) records a
// CUDA event before and after its kernels on the context's stream; after a synchronisation, report() sums the
// elapsed times per op (and shape, for the matmuls). Off by default, and then it costs one branch per op. The
// events are pooled, so a profiled step allocates nothing after the first. Timing does not synchronise the
// stream inside a step; report() does, once. Used by bench_cuda_train's per-phase table.
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

#include "cram/core/platform.hpp"
#include "cram/cuda/error.hpp"

namespace cram::cuda {

class phase_timer {
public:
    struct total {
        std::string phase;
        long calls = 0;
        double ms = 0;
    };

    phase_timer() = default;
    phase_timer(const phase_timer&) = delete;
    phase_timer& operator=(const phase_timer&) = delete;
    ~phase_timer() {
        for (auto& r : records_) release(r);
        for (cudaEvent_t e : pool_) cudaEventDestroy(e);
    }

    bool enabled() const { return enabled_; }
    void enable(bool on) { enabled_ = on; }

    // Marks the start of a phase on the stream; end() closes the most recent open one.
    void begin(cudaStream_t stream, std::string phase) {
        record r{std::move(phase), take(), take()};
        CRAM_CUDA_CHECK(cudaEventRecord(r.begin, stream));
        records_.push_back(std::move(r));
    }
    // (noexcept: called from phase_scope's destructor; a failed record shows up as report()'s error)
    void end(cudaStream_t stream) noexcept { cudaEventRecord(records_.back().end, stream); }

    // Waits for the stream's recorded work, then returns the time per phase since the last report, largest
    // first, and forgets it.
    std::vector<total> report() {
        std::map<std::string, total> sums;
        for (auto& r : records_) {
            CRAM_CUDA_CHECK(cudaEventSynchronize(r.end));
            float ms = 0;
            CRAM_CUDA_CHECK(cudaEventElapsedTime(&ms, r.begin, r.end));
            total& t = sums[r.phase];
            t.phase = r.phase;
            ++t.calls;
            t.ms += ms;
            release(r);
        }
        records_.clear();
        std::vector<total> out;
        for (auto& [name, t] : sums) out.push_back(t);
        std::sort(out.begin(), out.end(), [](const total& a, const total& b) { return a.ms > b.ms; });
        return out;
    }

private:
    struct record {
        std::string phase;
        cudaEvent_t begin, end;
    };
    cudaEvent_t take() {
        if (!pool_.empty()) {
            cudaEvent_t e = pool_.back();
            pool_.pop_back();
            return e;
        }
        cudaEvent_t e = nullptr;
        CRAM_CUDA_CHECK(cudaEventCreate(&e));
        return e;
    }
    void release(record& r) {
        pool_.push_back(r.begin);
        pool_.push_back(r.end);
    }

    bool enabled_ = false;
    std::vector<record> records_;
    std::vector<cudaEvent_t> pool_;
};

// Times one backend op while the timer is on: `const phase_scope timed(ctx.phases, ctx.stream(), "add");`
// The matmuls add their shape ("linear_forward 768x2304"): the QKV, FFN and projection GEMMs apart.
class phase_scope {
public:
    phase_scope(phase_timer& t, cudaStream_t stream, const char* phase) : timer_(t.enabled() ? &t : nullptr), stream_(stream) {
        if (timer_) timer_->begin(stream, phase);
    }
    phase_scope(phase_timer& t, cudaStream_t stream, const char* phase, index_t in_f, index_t out_f)
        : timer_(t.enabled() ? &t : nullptr), stream_(stream) {
        if (timer_) timer_->begin(stream, std::string(phase) + " " + std::to_string(in_f) + "x" + std::to_string(out_f));
    }
    phase_scope(const phase_scope&) = delete;
    phase_scope& operator=(const phase_scope&) = delete;
    ~phase_scope() {
        if (timer_) timer_->end(stream_);
    }

private:
    phase_timer* timer_;
    cudaStream_t stream_;
};

}  // namespace cram::cuda
