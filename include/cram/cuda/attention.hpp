// Multi-head attention for short sequences (seq <= 512; crammed BERT uses 128), forward and backward: the
// CUDA twin of cram/ops/attention.hpp (score scale, softmax backward rule, attention-dropout keep rule).
// Two paths, chosen per call by attention_route_for:
// - flash (flash_attention.hpp; the default where it applies: head_dim 64, 16-bit storage with tensor-core
//   MMA on the device, enough shared memory): scores stay on chip, the forward saves one fp32 log-sum-exp
//   per query row at the start of the saved buffer
//   `probs`, the backward recomputes the probabilities from it;
// - the reference (GEMM) path: heads are split into [batch, heads, seq, head_dim] copies, the score and
//   value products are strided-batched cuBLASLt GEMMs (16-bit in, fp32 accumulate, fp32 scores), softmax
//   and its backward are one warp per row, and `probs` holds the probabilities (16-bit) for the backward.
// Both drop the same attention probabilities (dropout p > 0: the values are weighted by the dropped
// probabilities, the softmax backward uses the undropped ones and the same mask on dP). The backward must
// take the path the forward took: the same context::attention setting and shapes.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <mutex>
#include <type_traits>

#include "cram/core/error.hpp"
#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/dropout.hpp"
#include "cram/cuda/error.hpp"
#include "cram/cuda/flash_attention.hpp"
#include "cram/cuda/gemm.hpp"
#include "cram/ops/attention.hpp"

