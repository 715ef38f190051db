// Multi-head attention for short sequences (seq <= 512; crammed BERT uses 128), forward and backward.
// The reference path: heads are split into [batch, heads, seq, head_dim] copies, the score and value
// products are strided-batched cuBLASLt GEMMs (bf16 in, fp32 accumulate, fp32 scores), and softmax
// (forward) and its backward are one warp per row. The probabilities are stored in bf16 (the model's
// probs buffer) for the backward pass. A fused forward that keeps the scores on chip (tensor-core WMMA,
// seq <= 128, head_dim 64) and a fused backward (one CTA per sequence and head) are selected by
// context::fused_attention where they can run: bf16 storage on an sm_80+ device (bf16 WMMA is Ampere's; their
// device code is compiled to a trap for older targets, so an sm_75 build still compiles). fp16, and bf16 below
// sm_80, always take the reference path. The CUDA twin of cram/ops/attention.hpp (score scale and softmax backward rule,
// and the attention-dropout keep rule). Attention dropout (p > 0) runs on the reference path only: the value
// product reads a dropped copy of the probabilities (cuda::dropout_forward over the whole probs tensor, the
// mask ops::attention_keep describes), the saved probs stay undropped, and backward applies the same mask to
// dP before the softmax backward; the fused kernels are not used when p > 0.
#pragma once

#include <cstdint>
#include <type_traits>

#include <mma.h>

#include "cram/core/error.hpp"
#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/dropout.hpp"
#include "cram/cuda/error.hpp"
#include "cram/cuda/gemm.hpp"
#include "cram/ops/attention.hpp"

