// Elementwise math the CPU ops run over whole rows, written so the compiler vectorises the loops, and their
// per-thread scratch buffers. Why the math is here:
// std::exp is a call per element, which no loop can vectorise without -ffast-math. For float, exp_row
// uses a range reduction and a polynomial (within 2 ulp of the correctly rounded value on the range
// softmax uses, tested against std::exp in double); for double it is std::exp, so the finite-difference
// gradient checks in double see the exact function.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "cram/core/platform.hpp"
#include "cram/core/thread_pool.hpp"

namespace cram::ops {

using cram::index_t;

namespace detail {
// A buffer of at least n elements owned by the calling thread and kept between calls: the CPU ops allocate
// nothing once warm. Slot tells apart buffers one op needs at the same time; the contents are the caller's
// until its next call. Call it before a parallel job, never inside one: which thread runs a part changes
// from call to call, so a buffer first sized inside a part could still grow (allocate) many steps later.
template <class T, int Slot>
T* thread_scratch(index_t n) {
    thread_local std::vector<T> buffer;
    if (buffer.size() < static_cast<std::size_t>(n)) buffer.resize(static_cast<std::size_t>(n));
    return buffer.data();
}

// n elements for every thread of the pool, sized by the caller before its job: a part takes its slice with
// part_scratch(base, n).
template <class T, int Slot>
T* per_thread_scratch(index_t n) {
    return thread_scratch<T, Slot>(n * static_cast<index_t>(cram::cpu_threads()));
}
template <class T>
T* part_scratch(T* base, index_t n) {
    return base + static_cast<index_t>(cram::thread_pool::thread_index()) * n;
}

// e^x for float, branch-free: x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so n ln2 is exact),
// e^r from its degree-7 Taylor polynomial (truncation below 1e-8 relative), times 2^n built in the
// exponent bits. Below -87.3 (where e^x leaves the normal floats) the result is 0; above 88 it is e^88.
inline float exp_poly(float x) {
    x = std::min(x, 88.0f);
    const float t = x * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23: rounds x log2(e) to an integer
    const float n = t - 12582912.0f;
    const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187045e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    // n in [-126, 127] on the range kept; the integer rides in t's low mantissa bits.
    const std::int32_t e = (std::bit_cast<std::int32_t>(t) - 0x4B400000 + 127) << 23;
    const float scaled = p * std::bit_cast<float>(std::max(e, std::int32_t{0}));
    return x < -87.33654f ? 0.0f : scaled;
}

// The standard normal CDF Phi(x) for float, branch-free: 0.5 erfc(-x / sqrt 2), with erfc from the
// Chebyshev fit of Numerical Recipes (Press et al., 2nd ed., 6.2: erfc(z) = t exp(-z^2 + P(t)),
// t = 1 / (1 + z/2), relative error below 1.2e-7 for every z >= 0). Relative accuracy in both tails, so
// GELU(x) = x Phi(x) stays accurate where Phi is tiny (tested against std::erf in double).
inline float normal_cdf_poly(float x) {
    const float z = std::fabs(x) * 0.70710678118654752f;
    const float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    const float half_erfc = 0.5f * t * exp_poly(p - z * z);  // = Phi(-|x|)
    return x >= 0.0f ? 1.0f - half_erfc : half_erfc;
}
}  // namespace detail

// Reductions of a row in Lanes lanes, combined in a fixed order at the end: strict IEEE arithmetic forbids
// the compiler to reorder a single running sum, so a plain loop stays scalar (and latency-bound). Element i
// contributes term(i) to lane i % Lanes (the tail continues from lane 0).
template <int Lanes, class T, class Term, class Combine>
T lane_reduce(index_t n, T init, Term&& term, Combine&& combine) {
    T acc[Lanes];
    for (int l = 0; l < Lanes; ++l) acc[l] = init;
    index_t i = 0;
    for (; i + Lanes <= n; i += Lanes)
        for (int l = 0; l < Lanes; ++l) acc[l] = combine(acc[l], term(i + l));
    for (int l = 0; i < n; ++i, ++l) acc[l] = combine(acc[l], term(i));
    T r = acc[0];
    for (int l = 1; l < Lanes; ++l) r = combine(r, acc[l]);
    return r;
}
template <int Lanes = 16, class T, class Term>
T lane_sum(index_t n, Term&& term) {
    return lane_reduce<Lanes>(n, T(0), term, [](T a, T b) { return a + b; });
}

template <class T>
T sum_of(const T* x, index_t n) {
    return lane_sum<16, T>(n, [x](index_t i) { return x[i]; });
}
// sum x[i] * y[i].
template <class T>
T dot_of(const T* x, const T* y, index_t n) {
    return lane_sum<16, T>(n, [x, y](index_t i) { return x[i] * y[i]; });
}
// sum (x[i] - mu)^2 (LayerNorm's variance around its mean).
template <class T>
T sum_squared_deviation(const T* x, T mu, index_t n) {
    return lane_sum<16, T>(n, [x, mu](index_t i) { return (x[i] - mu) * (x[i] - mu); });
}
// The largest of x[0..n), n >= 1 (NaN-free input).
template <class T>
T max_of(const T* x, index_t n) {
    return lane_reduce<16>(n, x[0], [x](index_t i) { return x[i]; }, [](T m, T v) { return v > m ? v : m; });
}

// out[i] = e^(in[i] - shift); returns their sum. out may be in.
template <class T>
T exp_row(T* out, const T* in, index_t n, T shift) {
    if constexpr (std::is_same_v<T, float>) {
        for (index_t i = 0; i < n; ++i) out[i] = detail::exp_poly(in[i] - shift);
    } else {
        for (index_t i = 0; i < n; ++i) out[i] = std::exp(in[i] - shift);
    }
    return sum_of(out, n);
}

}  // namespace cram::ops
