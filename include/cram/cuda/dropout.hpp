// The Philox dropout kernel and its launchers: the CUDA twin of cram/ops/dropout.hpp. The mask comes from
// the same shared rules (ops::dropout_bits, ops::dropout_keep, ops::dropout_threshold, ops::dropout_scale),
// so the CPU and the GPU drop exactly the same elements; backward regenerates the mask.
#pragma once

#include <cstdint>

#include "cram/core/error.hpp"
#include "cram/core/rng.hpp"
#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/error.hpp"
#include "cram/ops/dropout.hpp"

namespace cram::cuda {

// One thread per group of four elements: one Philox block serves all four, as on the CPU.
template <class T>
__global__ void dropout_kernel(T* out, const T* in, index_t n, std::uint32_t threshold, float scale,
                               std::uint64_t seed, std::uint32_t stream) {
    const index_t groups = (n + 3) / 4;
    for (index_t g = global_thread(); g < groups; g += grid_threads()) {
        const philox_result r = ops::dropout_bits(seed, stream, g);
        for (int j = 0; j < 4; ++j) {
            const index_t i = g * 4 + j;
            if (i >= n) break;
            out[i] = from_f32<T>(ops::dropout_apply(to_f32(in[i]), ops::dropout_keep(r, i, threshold), scale));
        }
    }
}

namespace detail {
constexpr int dropout_threads = 256;
}

// out[n] = kept in * 1/(1-p), else 0 (out may alias in).
template <class T>
void dropout_forward(context& ctx, T* out, const T* in, index_t n, float p, std::uint64_t seed, std::uint32_t stream) {
    CRAM_CHECK(p >= 0.0f && p < 1.0f, "dropout probability ", p, " outside [0, 1)");
    if (n <= 0) return;
    const index_t groups = (n + 3) / 4;
    CRAM_LAUNCH(grid_for(ctx, groups, detail::dropout_threads), detail::dropout_threads, 0, ctx.stream(),
                dropout_kernel<T>)(out, in, n, ops::dropout_threshold(p), ops::dropout_scale<float>(p), seed, stream);
    CRAM_CUDA_CHECK_LAUNCH();
}
// The same mask and scale applied to the gradient.
template <class T>
void dropout_backward(context& ctx, T* din, const T* dout, index_t n, float p, std::uint64_t seed,
                      std::uint32_t stream) {
    dropout_forward(ctx, din, dout, n, p, seed, stream);
}

}  // namespace cram::cuda
