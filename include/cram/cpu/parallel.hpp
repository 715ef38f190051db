// Fork-join for the CPU backend: a persistent pool of worker threads splits a row range into
// contiguous chunks. Each chunk writes disjoint outputs, so results are bit-identical for any thread
// count. Workers are started once (starting threads per call cost more than small ops themselves);
// a parallel_for issued from inside a worker runs serially.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace cram::cpu {

namespace detail {

class thread_pool {
public:
    explicit thread_pool(int workers) {
        for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { worker_loop(); });
    }
    ~thread_pool() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& t : threads_) t.join();
    }
    int size() const { return static_cast<int>(threads_.size()) + 1; }

    // Runs task(part) for part in [0, parts) on the caller and the workers; returns when all are done.
    // The first exception thrown by any part is rethrown here.
    void run(int parts, const std::function<void(int)>& task) {
        std::lock_guard job_lock(job_mutex_);  // one job at a time
        std::uint32_t gen;
        {
            std::lock_guard lock(mutex_);
            task_ = &task;
            parts_ = parts;
            pending_ = parts;
            error_ = nullptr;
            gen = ++generation_;
            next_.store(std::uint64_t(gen) << 32);
        }
        wake_.notify_all();
        drain(gen, parts, task);
        std::unique_lock lock(mutex_);
        done_.wait(lock, [&] { return pending_ == 0; });
        task_ = nullptr;
        if (error_) std::rethrow_exception(error_);
    }

    static bool in_worker() { return worker_flag(); }

private:
    static bool& worker_flag() {
        thread_local bool flag = false;
        return flag;
    }

    // Claims parts of job `gen` one at a time. The claim counter carries the job's generation in its
    // high half, so a late worker can never claim a part of a later job with an earlier job's view.
    void drain(std::uint32_t gen, int parts, const std::function<void(int)>& task) {
        std::uint64_t v = next_.load();
        for (;;) {
            if ((v >> 32) != gen || static_cast<int>(v & 0xffffffffu) >= parts) return;
            if (!next_.compare_exchange_weak(v, v + 1)) continue;  // v reloaded
            const int part = static_cast<int>(v & 0xffffffffu);
            try {
                task(part);
            } catch (...) {
                std::lock_guard lock(mutex_);
                if (!error_) error_ = std::current_exception();
            }
            {
                std::lock_guard lock(mutex_);
                if (--pending_ == 0) done_.notify_all();
            }
            v = next_.load();
        }
    }

    void worker_loop() {
        worker_flag() = true;
        std::uint32_t seen = 0;
        for (;;) {
            std::uint32_t gen;
            int parts;
            const std::function<void(int)>* task;
            {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [&] { return stop_ || (generation_ != seen && task_ != nullptr); });
                if (stop_) return;
                seen = gen = generation_;
                parts = parts_;
                task = task_;
            }
            drain(gen, parts, *task);
        }
    }

    std::vector<std::thread> threads_;
    std::mutex job_mutex_, mutex_;
    std::condition_variable wake_, done_;
    const std::function<void(int)>* task_ = nullptr;  // guarded by mutex_
    int parts_ = 0, pending_ = 0;                      // guarded by mutex_
    std::uint32_t generation_ = 0;                     // guarded by mutex_
    std::atomic<std::uint64_t> next_{0};               // generation << 32 | next part
    std::exception_ptr error_;
    bool stop_ = false;
};

inline int& thread_count_setting() {
    static int n = 0;  // 0: hardware concurrency
    return n;
}

inline thread_pool& pool_for(int threads) {
    // Rebuilt only when the requested size changes (set_threads); normally built once.
    static std::unique_ptr<thread_pool> pool;
    static std::mutex m;
    std::lock_guard lock(m);
    if (!pool || pool->size() != threads) {
        pool.reset();
        pool = std::make_unique<thread_pool>(threads - 1);
    }
    return *pool;
}

}  // namespace detail

inline void set_threads(int n) { detail::thread_count_setting() = n; }
inline int threads() {
    const int n = detail::thread_count_setting();
    if (n > 0) return n;
    // cached: glibc answers hardware_concurrency() by reading /sys on every call
    static const int hardware = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    return hardware;
}

// Calls fn(begin, end) on contiguous chunks of [0, n). `work_per_item` (rough flops) decides whether
// splitting is worth the hand-off (a few microseconds).
template <class Fn>
void parallel_for(std::ptrdiff_t n, double work_per_item, Fn&& fn) {
    const int nt = static_cast<int>(std::min<std::ptrdiff_t>(threads(), n));
    if (nt <= 1 || static_cast<double>(n) * work_per_item < 5e4 || detail::thread_pool::in_worker()) {
        if (n > 0) fn(std::ptrdiff_t{0}, n);
        return;
    }
    const std::ptrdiff_t chunk = (n + nt - 1) / nt;
    const std::function<void(int)> task = [&](int part) {
        const std::ptrdiff_t b = part * chunk, e = std::min(n, b + chunk);
        if (b < e) fn(b, e);
    };
    detail::pool_for(threads()).run(nt, task);
}

}  // namespace cram::cpu
