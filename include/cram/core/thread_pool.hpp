// The one pool of worker threads for all of cram's CPU work: the CPU backend's ops (parallel_for over
// contiguous row chunks, so results are bit-identical for any thread count) and the data layer's tokenizer
// and vocabulary trainer (parallel_parts, each part with its own state). Workers start once, because
// starting threads per call costs more than a small op itself; work issued from inside a part runs serially.
// Between jobs a worker (and a caller waiting for its job's last part) spins for a short while before it
// sleeps: a training step issues ops microseconds apart, and waking a sleeping thread costs far more than
// that (~0.1 ms measured on a 2-core KVM guest, where the idle vCPU is halted).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "cram/core/error.hpp"

namespace cram {

class thread_pool {
public:
    // `workers` threads besides the caller, which takes parts too: size() = workers + 1.
    explicit thread_pool(int workers) {
        for (int i = 0; i < workers; ++i)
            threads_.emplace_back([this, i] {
                index_slot() = i + 1;
                worker_loop();
            });
    }
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;
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
    // The first exception thrown by any part is rethrown here. Called from inside a part (of this pool or
    // another), it runs the parts serially: the pool is busy with the job that asked.
    void run(int parts, const std::function<void(int)>& task) {
        if (parts <= 0) return;
        if (in_worker()) {
            for (int part = 0; part < parts; ++part) task(part);
            return;
        }
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
        {
            const worker_scope as_worker;  // the caller's parts may issue work too
            drain(gen, parts, task);
        }
        spin_while([&] { return pending_.load(std::memory_order_acquire) != 0; });
        std::unique_lock lock(mutex_);
        done_.wait(lock, [&] { return pending_ == 0; });
        task_ = nullptr;
        if (error_) std::rethrow_exception(error_);
    }

    // True on a pool worker, and on a caller while it runs parts.
    static bool in_worker() { return worker_flag(); }

    // Which thread runs the current part: 1..workers on the pool's workers, 0 on any other thread (the
    // caller of a job included). Ops use it to give each thread its own slice of one scratch buffer that
    // the caller sized before the job, so no part ever allocates.
    static int thread_index() { return index_slot(); }

private:
    static int& index_slot() {
        thread_local int index = 0;
        return index;
    }
    static bool& worker_flag() {
        thread_local bool flag = false;
        return flag;
    }
    // Spins while busy() holds, for at most spin_time; returns early when it stops holding.
    static constexpr std::chrono::microseconds spin_time{200};
    template <class Busy>
    static void spin_while(Busy&& busy) {
        const auto until = std::chrono::steady_clock::now() + spin_time;
        while (busy()) {
            for (int i = 0; i < 64; ++i) {
#if (defined(__x86_64__) || defined(__i386__)) && !defined(__CUDA_ARCH__)
                __builtin_ia32_pause();  // tells the core this is a spin (saves power, frees the sibling thread)
#endif
            }
            if (std::chrono::steady_clock::now() > until) return;
        }
    }

    struct worker_scope {
        worker_scope() : was(std::exchange(worker_flag(), true)) {}
        ~worker_scope() { worker_flag() = was; }
        bool was;
    };

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
            // The next job's generation shows in next_'s high half as soon as run() publishes it.
            spin_while([&] {
                return static_cast<std::uint32_t>(next_.load(std::memory_order_acquire) >> 32) == seen &&
                       !stop_.load(std::memory_order_relaxed);
            });
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
    int parts_ = 0;                                    // guarded by mutex_
    std::atomic<int> pending_{0};                      // written under mutex_; read by the spinning caller
    std::uint32_t generation_ = 0;                     // guarded by mutex_
    std::atomic<std::uint64_t> next_{0};               // generation << 32 | next part
    std::exception_ptr error_;
    std::atomic<bool> stop_{false};  // set under mutex_; also read by the spinning workers
};

namespace detail {

inline int& cpu_thread_setting() {
    static int n = 0;  // 0: hardware concurrency
    return n;
}

}  // namespace detail

// The most threads set_cpu_threads accepts: 4x the hardware threads (at least 16, at most 1024). More
// threads than cores only slow the work down, and tens of thousands exhaust the machine's process limit.
inline int max_cpu_threads() {
    const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    return std::min(1024, std::max(16, 4 * hw));
}

// How many threads cram's CPU work uses at once (0: all cores). Set it before starting work: the shared
// pool is rebuilt at its next use, which must not overlap a job running on the old one.
inline void set_cpu_threads(int n) {
    CRAM_CHECK(n >= 0 && n <= max_cpu_threads(), "--threads ", n, " is out of range: 0 (all ",
               std::thread::hardware_concurrency(), " hardware threads) up to ", max_cpu_threads(),
               " (4x the hardware threads)");
    detail::cpu_thread_setting() = n;
}

inline int cpu_threads() {
    const int n = detail::cpu_thread_setting();
    if (n > 0) return n;
    // cached: glibc answers hardware_concurrency() by reading /sys on every call
    static const int hardware = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    return hardware;
}

// The process's pool, of cpu_threads() threads (the caller included).
inline thread_pool& shared_thread_pool() {
    // Rebuilt only when the requested size changes (set_cpu_threads); normally built once.
    static std::unique_ptr<thread_pool> pool;
    static std::mutex m;
    std::lock_guard lock(m);
    const int size = cpu_threads();
    if (!pool || pool->size() != size) {
        pool.reset();
        pool = std::make_unique<thread_pool>(size - 1);
    }
    return *pool;
}

// Calls fn(begin, end) on contiguous chunks of [0, n). `work_per_item` (rough flops) decides whether
// splitting is worth the hand-off (a few microseconds).
template <class Fn>
void parallel_for(std::ptrdiff_t n, double work_per_item, Fn&& fn) {
    const int nt = static_cast<int>(std::min<std::ptrdiff_t>(cpu_threads(), n));
    if (nt <= 1 || static_cast<double>(n) * work_per_item < 5e4 || thread_pool::in_worker()) {
        if (n > 0) fn(std::ptrdiff_t{0}, n);
        return;
    }
    // The task captures one pointer, so std::function keeps it inline: no allocation per call.
    struct job {
        std::ptrdiff_t n, chunk;
        std::remove_reference_t<Fn>* fn;
    } const j{n, (n + nt - 1) / nt, &fn};
    const std::function<void(int)> task = [&j](int part) {
        const std::ptrdiff_t b = part * j.chunk, e = std::min(j.n, b + j.chunk);
        if (b < e) (*j.fn)(b, e);
    };
    shared_thread_pool().run(nt, task);
}

// Calls fn(part) for every part in [0, parts) on the shared pool, at most cpu_threads() at a time: for
// work that keeps state per part (a scratch buffer, a local hash table) and takes its items from a shared
// counter. One part runs on the caller alone, without a hand-off.
template <class Fn>
void parallel_parts(int parts, Fn&& fn) {
    if (parts <= 1 || thread_pool::in_worker()) {
        for (int part = 0; part < parts; ++part) fn(part);
        return;
    }
    const std::function<void(int)> task = [&](int part) { fn(part); };
    shared_thread_pool().run(parts, task);
}

}  // namespace cram