namespace cram::cuda {

namespace detail {
constexpr int attention_max_seq = 512;
constexpr int softmax_per_lane = attention_max_seq / 32;
}  // namespace detail

// dst[b, h, s, d] = src[(b*seq + s)*ld + h*head_dim + d]
template <class T>
__global__ void split_heads_kernel(T* __restrict__ dst, const T* __restrict__ src, index_t ld, index_t batch,
                                   index_t seq, index_t heads, index_t head_dim) {
    const index_t n = batch * heads * seq * head_dim;
    for (index_t i = global_thread(); i < n; i += grid_threads()) {
        const index_t d = i % head_dim;
        index_t t = i / head_dim;
        const index_t s = t % seq;
        t /= seq;
        const index_t h = t % heads, b = t / heads;
        dst[i] = src[(b * seq + s) * ld + h * head_dim + d];
    }
}
// The inverse: dst[(b*seq + s)*ld + h*head_dim + d] = src[b, h, s, d]
template <class T>
__global__ void merge_heads_kernel(T* __restrict__ dst, const T* __restrict__ src, index_t ld, index_t batch,
                                   index_t seq, index_t heads, index_t head_dim) {
    const index_t n = batch * heads * seq * head_dim;
    for (index_t i = global_thread(); i < n; i += grid_threads()) {
        const index_t d = i % head_dim;
        index_t t = i / head_dim;
        const index_t s = t % seq;
        t /= seq;
        const index_t h = t % heads, b = t / heads;
        dst[(b * seq + s) * ld + h * head_dim + d] = src[i];
    }
}

// One warp per score row: probs = softmax over the first lengths[b] keys (zero beyond), fp32 throughout; only
// the stored probabilities are rounded to the storage type (bf16 or fp16: both hold [0, 1] well).
template <class T>
__global__ void attention_softmax_kernel(T* __restrict__ probs, const float* __restrict__ scores,
                                         const std::int32_t* __restrict__ lengths, index_t batch, index_t heads,
                                         index_t seq) {
    const index_t rows = batch * heads * seq;
    const int lane = threadIdx.x & 31;
    const index_t warps = static_cast<index_t>(gridDim.x) * (blockDim.x / 32);
    for (index_t r = global_thread() / 32; r < rows; r += warps) {
        const index_t b = r / (heads * seq);
        const index_t len = lengths ? min(static_cast<index_t>(lengths[b]), seq) : seq;
        const float* z = scores + r * seq;
        float v[detail::softmax_per_lane];
        float mx = -INFINITY;
#pragma unroll
        for (int t = 0; t < detail::softmax_per_lane; ++t) {
            const index_t j = lane + 32 * t;
            v[t] = j < len ? z[j] : -INFINITY;
            mx = fmaxf(mx, v[t]);
        }
        mx = warp_max(mx);
        float sum = 0.0f;
#pragma unroll
        for (int t = 0; t < detail::softmax_per_lane; ++t) {
            const index_t j = lane + 32 * t;
            v[t] = j < len ? __expf(v[t] - mx) : 0.0f;
            sum += v[t];
        }
        sum = warp_sum(sum);
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        T* p = probs + r * seq;
#pragma unroll
        for (int t = 0; t < detail::softmax_per_lane; ++t) {
            const index_t j = lane + 32 * t;
            if (j < seq) p[j] = from_f32<T>(v[t] * inv);
        }
    }
}

// dS = P * (dP - sum_j P dP) * scale, one warp per row; P is zero on masked keys, so is dS. With attention
// dropout (drop), dp holds the gradient of the dropped probabilities and dP is that through the same mask
// and scale (element r*seq + j of probs, ops::attention_keep).
template <class T>
__global__ void attention_softmax_backward_kernel(T* __restrict__ ds, const T* __restrict__ probs,
                                                  const float* __restrict__ dp, index_t rows, index_t seq,
                                                  float scale, bool drop, std::uint32_t threshold, float dscale,
                                                  std::uint64_t seed, std::uint32_t stream) {
    const int lane = threadIdx.x & 31;
    const index_t warps = static_cast<index_t>(gridDim.x) * (blockDim.x / 32);
    for (index_t r = global_thread() / 32; r < rows; r += warps) {
        const T* p = probs + r * seq;
        const float* g = dp + r * seq;
        float pv[detail::softmax_per_lane], gv[detail::softmax_per_lane];
        float dot = 0.0f;
#pragma unroll
        for (int t = 0; t < detail::softmax_per_lane; ++t) {
            const index_t j = lane + 32 * t;
            pv[t] = j < seq ? to_f32(p[j]) : 0.0f;
            gv[t] = j < seq ? g[j] : 0.0f;
            if (drop && j < seq)
                gv[t] = ops::dropout_apply(gv[t], ops::attention_keep(seed, stream, r * seq + j, threshold), dscale);
            dot += pv[t] * gv[t];
        }
        dot = warp_sum(dot);
        T* o = ds + r * seq;
#pragma unroll
        for (int t = 0; t < detail::softmax_per_lane; ++t) {
            const index_t j = lane + 32 * t;
            if (j < seq) o[j] = from_f32<T>(ops::softmax_backward(pv[t], gv[t], dot, scale));
        }
    }
}

namespace detail {
template <class T>
void split_heads(context& ctx, T* dst, const T* src, index_t ld, index_t batch, index_t seq, index_t heads,
                 index_t head_dim) {
    const index_t n = batch * heads * seq * head_dim;
    CRAM_LAUNCH(grid_for(ctx, n, 256), 256, 0, ctx.stream(), split_heads_kernel<T>)(dst, src, ld, batch, seq, heads,
                                                                                    head_dim);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void merge_heads(context& ctx, T* dst, const T* src, index_t ld, index_t batch, index_t seq, index_t heads,
                 index_t head_dim) {
    const index_t n = batch * heads * seq * head_dim;
    CRAM_LAUNCH(grid_for(ctx, n, 256), 256, 0, ctx.stream(), merge_heads_kernel<T>)(dst, src, ld, batch, seq, heads,
                                                                                    head_dim);
    CRAM_CUDA_CHECK_LAUNCH();
}
inline unsigned warp_rows_grid(context& ctx, index_t rows) {
    const index_t blocks = (rows + 7) / 8;  // 8 warps per 256-thread block
    return static_cast<unsigned>(std::max<index_t>(1, std::min<index_t>(blocks, index_t(ctx.sm_count()) * 16)));
}
}  // namespace detail

// The oldest virtual architecture whose code has T's tensor-core MMA (flash::mma_compiled).
template <class T>
inline constexpr int flash_mma_arch = std::is_same_v<T, cram::bf16> ? 80 : 70;

// Which path attention_forward and attention_backward take for a shape on this device, and why not flash
// when they do not (for the run's log).
struct attention_route {
    bool flash = false;
    const char* why = "";  // empty when flash
};
template <class T>
attention_route attention_route_for(attention_kernel asked, const cudaDeviceProp& device, index_t seq, index_t heads,
                                    index_t head_dim) {
    if (asked == attention_kernel::gemm) return {false, "the GEMM path was asked for"};
    if constexpr (!is_half_storage_v<T>) {
        return {false, "fp32 storage (the flash kernels are 16-bit tensor-core code)"};
    } else {
        if (head_dim != flash::head_dim) return {false, "head_dim is not 64"};
        if (seq < 2) return {false, "one-token sequences (no room for the log-sum-exp in the saved buffer)"};
        if ((heads * head_dim) % 8 != 0) return {false, "the hidden size is not a multiple of 8"};
        if (std::is_same_v<T, cram::bf16> && device.major < 8)
            return {false, "bf16 tensor cores need sm_80 (fp16 activations take flash here)"};
        if (device.major < 7) return {false, "fp16 tensor cores need sm_70"};
        if (static_cast<std::size_t>(device.sharedMemPerBlockOptin) < flash::max_smem)
            return {false, "the device's shared memory per block is too small"};
        return {true, ""};
    }
}
// Once per device and type (both are per-device facts): the virtual architecture (e.g. 90) of the flash kernels'
// code as this device loads it, its SASS or PTX compiled for it (a build whose targets are all older than the
// device runs their PTX, whose pass may lack the MMA: bf16 below compute_80, where the kernels trap,
// flash::mma_compiled); and, where that code has the MMA, the kernels' opt-in to more than 48 KiB of dynamic
// shared memory. The route asks this before any flash launch, so the launchers need not.
template <class T>
int flash_device_setup(const context& ctx) {
    static std::mutex m;
    static std::map<int, int> known;  // device ordinal -> ptxVersion
    const std::lock_guard<std::mutex> lock(m);
    const auto it = known.find(ctx.device());
    if (it != known.end()) return it->second;
    int current = 0;
    CRAM_CUDA_CHECK(cudaGetDevice(&current));
    CRAM_CUDA_CHECK(cudaSetDevice(ctx.device()));  // both calls below act on the current device
    cudaFuncAttributes a{};
    CRAM_CUDA_CHECK(cudaFuncGetAttributes(&a, flash_attention_forward_kernel<T>));
    const int arch = a.ptxVersion;
    if (arch >= flash_mma_arch<T>) {
        const auto allow = [](auto* kernel, std::size_t bytes) {
            CRAM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
        };
        allow(flash_attention_forward_kernel<T>, flash::forward_smem);
        allow(flash_attention_backward_dq_kernel<T>, flash::dq_smem);
        allow(flash_attention_backward_dkdv_kernel<T>, flash::dkdv_smem);
    }
    CRAM_CUDA_CHECK(cudaSetDevice(current));
    return known[ctx.device()] = arch;
}

template <class T>
attention_route attention_route_for(const context& ctx, index_t seq, index_t heads, index_t head_dim) {
    attention_route r = attention_route_for<T>(ctx.attention, ctx.props(), seq, heads, head_dim);
    if constexpr (is_half_storage_v<T>) {
        if (r.flash && flash_device_setup<T>(ctx) < flash_mma_arch<T>)
            return {false, "this build's code for the GPU is from an architecture without the tensor-core MMA "
                           "(rebuild with -DCMAKE_CUDA_ARCHITECTURES including the GPU's)"};
    }
    return r;
}

namespace detail {
inline flash_dropout flash_dropout_for(float p, std::uint64_t seed, std::uint32_t stream) {
    if (p <= 0.0f) return {};
    return {true, ops::dropout_threshold(p), ops::dropout_scale<float>(p), seed, stream};
}
// The flash kernels move 16-byte pieces. Refused rather than routed to the GEMM path: the backward must take
// the forward's path, and it sees other buffers.
inline void require_flash_aligned(std::initializer_list<const void*> ptrs) {
    for (const void* p : ptrs)
        CRAM_CHECK(aligned16(p), "flash attention needs 16-byte aligned buffers (got ", p,
                   "); set context::attention = attention_kernel::gemm for this call");
}
}  // namespace detail

// The fp32 log-sum-exp rows [batch, heads, seq] the flash forward leaves at the start of the saved `probs`.
template <class T>
float* attention_lse(T* probs) {
    return reinterpret_cast<float*>(probs);
}
template <class T>
const float* attention_lse(const T* probs) {
    return reinterpret_cast<const float*>(probs);
}

// out[batch*seq, hidden] from the fused qkv[batch*seq, 3*hidden]; `probs` (batch*heads*seq*seq elements) keeps
// what the backward needs: the probabilities (GEMM path) or the log-sum-exp rows (flash, attention_lse).
template <class T>
void attention_forward(context& ctx, T* out, T* probs, const T* qkv, const std::int32_t* lengths, index_t batch,
                       index_t seq, index_t heads, index_t head_dim, float dropout = 0.0f, std::uint64_t seed = 0,
                       std::uint32_t stream = 0) {
    CRAM_CHECK(dropout >= 0.0f && dropout < 1.0f, "attention dropout ", dropout, " outside [0, 1)");
    CRAM_CHECK(seq > 0 && seq <= detail::attention_max_seq, "attention supports sequences of 1..",
               detail::attention_max_seq, " tokens, got ", seq);
    if (batch <= 0) return;
    const index_t hidden = heads * head_dim, n = batch * seq * hidden, bh = batch * heads, ss = seq * seq,
                  sd = seq * head_dim;
    if constexpr (is_half_storage_v<T>) {
        if (attention_route_for<T>(ctx, seq, heads, head_dim).flash) {
            detail::require_flash_aligned({out, probs, qkv});
            const unsigned grid = flash::grid(bh, seq);
            CRAM_LAUNCH(grid, flash::threads, flash::forward_smem, ctx.stream(), flash_attention_forward_kernel<T>)(
                out, attention_lse(probs), qkv, lengths, static_cast<int>(heads), static_cast<int>(seq),
                ops::attention_scale<float>(head_dim), detail::flash_dropout_for(dropout, seed, stream));
            CRAM_CUDA_CHECK_LAUNCH();
            return;
        }
    }
    using carve = detail::scratch_carver;
    const bool drop = dropout > 0.0f;
    const std::size_t need =
        4 * carve::bytes<T>(n) + carve::bytes<float>(bh * ss) + (drop ? carve::bytes<T>(bh * ss) : 0);
    carve sc{static_cast<std::byte*>(ctx.scratch(need))};
    T* q = sc.take<T>(n);
    T* k = sc.take<T>(n);
    T* v = sc.take<T>(n);
    T* o = sc.take<T>(n);
    float* scores = sc.take<float>(bh * ss);
    T* weights = probs;  // what multiplies V: P, or its dropped copy
    if (drop) weights = sc.take<T>(bh * ss);
    detail::split_heads(ctx, q, qkv, 3 * hidden, batch, seq, heads, head_dim);
    detail::split_heads(ctx, k, qkv + hidden, 3 * hidden, batch, seq, heads, head_dim);
    detail::split_heads(ctx, v, qkv + 2 * hidden, 3 * hidden, batch, seq, heads, head_dim);
    const float scale = ops::attention_scale<float>(head_dim);
    gemm<T, float, float>(ctx, false, true, seq, seq, head_dim, scale, q, head_dim, sd, k, head_dim, sd, 0.0f, scores,
                          seq, ss, static_cast<int>(bh));
    CRAM_LAUNCH(detail::warp_rows_grid(ctx, bh * seq), 256, 0, ctx.stream(), attention_softmax_kernel<T>)(
        probs, scores, lengths, batch, heads, seq);
    CRAM_CUDA_CHECK_LAUNCH();
    if (drop) cuda::dropout_forward(ctx, weights, probs, bh * ss, dropout, seed, stream);
    gemm<T, T, T>(ctx, false, false, seq, head_dim, seq, 1.0f, weights, seq, ss, v, head_dim, sd, 0.0f, o, head_dim,
                  sd, static_cast<int>(bh));
    detail::merge_heads(ctx, out, o, hidden, batch, seq, heads, head_dim);
}

// dqkv (overwritten) from dout[batch*seq, hidden], the forward's qkv, out and saved `probs`.
template <class T>
void attention_backward(context& ctx, T* dqkv, const T* dout, const T* qkv, const T* out, const T* probs,
                        const std::int32_t* lengths, index_t batch, index_t seq, index_t heads, index_t head_dim,
                        float dropout = 0.0f, std::uint64_t seed = 0, std::uint32_t stream = 0) {
    CRAM_CHECK(dropout >= 0.0f && dropout < 1.0f, "attention dropout ", dropout, " outside [0, 1)");
    CRAM_CHECK(seq > 0 && seq <= detail::attention_max_seq, "attention supports sequences of 1..",
               detail::attention_max_seq, " tokens, got ", seq);
    (void)lengths;  // the GEMM path needs no lengths: masked keys have zero probability, so zero gradients
    if (batch <= 0) return;
    const index_t hidden = heads * head_dim, n = batch * seq * hidden, bh = batch * heads, ss = seq * seq,
                  sd = seq * head_dim;
    if constexpr (is_half_storage_v<T>) {
        if (attention_route_for<T>(ctx, seq, heads, head_dim).flash) {
            detail::require_flash_aligned({dqkv, dout, out, qkv, probs});
            float* delta = static_cast<float*>(ctx.scratch(static_cast<std::size_t>(bh * seq) * sizeof(float)));
            const float* lse = attention_lse(probs);
            const unsigned grid = flash::grid(bh, seq);
            const float scale = ops::attention_scale<float>(head_dim);
            const flash_dropout drop = detail::flash_dropout_for(dropout, seed, stream);
            CRAM_LAUNCH(grid, flash::threads, flash::dq_smem, ctx.stream(), flash_attention_backward_dq_kernel<T>)(
                dqkv, delta, dout, out, qkv, lse, lengths, static_cast<int>(heads), static_cast<int>(seq), scale, drop);
            CRAM_CUDA_CHECK_LAUNCH();
            CRAM_LAUNCH(grid, flash::threads, flash::dkdv_smem, ctx.stream(), flash_attention_backward_dkdv_kernel<T>)(
                dqkv, dout, qkv, lse, delta, lengths, static_cast<int>(heads), static_cast<int>(seq), scale, drop);
            CRAM_CUDA_CHECK_LAUNCH();
            return;
        }
    }
    using carve = detail::scratch_carver;
    const bool drop = dropout > 0.0f;
    const std::size_t need = 7 * carve::bytes<T>(n) + carve::bytes<float>(bh * ss) + carve::bytes<T>(bh * ss) +
                             (drop ? carve::bytes<T>(bh * ss) : 0);
    carve sc{static_cast<std::byte*>(ctx.scratch(need))};
    T* q = sc.take<T>(n);
    T* k = sc.take<T>(n);
    T* v = sc.take<T>(n);
    T* dO = sc.take<T>(n);
    T* dq = sc.take<T>(n);
    T* dk = sc.take<T>(n);
    T* dv = sc.take<T>(n);
    float* dp = sc.take<float>(bh * ss);
    T* ds = sc.take<T>(bh * ss);
    const T* weights = probs;  // what multiplied V in forward: P, or its dropped copy (regenerated)
    if (drop) {
        T* dropped = sc.take<T>(bh * ss);
        cuda::dropout_forward(ctx, dropped, probs, bh * ss, dropout, seed, stream);
        weights = dropped;
    }
    detail::split_heads(ctx, q, qkv, 3 * hidden, batch, seq, heads, head_dim);
    detail::split_heads(ctx, k, qkv + hidden, 3 * hidden, batch, seq, heads, head_dim);
    detail::split_heads(ctx, v, qkv + 2 * hidden, 3 * hidden, batch, seq, heads, head_dim);
    detail::split_heads(ctx, dO, dout, hidden, batch, seq, heads, head_dim);
    const int nb = static_cast<int>(bh);
    // dV = D^T dO;  dD = dO V^T (D = P without dropout)
    gemm<T, T, T>(ctx, true, false, seq, head_dim, seq, 1.0f, weights, seq, ss, dO, head_dim, sd, 0.0f, dv, head_dim,
                  sd, nb);
    gemm<T, float, float>(ctx, false, true, seq, seq, head_dim, 1.0f, dO, head_dim, sd, v, head_dim, sd, 0.0f, dp, seq,
                          ss, nb);
    const float scale = ops::attention_scale<float>(head_dim);
    CRAM_LAUNCH(detail::warp_rows_grid(ctx, bh * seq), 256, 0, ctx.stream(), attention_softmax_backward_kernel<T>)(
        ds, probs, dp, bh * seq, seq, scale, drop, ops::dropout_threshold(dropout),
        drop ? ops::dropout_scale<float>(dropout) : 1.0f, seed, stream);
    CRAM_CUDA_CHECK_LAUNCH();
    // dQ = dS K;  dK = dS^T Q
    gemm<T, T, T>(ctx, false, false, seq, head_dim, seq, 1.0f, ds, seq, ss, k, head_dim, sd, 0.0f, dq, head_dim, sd, nb);
    gemm<T, T, T>(ctx, true, false, seq, head_dim, seq, 1.0f, ds, seq, ss, q, head_dim, sd, 0.0f, dk, head_dim, sd, nb);
    detail::merge_heads(ctx, dqkv, dq, 3 * hidden, batch, seq, heads, head_dim);
    detail::merge_heads(ctx, dqkv + hidden, dk, 3 * hidden, batch, seq, heads, head_dim);
    detail::merge_heads(ctx, dqkv + 2 * hidden, dv, 3 * hidden, batch, seq, heads, head_dim);
}

}  // namespace cram::cuda
