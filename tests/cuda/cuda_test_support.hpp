// Helpers for the CPU-vs-CUDA parity suites: one shared context (or a visible SKIPPED when there is no
// usable GPU), uploads/downloads, NaN poisoning of outputs before every run, random inputs representable in
// the storage type under test (bf16 or fp16, so CPU and GPU see identical operands; the CPU oracle rounds where
// the GPU stores), and a comparison that reports the worst element and refuses to pass on an all-zero output.
// Suites that cover both 16-bit formats are TEST_CASE_TEMPLATE over cram::bf16 and cram::fp16 and reach the
// backend as gpu_backend<T>.
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "cram/core/bf16.hpp"
#include "cram/core/fp16.hpp"
#include "cram/core/rng.hpp"
#include "cram/cuda/backend.hpp"  // not cram.hpp: each op suite compiles only what it tests (nvcc is slow)
#include "test_support.hpp"

// Template test cases over the storage types are named "<test>" followed by <bf16> or <fp16>.
TYPE_TO_STRING_AS("bf16", cram::bf16);
TYPE_TO_STRING_AS("fp16", cram::fp16);

namespace cram::cuda_test {

using cram::bf16;
using cram::fp16;
using cram::index_t;
using cram::cuda::device_buffer;

// The backend whose activations are stored as T (cram::bf16: cuda::backend, cram::fp16: cuda::fp16_backend).
template <class T>
using gpu_backend = cram::cuda::basic_backend<T>;

// What a value looks like after a trip through the storage type T (T = float: unchanged).
template <class T>
float round_to(float x) {
    if constexpr (std::is_same_v<T, bf16>)
        return cram::round_to_bf16(x);
    else if constexpr (std::is_same_v<T, fp16>)
        return cram::round_to_fp16(x);
    else
        return x;
}
template <class T>
std::vector<float> rounded_to(std::vector<float> v) {
    for (auto& x : v) x = round_to<T>(x);
    return v;
}

// The shared context, or null after printing a SKIPPED line (once per test case that asks). With the
// environment variable CRAM_REQUIRE_GPU set (and not "0"), as benchmarks/run_gpu.sh sets it on the GPU machine,
// no usable GPU fails the test case instead, with the reason: a skipped case there would pass silently.
inline cram::cuda::context* device_context() {
    static const cram::cuda::device_probe probe = cram::cuda::probe_device(0);
    if (!probe.usable) {
        const char* require = std::getenv("CRAM_REQUIRE_GPU");
        if (require && *require && std::string(require) != "0")
            FAIL("no usable GPU and CRAM_REQUIRE_GPU=" << require << ": " << probe.reason);
        std::printf("SKIPPED: %s\n", probe.reason.c_str());
        MESSAGE("SKIPPED: " << probe.reason);
        return nullptr;
    }
    static std::unique_ptr<cram::cuda::context> ctx = std::make_unique<cram::cuda::context>(0);
    return ctx.get();
}

// Puts a setting of the shared context (every suite uses one) back to its value when the case began.
template <class V>
class keep_setting {
public:
    explicit keep_setting(V& setting) : setting_(setting), saved_(setting) {}
    ~keep_setting() { setting_ = saved_; }
    keep_setting(const keep_setting&) = delete;
    keep_setting& operator=(const keep_setting&) = delete;

private:
    V& setting_;
    V saved_;
};

#define CRAM_REQUIRE_GPU()                                          \
    cram::cuda::context* cram_ctx_ptr_ = cram::cuda_test::device_context(); \
    if (!cram_ctx_ptr_) return;                                     \
    cram::cuda::context& ctx = *cram_ctx_ptr_

template <class T>
device_buffer<T> upload(cram::cuda::context& ctx, const std::vector<T>& host) {
    device_buffer<T> d(host.size());
    cram::cuda::backend::to_device(ctx, d.data(), host.data(), index_t(host.size()));
    return d;
}
template <class T>
std::vector<T> download(cram::cuda::context& ctx, const T* dev, std::size_t n) {
    std::vector<T> h(n);
    cram::cuda::backend::to_host(ctx, h.data(), dev, index_t(n));
    return h;
}
// All-ones bits: NaN in fp32, bf16 and fp16, so an output the kernel forgot to write cannot pass.
template <class T>
void poison(cram::cuda::context& ctx, T* dev, std::size_t n) {
    CRAM_CUDA_CHECK(cudaMemsetAsync(dev, 0xFF, n * sizeof(T), ctx.stream()));
}
template <class T>
device_buffer<T> poisoned(cram::cuda::context& ctx, std::size_t n) {
    device_buffer<T> d(n);
    poison(ctx, d.data(), n);
    return d;
}

// Uniform in [-scale, scale), rounded to bf16 so both sides start from the same numbers.
inline std::vector<float> random_vec(std::size_t n, std::uint64_t seed, float scale = 1.0f) {
    cram::philox_stream rng(seed, 0xC0DA, 0);
    std::vector<float> v(n);
    for (auto& x : v) x = cram::round_to_bf16((2.0f * rng.next_uniform() - 1.0f) * scale);
    return v;
}
// Uniform in [-scale, scale), representable in T: rounded to bf16 first (random_vec's numbers), then to fp16
// for T = fp16 (a bf16 value needs at most 8 significant bits, so the fp16 value is bf16-representable too).
template <class T>
std::vector<float> random_vec_as(std::size_t n, std::uint64_t seed, float scale = 1.0f) {
    return rounded_to<T>(random_vec(n, seed, scale));
}
// Host floats in the storage type T (round to nearest even, as the GPU rounds).
template <class T>
std::vector<T> to_storage(const std::vector<float>& v) {
    std::vector<T> r(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) r[i] = T(v[i]);
    return r;
}
inline std::vector<bf16> to_bf16(const std::vector<float>& v) { return to_storage<bf16>(v); }
template <class T>
std::vector<float> to_float(const std::vector<T>& v) {
    std::vector<float> r(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) r[i] = static_cast<float>(v[i]);
    return r;
}
inline std::vector<float> download_f(cram::cuda::context& ctx, const bf16* dev, std::size_t n) {
    return to_float(download(ctx, dev, n));
}
inline std::vector<float> download_f(cram::cuda::context& ctx, const fp16* dev, std::size_t n) {
    return to_float(download(ctx, dev, n));
}
inline std::vector<float> download_f(cram::cuda::context& ctx, const float* dev, std::size_t n) {
    return download(ctx, dev, n);
}

// Elementwise |got - ref| <= atol + rtol |ref|, worst element reported, and neither side all zero.
inline void check_close(const char* what, const std::vector<float>& got, const std::vector<float>& ref, double atol,
                        double rtol) {
    REQUIRE(got.size() == ref.size());
    const auto r = cram::test::compare(got, ref, atol, rtol);
    double got_norm = 0;
    for (float g : got) got_norm += double(g) * double(g);
    INFO(std::string(what) << ": worst element " << r.worst_index << " of " << ref.size() << ": got " << r.worst_got << " ref "
              << r.worst_ref << " |diff| " << r.worst_abs << " (atol " << atol << ", rtol " << rtol << "), |ref| "
              << r.ref_norm);
    CHECK(r.ok);
    CHECK(r.ref_norm > 0);  // a test whose reference is all zero proves nothing
    CHECK(got_norm > 0);
}

// The same with the absolute tolerance a fraction of the reference's RMS: for outputs whose typical size
// is far from 1 (an absolute 1e-2 would hide a 25 % error in values of 0.04).
inline void check_close_scaled(const char* what, const std::vector<float>& got, const std::vector<float>& ref,
                               double atol_fraction_of_rms, double rtol) {
    double ss = 0;
    for (float r : ref) ss += double(r) * r;
    const double rms = ref.empty() ? 0.0 : std::sqrt(ss / double(ref.size()));
    check_close(what, got, ref, atol_fraction_of_rms * rms, rtol);
}

// ||got - ref|| / ||ref||: for whole-model gradients, where 16-bit activations make tiny elements noisy.
inline double relative_error(const std::vector<float>& got, const std::vector<float>& ref) {
    double d = 0, n = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
        d += (double(got[i]) - ref[i]) * (double(got[i]) - ref[i]);
        n += double(ref[i]) * ref[i];
    }
    return n > 0 ? std::sqrt(d / n) : (d > 0 ? INFINITY : 0.0);
}

}  // namespace cram::cuda_test
