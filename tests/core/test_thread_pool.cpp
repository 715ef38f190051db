// The shared thread pool (core/thread_pool.hpp): every index or part runs exactly once, no more parts run
// at once than threads were asked for, exceptions reach the caller, work issued from inside a part runs
// (serially) instead of deadlocking, and chunked results do not depend on the thread count.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "cram/core/thread_pool.hpp"
#include "test_support.hpp"

namespace {

// Restores the process-wide thread count when a test ends, however it ends.
struct thread_setting {
    explicit thread_setting(int n) { cram::set_cpu_threads(n); }
    ~thread_setting() { cram::set_cpu_threads(0); }
};

}  // namespace

TEST_CASE("parallel_for: every index exactly once, in contiguous chunks") {
    for (int threads : {1, 2, 3, 5}) {
        const thread_setting setting(threads);
        for (std::ptrdiff_t n : {0, 1, 7, 1000, 4099}) {
            std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
            std::atomic<int> chunks{0};
            cram::parallel_for(n, /*work_per_item=*/1e6, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
                CHECK(b < e);
                ++chunks;
                for (std::ptrdiff_t i = b; i < e; ++i) ++hits[static_cast<std::size_t>(i)];
            });
            CHECK(std::all_of(hits.begin(), hits.end(), [](const std::atomic<int>& h) { return h == 1; }));
            CHECK(chunks <= std::max(1, threads));
        }
    }
}

TEST_CASE("parallel_for: small work is not split") {
    const thread_setting setting(4);
    std::atomic<int> calls{0};
    cram::parallel_for(100, /*work_per_item=*/1.0, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
        ++calls;
        CHECK(b == 0);
        CHECK(e == 100);
    });
    CHECK(calls == 1);
}

TEST_CASE("parallel_parts: each part once, at most cpu_threads() at a time") {
    const thread_setting setting(3);
    CHECK(cram::cpu_threads() == 3);
    CHECK(cram::shared_thread_pool().size() == 3);
    std::vector<std::atomic<int>> runs(11);
    std::atomic<int> active{0}, most{0};
    cram::parallel_parts(11, [&](int part) {
        const int now = ++active;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        ::usleep(20'000);  // long enough for the other workers to pile in if they could, even on a loaded machine
        ++runs[static_cast<std::size_t>(part)];
        --active;
    });
    CHECK(std::all_of(runs.begin(), runs.end(), [](const std::atomic<int>& r) { return r == 1; }));
    CHECK(most <= 3);
    CHECK(most >= 2);  // and it did run in parallel
}

TEST_CASE("the first exception of a part reaches the caller, and the pool keeps working") {
    const thread_setting setting(3);
    CHECK_THROWS_WITH_AS(cram::parallel_parts(6,
                                              [](int part) {
                                                  if (part == 4) throw std::runtime_error("part 4 failed");
                                              }),
                         "part 4 failed", std::runtime_error);
    std::atomic<int> sum{0};
    cram::parallel_parts(6, [&](int part) { sum += part; });
    CHECK(sum == 0 + 1 + 2 + 3 + 4 + 5);
}

TEST_CASE("work issued from inside a part runs serially instead of deadlocking") {
    const thread_setting setting(2);
    std::vector<std::atomic<int>> hits(4 * 500);
    // Every part, the one on the caller's thread included, issues a parallel_for of its own.
    cram::parallel_parts(4, [&](int part) {
        cram::parallel_for(500, 1e6, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
            for (std::ptrdiff_t i = b; i < e; ++i) ++hits[static_cast<std::size_t>(part * 500 + i)];
        });
        cram::parallel_parts(2, [](int) {});
    });
    CHECK(std::all_of(hits.begin(), hits.end(), [](const std::atomic<int>& h) { return h == 1; }));
}

TEST_CASE("row-wise results are bit-identical for any thread count") {
    // Each row's sum is computed by one thread in a fixed order, so float rounding cannot depend on threads.
    const std::ptrdiff_t rows = 257, cols = 301;
    std::vector<float> x(static_cast<std::size_t>(rows * cols));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * 1e3f;
    auto row_sums = [&](int threads) {
        const thread_setting setting(threads);
        std::vector<float> out(static_cast<std::size_t>(rows));
        cram::parallel_for(rows, static_cast<double>(cols), [&](std::ptrdiff_t b, std::ptrdiff_t e) {
            for (std::ptrdiff_t r = b; r < e; ++r) {
                float s = 0;
                for (std::ptrdiff_t c = 0; c < cols; ++c) s += x[static_cast<std::size_t>(r * cols + c)];
                out[static_cast<std::size_t>(r)] = s;
            }
        });
        return out;
    };
    const auto serial = row_sums(1);
    for (int threads : {2, 3, 7}) CHECK(row_sums(threads) == serial);
}
