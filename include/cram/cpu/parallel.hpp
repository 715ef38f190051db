// A small fork-join helper for the CPU backend: splits a row range over std::threads. Each chunk
// writes disjoint outputs, so results are bit-identical for any thread count.
#pragma once

#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace cram::cpu {

inline int& thread_count_setting() {
    static int n = 0;  // 0: hardware concurrency
    return n;
}
inline void set_threads(int n) { thread_count_setting() = n; }
inline int threads() {
    const int n = thread_count_setting();
    if (n > 0) return n;
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

// Calls fn(begin, end) on contiguous chunks of [0, n). `work_per_item` (rough flops) decides whether
// threading is worth its start-up cost (~tens of microseconds per thread).
template <class Fn>
void parallel_for(std::ptrdiff_t n, double work_per_item, Fn&& fn) {
    const int nt = static_cast<int>(std::min<std::ptrdiff_t>(threads(), n));
    if (nt <= 1 || static_cast<double>(n) * work_per_item < 2e5) {
        if (n > 0) fn(std::ptrdiff_t{0}, n);
        return;
    }
    std::vector<std::thread> pool;
    pool.reserve(static_cast<std::size_t>(nt - 1));
    const std::ptrdiff_t chunk = (n + nt - 1) / nt;
    for (int t = 1; t < nt; ++t) {
        const std::ptrdiff_t b = t * chunk, e = std::min(n, b + chunk);
        if (b < e) pool.emplace_back([&fn, b, e] { fn(b, e); });
    }
    fn(std::ptrdiff_t{0}, std::min(n, chunk));
    for (auto& th : pool) th.join();
}

}  // namespace cram::cpu