namespace cram::cuda {

// bf16 WMMA fragments exist from sm_80 (mma.h declares them for the host pass and for sm_80+ device passes).
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define CRAM_CUDA_BF16_MMA 1
#else
#define CRAM_CUDA_BF16_MMA 0
#endif

namespace detail {
constexpr int attention_max_seq = 512;
constexpr int softmax_per_lane = attention_max_seq / 32;

// Whether the fused kernels may run on this device: they are bf16 tensor-core code (sm_80+) and need more
// shared memory per block than the device may have (smem bytes, opt-in).
inline bool fused_attention_runs_on(const context& ctx, std::size_t smem) {
    return ctx.props().major >= 8 && ctx.props().sharedMemPerBlockOptin >= smem;
}

// One warp: out[16][16 n_tiles] (fp32, row-major, leading dimension ldo) = A[16][16 k_tiles] B[16 k_tiles][16 n_tiles]
// with bf16 tensor-core tiles and fp32 accumulation. A's tile kt is read at a + kt * a_k_step and B's tile
// (kt, nt) at b + kt * b_k_step + nt * b_n_step, in the WMMA layouts LA and LB: a transposed operand is
// the same shared-memory tile read in the other layout.
template <class LA, class LB>
__device__ inline void warp_mma_16xn(float* out, int ldo, int n_tiles, int k_tiles, const __nv_bfloat16* a, int lda,
                                     int a_k_step, const __nv_bfloat16* b, int ldb, int b_k_step, int b_n_step) {
#if CRAM_CUDA_BF16_MMA
    namespace w = nvcuda::wmma;
    for (int nt = 0; nt < n_tiles; ++nt) {
        w::fragment<w::accumulator, 16, 16, 16, float> acc;
        w::fill_fragment(acc, 0.0f);
        for (int kt = 0; kt < k_tiles; ++kt) {
            w::fragment<w::matrix_a, 16, 16, 16, __nv_bfloat16, LA> fa;
            w::fragment<w::matrix_b, 16, 16, 16, __nv_bfloat16, LB> fb;
            w::load_matrix_sync(fa, a + kt * a_k_step, lda);
            w::load_matrix_sync(fb, b + kt * b_k_step + nt * b_n_step, ldb);
            w::mma_sync(acc, fa, fb, acc);
        }
        w::store_matrix_sync(out + nt * 16, acc, ldo, w::mem_row_major);
    }
#else
    __trap();  // not reached: the launchers select the fused kernels on sm_80+ only
#endif
}

// One warp: rows first_row..first_row+15 of a fp32 tile [16][ld_tile] (D columns) to bf16 rows
// dst[r * ld_dst .. + D), skipping rows >= rows (padding past the sequence).
template <int D>
__device__ inline void warp_store_rows(__nv_bfloat16* dst, index_t ld_dst, const float* tile, int ld_tile,
                                       int first_row, int rows, int lane) {
    for (int i = lane; i < 16 * D; i += 32) {
        const int m = i / D, d = i % D;
        if (first_row + m < rows)
            dst[static_cast<index_t>(first_row + m) * ld_dst + d] = __float2bfloat16_rn(tile[m * ld_tile + d]);
    }
}

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
// Fused forward for seq <= SMAX (128) and head_dim D (64): one CTA of 4 warps per (sequence, head, 64
// queries). K, V and the query block are staged in shared memory; each warp computes its 16 x seq score
// tile with bf16 tensor-core MMAs (fp32 accumulate), the softmax in fp32 (probabilities stored to global
// in bf16 for the backward pass, exactly what the GEMM path stores), then P V. Scores never leave the SM.
template <int D, int SMAX>
__global__ void __launch_bounds__(128) attention_forward_fused_kernel(cram::bf16* __restrict__ out,
                                                                      cram::bf16* __restrict__ probs,
                                                                      const cram::bf16* __restrict__ qkv,
                                                                      const std::int32_t* __restrict__ lengths,
                                                                      int heads, int seq, float scale) {
    static_assert(D % 16 == 0 && SMAX % 32 == 0 && D <= SMAX, "fused attention tile shapes");
#if !CRAM_CUDA_BF16_MMA
    __trap();  // bf16 WMMA needs sm_80; attention_forward never launches this below it
#else
    namespace w = nvcuda::wmma;
    using bf = __nv_bfloat16;
    constexpr int QB = 64;  // queries per CTA, 16 per warp
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bf* sq = reinterpret_cast<bf*>(smem_raw);     // [QB][D]
    bf* sk = sq + QB * D;                         // [SMAX][D]
    bf* sv = sk + SMAX * D;                       // [SMAX][D]
    float* ss = reinterpret_cast<float*>(sv + SMAX * D);  // [4][16][SMAX] scores, then the output tile
    bf* sp = reinterpret_cast<bf*>(ss + 4 * 16 * SMAX);   // [4][16][SMAX] probabilities
    const int bh = blockIdx.x, b = bh / heads, h = bh % heads;
    const int q0 = blockIdx.y * QB;
    const int H = heads * D, row = 3 * H;
    const int s_pad = (seq + 15) / 16 * 16;
    const bf* base = reinterpret_cast<const bf*>(qkv) + static_cast<index_t>(b) * seq * row;
    constexpr int V8 = D / 8;  // 16-byte chunks per head row
    for (int i = threadIdx.x; i < s_pad * V8; i += blockDim.x) {
        const int r = i / V8, c = (i % V8) * 8;
        uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
        if (r < seq) {
            kv = *reinterpret_cast<const uint4*>(base + static_cast<index_t>(r) * row + H + h * D + c);
            vv = *reinterpret_cast<const uint4*>(base + static_cast<index_t>(r) * row + 2 * H + h * D + c);
        }
        *reinterpret_cast<uint4*>(sk + r * D + c) = kv;
        *reinterpret_cast<uint4*>(sv + r * D + c) = vv;
    }
    for (int i = threadIdx.x; i < QB * V8; i += blockDim.x) {
        const int r = i / V8, c = (i % V8) * 8;
        uint4 qv = make_uint4(0, 0, 0, 0);
        if (q0 + r < seq) qv = *reinterpret_cast<const uint4*>(base + static_cast<index_t>(q0 + r) * row + h * D + c);
        *reinterpret_cast<uint4*>(sq + r * D + c) = qv;
    }
    __syncthreads();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r0 = warp * 16;
    if (q0 + r0 >= seq) return;  // no barrier follows: idle warps may leave
    float* my_s = ss + warp * 16 * SMAX;
    bf* my_p = sp + warp * 16 * SMAX;
    // scores = Q K^T (unscaled), fp32; K read column-major is K^T: (d, key) = K[key][d]
    detail::warp_mma_16xn<w::row_major, w::col_major>(my_s, SMAX, s_pad / 16, D / 16, sq + r0 * D, D, 16, sk, D, 16,
                                                      16 * D);
    __syncwarp();
    const int len = lengths ? min(static_cast<int>(lengths[b]), seq) : seq;
    constexpr int PL = SMAX / 32;
    for (int m = 0; m < 16; ++m) {
        const int qi = q0 + r0 + m;
        float v[PL];
        float mx = -INFINITY;
#pragma unroll
        for (int t = 0; t < PL; ++t) {
            const int j = lane + 32 * t;
            v[t] = j < len ? my_s[m * SMAX + j] * scale : -INFINITY;
            mx = fmaxf(mx, v[t]);
        }
        mx = warp_max(mx);
        float sum = 0.0f;
#pragma unroll
        for (int t = 0; t < PL; ++t) {
            const int j = lane + 32 * t;
            v[t] = j < len ? __expf(v[t] - mx) : 0.0f;
            sum += v[t];
        }
        sum = warp_sum(sum);
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
#pragma unroll
        for (int t = 0; t < PL; ++t) {
            const int j = lane + 32 * t;
            const bf p = __float2bfloat16_rn(v[t] * inv);
            if (j < s_pad) my_p[m * SMAX + j] = p;
            if (qi < seq && j < seq) reinterpret_cast<bf*>(probs)[(static_cast<index_t>(bh) * seq + qi) * seq + j] = p;
        }
    }
    __syncwarp();
    // out = P V, staged through my_s (the scores are consumed)
    detail::warp_mma_16xn<w::row_major, w::row_major>(my_s, SMAX, D / 16, s_pad / 16, my_p, SMAX, 16, sv, D, 16 * D, 16);
    __syncwarp();
    detail::warp_store_rows<D>(reinterpret_cast<bf*>(out) + static_cast<index_t>(b) * seq * H + h * D, H, my_s, SMAX,
                               q0 + r0, seq, lane);
#endif
}

// Fused backward for seq <= SMAX (128) and head_dim D (64): one CTA of SMAX/16 warps per (sequence, head),
// so dK and dV (sums over all queries) need no atomics. Q, K, V, dO and the saved probabilities P are
// staged in shared memory (160 KiB: fits sm_80's 163 KiB and sm_90's 227 KiB opt-in). Warp w owns key rows
// 16w.. for dV = P^T dO and dK = dS^T Q, and query rows 16w.. for dP = dO V^T, dS = P (dP - rowsum(P dP))
// / sqrt(D) and dQ = dS K. bf16 WMMA tiles with fp32 accumulation; dS is rounded to bf16 for its two
// products, as the GEMM path does.
template <int D, int SMAX>
__global__ void __launch_bounds__(SMAX * 2) attention_backward_fused_kernel(cram::bf16* __restrict__ dqkv,
                                                                           const cram::bf16* __restrict__ dout,
                                                                           const cram::bf16* __restrict__ qkv,
                                                                           const cram::bf16* __restrict__ probs,
                                                                           int heads, int seq, float scale) {
    static_assert(D % 16 == 0 && SMAX % 32 == 0 && D <= SMAX && SMAX <= 2 * D, "fused attention tile shapes");
#if !CRAM_CUDA_BF16_MMA
    __trap();  // bf16 WMMA needs sm_80; attention_backward never launches this below it
#else
    namespace w = nvcuda::wmma;
    using bf = __nv_bfloat16;
    extern __shared__ __align__(128) unsigned char smem_raw[];
    bf* sq = reinterpret_cast<bf*>(smem_raw);  // [SMAX][D]
    bf* sk = sq + SMAX * D;                    // [SMAX][D]
    bf* sv = sk + SMAX * D;                    // [SMAX][D]
    bf* sdo = sv + SMAX * D;                   // [SMAX][D]
    bf* sp = sdo + SMAX * D;                   // [SMAX][SMAX]
    float* sf = reinterpret_cast<float*>(sp + SMAX * SMAX);  // [warps][16][SMAX] fp32 staging
    bf* sds = sv;  // [SMAX][SMAX] dS, once V and dO are consumed (2 * SMAX * D >= SMAX * SMAX)
    const int bh = blockIdx.x, b = bh / heads, h = bh % heads;
    const int H = heads * D, row = 3 * H;
    const int s_pad = (seq + 15) / 16 * 16;
    const bf* base = reinterpret_cast<const bf*>(qkv) + static_cast<index_t>(b) * seq * row;
    const bf* gdo = reinterpret_cast<const bf*>(dout) + static_cast<index_t>(b) * seq * H;
    const bf* gp = reinterpret_cast<const bf*>(probs) + static_cast<index_t>(bh) * seq * seq;
    bf* gdq = reinterpret_cast<bf*>(dqkv) + static_cast<index_t>(b) * seq * row + h * D;
    constexpr int V8 = D / 8;
    for (int i = threadIdx.x; i < s_pad * V8; i += blockDim.x) {
        const int r = i / V8, c = (i % V8) * 8;
        uint4 q = make_uint4(0, 0, 0, 0), k = q, v = q, d = q;
        if (r < seq) {
            const bf* src = base + static_cast<index_t>(r) * row + h * D + c;
            q = *reinterpret_cast<const uint4*>(src);
            k = *reinterpret_cast<const uint4*>(src + H);
            v = *reinterpret_cast<const uint4*>(src + 2 * H);
            d = *reinterpret_cast<const uint4*>(gdo + static_cast<index_t>(r) * H + h * D + c);
        }
        *reinterpret_cast<uint4*>(sq + r * D + c) = q;
        *reinterpret_cast<uint4*>(sk + r * D + c) = k;
        *reinterpret_cast<uint4*>(sv + r * D + c) = v;
        *reinterpret_cast<uint4*>(sdo + r * D + c) = d;
    }
    const bf zero = __float2bfloat16_rn(0.0f);
    for (int i = threadIdx.x; i < s_pad * s_pad; i += blockDim.x) {
        const int r = i / s_pad, c = i % s_pad;
        sp[r * SMAX + c] = (r < seq && c < seq) ? gp[static_cast<index_t>(r) * seq + c] : zero;
    }
    __syncthreads();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, r0 = warp * 16;
    const bool active = r0 < s_pad;
    float* my_f = sf + warp * 16 * SMAX;
    if (active) {
        // dV[keys r0..] = P^T dO; P read column-major is P^T: (key, query) = P[query][key]
        detail::warp_mma_16xn<w::col_major, w::row_major>(my_f, SMAX, D / 16, s_pad / 16, sp + r0, SMAX, 16 * SMAX, sdo,
                                                          D, 16 * D, 16);
        __syncwarp();
        detail::warp_store_rows<D>(gdq + 2 * H, row, my_f, SMAX, r0, seq, lane);
        __syncwarp();
        // dP[queries r0..] = dO V^T; V read column-major is V^T: (d, key) = V[key][d]
        detail::warp_mma_16xn<w::row_major, w::col_major>(my_f, SMAX, s_pad / 16, D / 16, sdo + r0 * D, D, 16, sv, D, 16,
                                                          16 * D);
        __syncwarp();
        // dS = P (dP - sum_j P dP) * scale, in place in the staging tile
        for (int m = 0; m < 16; ++m) {
            const bf* prow = sp + (r0 + m) * SMAX;
            float* frow = my_f + m * SMAX;
            float dot = 0.0f;
            for (int j = lane; j < s_pad; j += 32) dot += __bfloat162float(prow[j]) * frow[j];
            dot = warp_sum(dot);
            for (int j = lane; j < s_pad; j += 32)
                frow[j] = ops::softmax_backward(__bfloat162float(prow[j]), frow[j], dot, scale);
        }
    }
    __syncthreads();  // every warp is done with V and dO: their space becomes dS
    if (active)
        for (int i = lane; i < 16 * s_pad; i += 32) {
            const int m = i / s_pad, j = i % s_pad;
            sds[(r0 + m) * SMAX + j] = __float2bfloat16_rn(my_f[m * SMAX + j]);
        }
    __syncthreads();
    if (!active) return;
    // dQ[queries r0..] = dS K
    detail::warp_mma_16xn<w::row_major, w::row_major>(my_f, SMAX, D / 16, s_pad / 16, sds + r0 * SMAX, SMAX, 16, sk, D,
                                                      16 * D, 16);
    __syncwarp();
    detail::warp_store_rows<D>(gdq, row, my_f, SMAX, r0, seq, lane);
    __syncwarp();
    // dK[keys r0..] = dS^T Q; dS read column-major is dS^T: (key, query) = dS[query][key]
    detail::warp_mma_16xn<w::col_major, w::row_major>(my_f, SMAX, D / 16, s_pad / 16, sds + r0, SMAX, 16 * SMAX, sq, D,
                                                      16 * D, 16);
    __syncwarp();
    detail::warp_store_rows<D>(gdq + H, row, my_f, SMAX, r0, seq, lane);
#endif
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
    split_heads_kernel<T><<<grid_for(ctx, n, 256), 256, 0, ctx.stream()>>>(dst, src, ld, batch, seq, heads, head_dim);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void merge_heads(context& ctx, T* dst, const T* src, index_t ld, index_t batch, index_t seq, index_t heads,
                 index_t head_dim) {
    const index_t n = batch * heads * seq * head_dim;
    merge_heads_kernel<T><<<grid_for(ctx, n, 256), 256, 0, ctx.stream()>>>(dst, src, ld, batch, seq, heads, head_dim);
    CRAM_CUDA_CHECK_LAUNCH();
}
inline unsigned warp_rows_grid(context& ctx, index_t rows) {
    const index_t blocks = (rows + 7) / 8;  // 8 warps per 256-thread block
    return static_cast<unsigned>(std::max<index_t>(1, std::min<index_t>(blocks, index_t(ctx.sm_count()) * 16)));
}
}  // namespace detail

// out[batch*seq, hidden] and probs[batch, heads, seq, seq] from the fused qkv[batch*seq, 3*hidden].
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
    if constexpr (std::is_same_v<T, cram::bf16>) {
        constexpr int D = 64, SMAX = 128;
        constexpr std::size_t smem = (64 * D + 2 * SMAX * D) * 2 + 4 * 16 * SMAX * (4 + 2);
        if (ctx.fused_attention && dropout <= 0.0f && head_dim == D && seq <= SMAX && hidden % 8 == 0 && aligned16(qkv) &&
            detail::fused_attention_runs_on(ctx, smem)) {
            static bool configured = false;  // per process; the attribute is per device function
            if (!configured) {
                CRAM_CUDA_CHECK(cudaFuncSetAttribute(attention_forward_fused_kernel<D, SMAX>,
                                                     cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
                configured = true;
            }
            const dim3 grid(static_cast<unsigned>(bh), static_cast<unsigned>((seq + 63) / 64));
            attention_forward_fused_kernel<D, SMAX><<<grid, 128, smem, ctx.stream()>>>(
                out, probs, qkv, lengths, static_cast<int>(heads), static_cast<int>(seq),
                ops::attention_scale<float>(head_dim));
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
    attention_softmax_kernel<T><<<detail::warp_rows_grid(ctx, bh * seq), 256, 0, ctx.stream()>>>(probs, scores, lengths,
                                                                                               batch, heads, seq);
    CRAM_CUDA_CHECK_LAUNCH();
    if (drop) cuda::dropout_forward(ctx, weights, probs, bh * ss, dropout, seed, stream);
    gemm<T, T, T>(ctx, false, false, seq, head_dim, seq, 1.0f, weights, seq, ss, v, head_dim, sd, 0.0f, o, head_dim,
                  sd, static_cast<int>(bh));
    detail::merge_heads(ctx, out, o, hidden, batch, seq, heads, head_dim);
}

// dqkv (overwritten) from dout[batch*seq, hidden], qkv and the saved probs.
template <class T>
void attention_backward(context& ctx, T* dqkv, const T* dout, const T* qkv, const T* probs,
                        const std::int32_t* lengths, index_t batch, index_t seq, index_t heads, index_t head_dim,
                        float dropout = 0.0f, std::uint64_t seed = 0, std::uint32_t stream = 0) {
    CRAM_CHECK(dropout >= 0.0f && dropout < 1.0f, "attention dropout ", dropout, " outside [0, 1)");
    CRAM_CHECK(seq > 0 && seq <= detail::attention_max_seq, "attention supports sequences of 1..",
               detail::attention_max_seq, " tokens, got ", seq);
    (void)lengths;  // masked keys have zero probability, which zeroes their gradients
    if (batch <= 0) return;
    const index_t hidden = heads * head_dim, n = batch * seq * hidden, bh = batch * heads, ss = seq * seq,
                  sd = seq * head_dim;
    if constexpr (std::is_same_v<T, cram::bf16>) {
        constexpr int D = 64, SMAX = 128;
        constexpr std::size_t smem = (4 * SMAX * D + SMAX * SMAX) * 2 + (SMAX / 16) * 16 * SMAX * 4;
        if (ctx.fused_attention && dropout <= 0.0f && head_dim == D && seq <= SMAX && hidden % 8 == 0 &&
            aligned16(qkv) && aligned16(dout) && aligned16(dqkv) && detail::fused_attention_runs_on(ctx, smem)) {  // 160 KiB
            static bool configured = false;
            if (!configured) {
                CRAM_CUDA_CHECK(cudaFuncSetAttribute(attention_backward_fused_kernel<D, SMAX>,
                                                     cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
                configured = true;
            }
            attention_backward_fused_kernel<D, SMAX><<<static_cast<unsigned>(bh), SMAX * 2, smem, ctx.stream()>>>(
                dqkv, dout, qkv, probs, static_cast<int>(heads), static_cast<int>(seq),
                ops::attention_scale<float>(head_dim));
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
    attention_softmax_backward_kernel<T><<<detail::warp_rows_grid(ctx, bh * seq), 256, 0, ctx.stream()>>>(
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
