// Device-side helpers shared by the kernel files: fp32 <-> storage conversions (cram::bf16 is read as
// __nv_bfloat16, cram::fp16 as __half; arithmetic is always fp32), cuBLAS type tags, 16-byte vector access,
// the 16-bit atomic add, and grid sizing.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <library_types.h>

#include "cram/core/bf16.hpp"
#include "cram/core/fp16.hpp"
#include "cram/core/platform.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/launch.hpp"

namespace cram::cuda {

// An optional pointer argument (may be a plain nullptr) that must not take part in type deduction.
template <class T>
using opt_ptr = std::type_identity_t<T>*;

using cram::index_t;

// The element types kernels store: fp32, and the two 16-bit formats the activations may use (precision.hpp).
template <class T>
inline constexpr bool is_half_storage_v = std::is_same_v<T, cram::bf16> || std::is_same_v<T, cram::fp16>;
template <class T>
inline constexpr bool is_storage_type_v = std::is_same_v<T, float> || is_half_storage_v<T>;

// fp32 view of a stored element, and back (round to nearest even, as cram::bf16 and cram::fp16 do on the
// host: fp16 values from 65520 up become infinity, which is what dynamic loss scaling watches for).
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(cram::bf16 x) { return __bfloat162float(__ushort_as_bfloat16(x.bits)); }
__device__ __forceinline__ float to_f32(cram::fp16 x) { return __half2float(__ushort_as_half(x.bits)); }
template <class T>
__device__ __forceinline__ T from_f32(float x) {
    static_assert(is_storage_type_v<T>, "cram::cuda: storage types are float, cram::bf16 and cram::fp16");
    if constexpr (std::is_same_v<T, float>) {
        return x;
    } else if constexpr (std::is_same_v<T, cram::bf16>) {
        T r;
        r.bits = __bfloat16_as_ushort(__float2bfloat16_rn(x));
        return r;
    } else {
        T r;
        r.bits = __half_as_ushort(__float2half_rn(x));
        return r;
    }
}

template <class T>
constexpr cudaDataType_t cuda_type() {
    static_assert(is_storage_type_v<T>, "cram::cuda: storage types are float, cram::bf16 and cram::fp16");
    if constexpr (std::is_same_v<T, float>)
        return CUDA_R_32F;
    else if constexpr (std::is_same_v<T, cram::bf16>)
        return CUDA_R_16BF;
    else
        return CUDA_R_16F;
}

// *p += v in the element's own format (rows of a 16-bit tensor that several threads add to).
__device__ __forceinline__ void atomic_add_f(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add_f(cram::fp16* p, float v) {
    atomicAdd(reinterpret_cast<__half*>(p), __float2half_rn(v));  // native from sm_70
}
__device__ __forceinline__ void atomic_add_f(cram::bf16* p, float v) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    atomicAdd(reinterpret_cast<__nv_bfloat16*>(p), __float2bfloat16_rn(v));
#else
    // Below sm_80 there is no bf16 atomic in every toolkit: a compare-and-swap loop on the aligned 32-bit word
    // that holds the element (32-bit CAS exists everywhere), adding as the sm_80 path does: v rounded to bf16,
    // the sum rounded to nearest even.
    const auto addr = reinterpret_cast<std::uintptr_t>(p);
    unsigned* word = reinterpret_cast<unsigned*>(addr & ~std::uintptr_t(3));
    const unsigned shift = (addr & 2u) ? 16u : 0u;
    const float add = __bfloat162float(__float2bfloat16_rn(v));
    unsigned old = *word, assumed;
    do {
        assumed = old;
        const unsigned short cur = static_cast<unsigned short>((assumed >> shift) & 0xffffu);
        const float sum = __bfloat162float(__ushort_as_bfloat16(cur)) + add;
        const unsigned short next = __bfloat16_as_ushort(__float2bfloat16_rn(sum));
        const unsigned updated = (assumed & ~(0xffffu << shift)) | (static_cast<unsigned>(next) << shift);
        old = atomicCAS(word, assumed, updated);
    } while (assumed != old);
#endif
}

// Eight 16-bit elements (or four fp32) in one 16-byte load; valid when the pointer and count are 16-byte aligned.
template <class T>
struct alignas(16) vec16 {
    static constexpr int n = 16 / sizeof(T);
    T v[n];
};
template <class T>
__device__ __forceinline__ vec16<T> load16(const T* p) {
    return *reinterpret_cast<const vec16<T>*>(p);
}
template <class T>
__device__ __forceinline__ void store16(T* p, const vec16<T>& x) {
    *reinterpret_cast<vec16<T>*>(p) = x;
}
inline bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

// Eight elements of any storage type as fp32, the unit of kernels that read two storage types in step (the
// residual stream in fp32 beside bf16 activations): one 16-byte access for 16-bit types, two for fp32. Valid
// when the pointer is 16-byte aligned.
template <class T>
__device__ __forceinline__ void load8(const T* p, float (&f)[8]) {
    static_assert(is_storage_type_v<T>, "cram::cuda: storage types are float, cram::bf16 and cram::fp16");
    if constexpr (sizeof(T) == 2) {
        const vec16<T> v = load16(p);
#pragma unroll
        for (int j = 0; j < 8; ++j) f[j] = to_f32(v.v[j]);
    } else {
        const vec16<float> lo = load16(p), hi = load16(p + 4);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            f[j] = lo.v[j];
            f[4 + j] = hi.v[j];
        }
    }
}
template <class T>
__device__ __forceinline__ void store8(T* p, const float (&f)[8]) {
    static_assert(is_storage_type_v<T>, "cram::cuda: storage types are float, cram::bf16 and cram::fp16");
    if constexpr (sizeof(T) == 2) {
        vec16<T> v;
#pragma unroll
        for (int j = 0; j < 8; ++j) v.v[j] = from_f32<T>(f[j]);
        store16(p, v);
    } else {
        vec16<float> lo, hi;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            lo.v[j] = f[j];
            hi.v[j] = f[4 + j];
        }
        store16(p, lo);
        store16(p + 4, hi);
    }
}
// x as the storage type T holds it (rounded to nearest even), in fp32.
template <class T>
__device__ __forceinline__ float round_as(float x) {
    return to_f32(from_f32<T>(x));
}

// Blocks for a grid-stride loop over n items: enough to fill the GPU, never more than the work needs.
inline unsigned grid_for(context& ctx, index_t n, int threads, int blocks_per_sm = 8) {
    const index_t need = (n + threads - 1) / threads;
    const index_t cap = static_cast<index_t>(ctx.sm_count()) * blocks_per_sm;
    return static_cast<unsigned>(std::max<index_t>(1, std::min(need, cap)));
}

namespace detail {
// Carves 256-byte-aligned pieces out of one scratch allocation.
struct scratch_carver {
    std::byte* base;
    std::size_t used = 0;
    template <class U>
    U* take(index_t n) {
        U* p = reinterpret_cast<U*>(base + used);
        used += (static_cast<std::size_t>(n) * sizeof(U) + 255) / 256 * 256;
        return p;
    }
    template <class U>
    static std::size_t bytes(index_t n) {
        return (static_cast<std::size_t>(n) * sizeof(U) + 255) / 256 * 256;
    }
};
}  // namespace detail

__device__ __forceinline__ index_t global_thread() {
    return static_cast<index_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ index_t grid_threads() { return static_cast<index_t>(gridDim.x) * blockDim.x; }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

}  // namespace cram::cuda
