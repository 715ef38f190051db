// __half and __nv_bfloat16 for the emulated device: the 16-bit types of cuda_fp16.h and cuda_bf16.h as exact host
// versions. Their conversions are cram's own (cram/core/fp16.hpp, bf16.hpp: round to nearest even, fp16 overflow
// to infinity from 65520, subnormals), which the CPU oracle uses too, rather than the toolkit's headers, so that
// an emulated build needs no CUDA toolkit. Arithmetic goes through fp32, as the GPU's does for these types.
#pragma once

#include <cstdint>

#include "cram/core/bf16.hpp"
#include "cram/core/fp16.hpp"

struct __half {
    unsigned short __x = 0;
    __half() = default;
    __half(float f) : __x(cram::fp16::from_float(f)) {}
    operator float() const { return cram::fp16::to_float(__x); }
};
struct __nv_bfloat16 {
    unsigned short __x = 0;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f) : __x(cram::bf16::from_float(f)) {}
    operator float() const { return cram::bf16::to_float(__x); }
};
static_assert(sizeof(__half) == 2 && sizeof(__nv_bfloat16) == 2, "16-bit storage types");
using half = __half;
using nv_bfloat16 = __nv_bfloat16;

inline __half __float2half_rn(float f) { return __half(f); }
inline __half __float2half(float f) { return __half(f); }
inline float __half2float(__half h) { return float(h); }
inline __half __ushort_as_half(unsigned short u) {
    __half h;
    h.__x = u;
    return h;
}
inline unsigned short __half_as_ushort(__half h) { return h.__x; }

inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 b) { return float(b); }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
    __nv_bfloat16 b;
    b.__x = u;
    return b;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
