// Helpers shared by the test suites: where the shared data is (and a loud skip when it is not),
// a scratch directory, and tolerance comparisons that report the worst element.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "cram/core/error.hpp"

namespace cram::test {

// The message of the cram::error that f() throws, or "" when it throws none: for tests of what a user reads.
inline std::string error_of(auto&& f) {
    try {
        f();
    } catch (const cram::error& e) {
        return e.what();
    }
    return "";
}

inline std::filesystem::path shared_data() { return CRAM_SHARED_DATA; }

// True when `relative` exists under the shared data; otherwise prints a visible SKIPPED line.
inline bool have_shared_data(const std::string& relative) {
    const auto p = shared_data() / relative;
    if (std::filesystem::exists(p)) return true;
    std::printf("SKIPPED (shared data missing: %s)\n", p.string().c_str());
    MESSAGE("SKIPPED: shared data missing: " << p.string());
    return false;
}

// A fresh, empty scratch directory per call name.
inline std::filesystem::path scratch_dir(const std::string& name) {
    auto p = std::filesystem::path(CRAM_TEST_TMP) / name;
    std::filesystem::remove_all(p);
    std::filesystem::create_directories(p);
    return p;
}

struct compare_result {
    double worst_abs = 0, worst_ref = 0, worst_got = 0;
    std::size_t worst_index = 0;
    bool ok = true;
    double ref_norm = 0;
};

// |got - ref| <= atol + rtol * |ref| elementwise; remembers the worst offender.
template <class A, class B>
compare_result compare(const A& got, const B& ref, double atol, double rtol) {
    compare_result r;
    double worst_excess = -1e300;
    for (std::size_t i = 0; i < ref.size(); ++i) {
        const double g = static_cast<double>(got[i]), f = static_cast<double>(ref[i]);
        const double d = std::abs(g - f);
        const double excess = d - (atol + rtol * std::abs(f));
        r.ref_norm += f * f;
        if (!(excess <= 0)) r.ok = false;
        if (excess > worst_excess || std::isnan(d)) {
            worst_excess = std::isnan(d) ? 1e300 : excess;
            r.worst_abs = d;
            r.worst_index = i;
            r.worst_ref = f;
            r.worst_got = g;
        }
    }
    r.ref_norm = std::sqrt(r.ref_norm);
    return r;
}

#define CRAM_CHECK_CLOSE(got, ref, atol, rtol)                                                      \
    do {                                                                                            \
        const auto cram_cmp_ = ::cram::test::compare((got), (ref), (atol), (rtol));                 \
        INFO("worst element " << cram_cmp_.worst_index << ": got " << cram_cmp_.worst_got            \
                              << " ref " << cram_cmp_.worst_ref << " |diff| " << cram_cmp_.worst_abs); \
        CHECK(cram_cmp_.ok);                                                                        \
    } while (0)

}  // namespace cram::test
