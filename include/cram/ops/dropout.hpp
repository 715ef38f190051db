// Inverted dropout with a Philox mask addressed by (seed, stream): backward regenerates the mask instead
// of storing it. The keep rule, its threshold and the scale are CRAM_HOST_DEVICE so that the CUDA kernel
// (cram/cuda/dropout.hpp) drops exactly the elements the CPU implementation below drops.
//
// Contract: out[n] = keep(i) ? in * 1/(1-p) : 0, overwritten (out may alias in); backward is the same
// map applied to the gradient. Element i uses word i%4 of the Philox block (i/4, 0, stream, 1) keyed by
// the seed, and is kept when that 32-bit word is >= p * 2^32.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cram/core/platform.hpp"
#include "cram/core/rng.hpp"

namespace cram::ops {

using cram::index_t;

// ---- shared scalar rules ----------------------------------------------------------------------------
// The Philox block that serves elements 4*group .. 4*group+3.
CRAM_HOST_DEVICE philox_result dropout_bits(std::uint64_t seed, std::uint32_t stream, index_t group) {
    return philox4x32_10(static_cast<std::uint32_t>(group), 0u, stream, 1u, static_cast<std::uint32_t>(seed),
                         static_cast<std::uint32_t>(seed >> 32));
}
// Element i of its block survives when its word reaches the threshold.
CRAM_HOST_DEVICE bool dropout_keep(const philox_result& r, index_t i, std::uint32_t threshold) {
    return r.v[i & 3] >= threshold;
}
// p * 2^32, saturated: p close to 1 must not wrap around to a small threshold.
CRAM_HOST_DEVICE std::uint32_t dropout_threshold(float p) {
    return static_cast<std::uint32_t>(std::min(4294967295.0, static_cast<double>(p) * 4294967296.0));
}
// The survivors' scale 1/(1-p), computed in the element type (fp32 on the GPU, as on the CPU in float).
template <class T>
CRAM_HOST_DEVICE T dropout_scale(float p) {
    return T(1) / (T(1) - T(p));
}
template <class T>
CRAM_HOST_DEVICE T dropout_apply(T x, bool keep, T scale) {
    return keep ? x * scale : T(0);
}

// ---- CPU implementation -----------------------------------------------------------------------------
template <class T>
void dropout_forward(T* out, const T* in, index_t n, float p, std::uint64_t seed, std::uint32_t stream) {
    const std::uint32_t th = dropout_threshold(p);
    const T scale = dropout_scale<T>(p);
    for (index_t i = 0; i < n; i += 4) {
        const philox_result r = dropout_bits(seed, stream, i >> 2);
        for (index_t j = i; j < std::min(n, i + 4); ++j) out[j] = dropout_apply(in[j], dropout_keep(r, j, th), scale);
    }
}
// din[n] from dout[n]: the same mask and scale (din may alias dout).
template <class T>
void dropout_backward(T* din, const T* dout, index_t n, float p, std::uint64_t seed, std::uint32_t stream) {
    dropout_forward(din, dout, n, p, seed, stream);
}

}  // namespace cram::ops
