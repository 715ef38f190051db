// Flash-style attention for head_dim 64 and sequences up to attention.hpp's 512 tokens: the scores never
// leave the SM. The forward streams key blocks of 64 through shared memory with an online softmax and keeps
// one fp32 log-sum-exp per query row (lse = max + log(sum exp)); the backward recomputes the probabilities
// from it (P = exp(scale QK^T - lse)) instead of reading stored ones, so nothing of size seq x seq is
// written to memory in either direction.
//
// Tensor-core tiles through WMMA (16x16x16, 16-bit inputs, fp32 accumulation), for both 16-bit storage
// types: bf16 needs sm_80, fp16 runs from sm_70 (the paper's 2080 Ti). Three kernels, each a CTA of 4 warps
// (128 threads) over 64 rows, 16 rows a warp, 53-61 KiB of shared memory (Turing's 64 KiB opt-in holds them).
// On an H100/H200 SM the forward fits three CTAs; the backward kernels' registers (ptxas, sm_90: 228 and 255 a
// thread, docs/cuda.md) hold them to two:
//   forward:       per (sequence, head, 64 queries): S = QK^T, online softmax, O += PV per key block;
//   backward dQ:   per (sequence, head, 64 queries): delta = rowsum(dO o O) (written for the next kernel),
//                  then per key block P, dP = dO V^T, dS = P (dP - delta) scale, dQ += dS K;
//   backward dKdV: per (sequence, head, 64 keys): per query block P^T, dV += P^T dO, dP^T = V dO^T,
//                  dS^T, dK += dS^T Q. Each CTA owns its rows of dQ or of dK and dV: no atomics.
// The accumulators that need no rescaling (dQ, dK, dV) stay in registers as WMMA fragments; the forward's
// output, rescaled per row as the running maximum moves, lives in fp32 shared memory (WMMA does not expose
// which row a fragment element belongs to). Tiles are staged with 16-byte loads into rows padded by 8
// elements (fewer bank conflicts; every WMMA pointer stays 32-byte aligned).
//
// Semantics are cram/ops/attention.hpp's: keys at or beyond lengths[b] get no weight (every query row, padded
// ones included, attends over the valid keys), and their dK, dV are zero; a sequence of length 0 gets zero
// output and lse = -inf. Attention dropout uses ops::attention_keep on the same flat index into
// [batch, heads, seq, seq] as the GEMM path, so both paths drop the same elements; the row sums (lse, delta)
// are those of the undropped probabilities, as the softmax backward requires.
//
// Not yet run on a GPU (docs/cuda.md): context::attention selects this path by default where it applies, and
// attention_kernel::gemm is the reference path, one switch away.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <mma.h>

#include "cram/cuda/common.hpp"
#include "cram/ops/attention.hpp"
#include "cram/ops/dropout.hpp"

namespace cram::cuda {

// Attention dropout as the kernels apply it (off when !on).
struct flash_dropout {
    bool on = false;
    std::uint32_t threshold = 0;
    float scale = 1.0f;
    std::uint64_t seed = 0;
    std::uint32_t stream = 0;
};

namespace flash {

constexpr int head_dim = 64;  // the one head size the kernels are built for (every preset's)
constexpr int rows = 64;      // queries or keys per CTA and per streamed block
constexpr int warps = 4;
constexpr int threads = 32 * warps;
constexpr int lds = head_dim + 8;  // 16-bit tile row stride (elements): a multiple of 8, rows shift banks
constexpr int ldf = rows + 4;      // fp32 tile row stride (elements): a multiple of 4
static_assert(head_dim <= rows, "the fp32 tile also holds a 16 x head_dim output block");

constexpr std::size_t tile16_bytes = std::size_t(rows) * lds * 2;        // 64 rows of 16-bit elements
constexpr std::size_t tile32_bytes = std::size_t(warps) * 16 * ldf * 4;  // 16 fp32 rows per warp
constexpr std::size_t forward_smem = 3 * tile16_bytes + 2 * tile32_bytes;
constexpr std::size_t dq_smem = 4 * tile16_bytes + tile32_bytes;
constexpr std::size_t dkdv_smem = 4 * tile16_bytes + tile32_bytes + 2 * rows * sizeof(float);
constexpr std::size_t max_smem = forward_smem > dkdv_smem ? forward_smem : dkdv_smem;
static_assert(max_smem <= 64 * 1024, "Turing (sm_75) allows 64 KiB of shared memory per block");

// One CTA per 64 rows of each (sequence, head), in one grid dimension (up to 2^31 - 1 blocks).
inline unsigned grid(index_t batch_heads, index_t seq) {
    return static_cast<unsigned>(batch_heads * ((seq + rows - 1) / rows));
}

template <class T>
struct wmma_type;  // the CUDA type WMMA fragments use for a storage type
template <>
struct wmma_type<cram::bf16> {
    using type = __nv_bfloat16;
};
template <>
struct wmma_type<cram::fp16> {
    using type = __half;
};

// Whether the device pass being compiled has T's tensor-core MMA (bf16: sm_80; fp16: sm_70). Kernels for a
// type the pass lacks compile to a trap; the launchers never select them there (attention_route_for, which also
// asks which pass's code the device loads).
template <class T>
inline constexpr bool mma_compiled =
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 700
    false;
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    std::is_same_v<T, cram::fp16>;
#else
    true;
#endif

// Rows first..first+63 of a head's [seq][head_dim] slice (row stride ld elements) into a [64][lds] tile with
// 16-byte copies; rows at or past `limit` are zero.
template <class T>
__device__ inline void stage(T* tile, const T* src, index_t ld, int first, int limit) {
    constexpr int chunks = head_dim / 8;  // 16-byte pieces per row
    for (int i = threadIdx.x; i < rows * chunks; i += threads) {
        const int r = i / chunks, c = (i % chunks) * 8;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (first + r < limit) v = *reinterpret_cast<const uint4*>(src + static_cast<index_t>(first + r) * ld + c);
        *reinterpret_cast<uint4*>(tile + r * lds + c) = v;
    }
}

// A lane's 32 consecutive fp32 values (a half row) to 16-bit storage with four 16-byte stores.
template <class T>
__device__ inline void store_half_row(T* dst, const float* src) {
#pragma unroll
    for (int v = 0; v < 4; ++v) {
        vec16<T> x;
#pragma unroll
        for (int i = 0; i < 8; ++i) x.v[i] = from_f32<T>(src[8 * v + i]);
        store16(dst + 8 * v, x);
    }
}

// One warp: out[16][rows] (fp32, row stride ldf) = A B^T, where A (16 x head_dim) is held as fragments and B is a
// [rows][lds] tile of head_dim-wide rows, read column-major (that is B^T): Q K^T, dO V^T, K Q^T and V dO^T.
template <class W, class AFrag>
__device__ inline void warp_abt(float* out, const AFrag (&a)[head_dim / 16], const W* b) {
    namespace w = nvcuda::wmma;
#pragma unroll
    for (int nt = 0; nt < rows / 16; ++nt) {
        w::fragment<w::accumulator, 16, 16, 16, float> acc;
        w::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kt = 0; kt < head_dim / 16; ++kt) {
            w::fragment<w::matrix_b, 16, 16, 16, W, w::col_major> bf;
            w::load_matrix_sync(bf, b + nt * 16 * lds + kt * 16, lds);
            w::mma_sync(acc, a[kt], bf, acc);
        }
        w::store_matrix_sync(out + nt * 16, acc, ldf, w::mem_row_major);
    }
}

// One warp: acc += A B, A a 16 x rows tile of 16-bit values (row stride lds), B a [rows][lds] tile of
// head_dim-wide rows: O += P V, dQ += dS K, dV += P^T dO and dK += dS^T Q.
template <class W, class Acc>
__device__ inline void warp_ab_accumulate(Acc (&acc)[head_dim / 16], const W* a, const W* b) {
    namespace w = nvcuda::wmma;
#pragma unroll
    for (int kt = 0; kt < rows / 16; ++kt) {
        w::fragment<w::matrix_a, 16, 16, 16, W, w::row_major> af;
        w::load_matrix_sync(af, a + kt * 16, lds);
#pragma unroll
        for (int nt = 0; nt < head_dim / 16; ++nt) {
            w::fragment<w::matrix_b, 16, 16, 16, W, w::row_major> bf;
            w::load_matrix_sync(bf, b + kt * 16 * lds + nt * 16, lds);
            w::mma_sync(acc[nt], af, bf, acc[nt]);
        }
    }
}

// Where a CTA and a lane work: the (sequence, head) pair and the first of the CTA's 64 rows (queries or keys),
// from a grid whose row blocks of one pair are adjacent (the K and V, or Q and dO, they all read are still in L2
// for the second); the head's row 0 in qkv/dqkv (row stride ld = 3 hidden) and in out/dout (stride hidden); the
// sequence's valid keys; the lane's row (of its warp's 16) and 32 columns, and that row's index. Warps whose
// rows are all past the sequence are not active (they still take part in the barriers).
struct place {
    int bh, b, h, first, hidden;
    index_t ld, qkv_row0, head_row0;
    int len, warp, lane, r, c0, row;
    bool active;
};
__device__ inline place place_of(int heads, int seq, const std::int32_t* lengths) {
    place p;
    const int blocks = (seq + rows - 1) / rows;
    p.bh = static_cast<int>(blockIdx.x) / blocks;
    p.b = p.bh / heads;
    p.h = p.bh % heads;
    p.first = (static_cast<int>(blockIdx.x) % blocks) * rows;
    p.hidden = heads * head_dim;
    p.ld = 3 * static_cast<index_t>(p.hidden);
    p.qkv_row0 = static_cast<index_t>(p.b) * seq * p.ld + p.h * head_dim;
    p.head_row0 = static_cast<index_t>(p.b) * seq * p.hidden + p.h * head_dim;
    p.len = lengths ? max(0, min(static_cast<int>(lengths[p.b]), seq)) : seq;
    p.warp = static_cast<int>(threadIdx.x) / 32;
    p.lane = static_cast<int>(threadIdx.x) % 32;
    p.r = p.lane / 2;
    p.c0 = (p.lane % 2) * 32;
    p.row = p.first + p.warp * 16 + p.r;
    p.active = p.first + p.warp * 16 < seq;
    return p;
}

// The flat index of probability (query q, key k) of pair bh in [batch, heads, seq, seq]: dropout's element.
__device__ __forceinline__ index_t prob_index(int bh, int seq, int q, int k) {
    return (static_cast<index_t>(bh) * seq + q) * seq + k;
}
__device__ __forceinline__ float dropped(const flash_dropout& d, float x, index_t e) {
    return d.on ? ops::dropout_apply(x, ops::attention_keep(d.seed, d.stream, e, d.threshold), d.scale) : x;
}

}  // namespace flash

// out[batch*seq, heads*64] and lse[batch*heads*seq] from qkv[batch*seq, 3*heads*64] (rows [q | k | v]).
// Grid flash::grid (batch*heads*ceil(seq/64)), flash::threads threads, flash::forward_smem bytes of shared memory.
template <class T>
__global__ void __launch_bounds__(flash::threads)
    flash_attention_forward_kernel(T* __restrict__ out, float* __restrict__ lse, const T* __restrict__ qkv,
                                   const std::int32_t* __restrict__ lengths, int heads, int seq, float scale,
                                   flash_dropout drop) {
    using namespace flash;
    if constexpr (!mma_compiled<T>) {
        __trap();
    } else {
        namespace w = nvcuda::wmma;
        using W = typename wmma_type<T>::type;
        constexpr int D = head_dim;
        CRAM_DYNAMIC_SHARED(unsigned char, smem);
        T* sq = reinterpret_cast<T*>(smem);  // the query block; then each warp's own rows hold its P
        T* sk = sq + rows * lds;
        T* sv = sk + rows * lds;
        float* ss = reinterpret_cast<float*>(sv + rows * lds);  // per warp: 16 x 64 scores
        float* so = ss + warps * 16 * ldf;                       // per warp: 16 x 64 output accumulator
        const auto [bh, b, h, q0, hidden, ld, qkv_row0, head_row0, len, warp, lane, r, c0, qi, active] =
            place_of(heads, seq, lengths);
        const T* base = qkv + qkv_row0;

        stage(sq, base, ld, q0, seq);
        __syncthreads();
        w::fragment<w::matrix_a, 16, 16, 16, W, w::row_major> qf[D / 16];
        T* my_p = sq + warp * 16 * lds;
        float* my_s = ss + warp * 16 * ldf;
        float* my_o = so + warp * 16 * ldf;
#pragma unroll
        for (int kt = 0; kt < D / 16; ++kt)
            w::load_matrix_sync(qf[kt], reinterpret_cast<const W*>(my_p + kt * 16), lds);
#pragma unroll
        for (int i = 0; i < 32; ++i) my_o[r * ldf + c0 + i] = 0.0f;
        __syncwarp();
        float m = -INFINITY, l = 0.0f;  // running max and sum of exp of this lane's row
        for (int k0 = 0; k0 < len; k0 += rows) {
            __syncthreads();  // every warp is done with the previous key block
            stage(sk, base + hidden, ld, k0, seq);
            stage(sv, base + 2 * hidden, ld, k0, seq);
            __syncthreads();
            if (!active) continue;
            warp_abt(my_s, qf, reinterpret_cast<const W*>(sk));  // S = Q K^T
            __syncwarp();
            float s[32];
            float block_max = -INFINITY;
#pragma unroll
            for (int i = 0; i < 32; ++i) {
                s[i] = k0 + c0 + i < len ? my_s[r * ldf + c0 + i] * scale : -INFINITY;
                block_max = fmaxf(block_max, s[i]);
            }
            const float m_new = fmaxf(m, fmaxf(block_max, __shfl_xor_sync(0xffffffffu, block_max, 1)));
            const float alpha = __expf(m - m_new);  // 0 on the first block (m = -inf; m_new is finite: key k0 is valid)
            float sum = 0.0f;
#pragma unroll
            for (int i = 0; i < 32; ++i) {
                const float p = __expf(s[i] - m_new);
                sum += p;
                const float used = qi < seq ? dropped(drop, p, prob_index(bh, seq, qi, k0 + c0 + i)) : p;
                my_p[r * lds + c0 + i] = from_f32<T>(used);
                my_o[r * ldf + c0 + i] *= alpha;
            }
            l = l * alpha + sum + __shfl_xor_sync(0xffffffffu, sum, 1);
            m = m_new;
            __syncwarp();
            // O += P V, through the rescaled accumulator in shared memory
            w::fragment<w::accumulator, 16, 16, 16, float> o[D / 16];
#pragma unroll
            for (int nt = 0; nt < D / 16; ++nt) w::load_matrix_sync(o[nt], my_o + nt * 16, ldf, w::mem_row_major);
            warp_ab_accumulate(o, reinterpret_cast<const W*>(my_p), reinterpret_cast<const W*>(sv));
#pragma unroll
            for (int nt = 0; nt < D / 16; ++nt) w::store_matrix_sync(my_o + nt * 16, o[nt], ldf, w::mem_row_major);
            __syncwarp();
        }
        if (!active || qi >= seq) return;  // no barrier follows
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        float o[32];
#pragma unroll
        for (int i = 0; i < 32; ++i) o[i] = my_o[r * ldf + c0 + i] * inv;
        store_half_row(out + head_row0 + static_cast<index_t>(qi) * hidden + c0, o);
        if (lane % 2 == 0) lse[static_cast<index_t>(bh) * seq + qi] = l > 0.0f ? m + __logf(l) : -INFINITY;
    }
}

// Backward, first kernel: dQ rows of dqkv, and delta[bh*seq + q] = sum_d dO o O for the dK/dV kernel.
// Grid flash::grid, flash::threads threads, flash::dq_smem bytes.
template <class T>
__global__ void __launch_bounds__(flash::threads)
    flash_attention_backward_dq_kernel(T* __restrict__ dqkv, float* __restrict__ delta, const T* __restrict__ dout,
                                       const T* __restrict__ out, const T* __restrict__ qkv,
                                       const float* __restrict__ lse, const std::int32_t* __restrict__ lengths,
                                       int heads, int seq, float scale, flash_dropout drop) {
    using namespace flash;
    if constexpr (!mma_compiled<T>) {
        __trap();
    } else {
        namespace w = nvcuda::wmma;
        using W = typename wmma_type<T>::type;
        constexpr int D = head_dim;
        CRAM_DYNAMIC_SHARED(unsigned char, smem);
        T* sq = reinterpret_cast<T*>(smem);  // the query block; then each warp's own rows hold its dS
        T* sdo = sq + rows * lds;
        T* sk = sdo + rows * lds;
        T* sv = sk + rows * lds;
        float* sf = reinterpret_cast<float*>(sv + rows * lds);  // per warp: 16 x 64 fp32
        const auto [bh, b, h, q0, hidden, ld, qkv_row0, head_row0, len, warp, lane, r, c0, qi, active] =
            place_of(heads, seq, lengths);
        const T* base = qkv + qkv_row0;

        stage(sq, base, ld, q0, seq);
        stage(sdo, dout + head_row0, hidden, q0, seq);
        __syncthreads();
        T* my_ds = sq + warp * 16 * lds;
        float* my_f = sf + warp * 16 * ldf;
        // delta = rowsum(dO o O): the softmax backward's sum_j P dP (with dropout too: O = drop(P) V)
        float dl = 0.0f;
        if (qi < seq) {
            const T* orow = out + head_row0 + static_cast<index_t>(qi) * hidden + c0;
            const T* grow = sdo + (warp * 16 + r) * lds + c0;
#pragma unroll
            for (int v = 0; v < 4; ++v) {
                const vec16<T> x = load16(orow + 8 * v);
#pragma unroll
                for (int i = 0; i < 8; ++i) dl += to_f32(x.v[i]) * to_f32(grow[8 * v + i]);
            }
        }
        dl += __shfl_xor_sync(0xffffffffu, dl, 1);
        if (qi < seq && lane % 2 == 0) delta[static_cast<index_t>(bh) * seq + qi] = dl;
        const float row_lse = qi < seq ? lse[static_cast<index_t>(bh) * seq + qi] : INFINITY;
        w::fragment<w::matrix_a, 16, 16, 16, W, w::row_major> qf[D / 16], gf[D / 16];
#pragma unroll
        for (int kt = 0; kt < D / 16; ++kt) {
            w::load_matrix_sync(qf[kt], reinterpret_cast<const W*>(my_ds + kt * 16), lds);
            w::load_matrix_sync(gf[kt], reinterpret_cast<const W*>(sdo + warp * 16 * lds + kt * 16), lds);
        }
        w::fragment<w::accumulator, 16, 16, 16, float> dq[D / 16];
#pragma unroll
        for (int nt = 0; nt < D / 16; ++nt) w::fill_fragment(dq[nt], 0.0f);
        __syncwarp();
        for (int k0 = 0; k0 < len; k0 += rows) {
            __syncthreads();
            stage(sk, base + hidden, ld, k0, seq);
            stage(sv, base + 2 * hidden, ld, k0, seq);
            __syncthreads();
            if (!active) continue;
            warp_abt(my_f, qf, reinterpret_cast<const W*>(sk));  // S = Q K^T; then P in this lane's registers
            __syncwarp();
            float p[32];
#pragma unroll
            for (int i = 0; i < 32; ++i)
                p[i] = k0 + c0 + i < len ? __expf(my_f[r * ldf + c0 + i] * scale - row_lse) : 0.0f;
            __syncwarp();
            warp_abt(my_f, gf, reinterpret_cast<const W*>(sv));  // dP = dO V^T
            __syncwarp();
#pragma unroll
            for (int i = 0; i < 32; ++i) {
                const int k = k0 + c0 + i;
                const float dp = qi < seq && k < len ? dropped(drop, my_f[r * ldf + c0 + i], prob_index(bh, seq, qi, k))
                                                     : 0.0f;
                my_ds[r * lds + c0 + i] = from_f32<T>(ops::softmax_backward(p[i], dp, dl, scale));
            }
            __syncwarp();
            warp_ab_accumulate(dq, reinterpret_cast<const W*>(my_ds), reinterpret_cast<const W*>(sk));  // dQ += dS K
            __syncwarp();
        }
        if (!active) return;  // no barrier follows
#pragma unroll
        for (int nt = 0; nt < D / 16; ++nt) w::store_matrix_sync(my_f + nt * 16, dq[nt], ldf, w::mem_row_major);
        __syncwarp();
        if (qi < seq) store_half_row(dqkv + qkv_row0 + static_cast<index_t>(qi) * ld + c0, my_f + r * ldf + c0);
    }
}

// Backward, second kernel: dK and dV rows of dqkv (zero for keys at or past the length). Needs delta from
// the dQ kernel. Grid flash::grid (over key blocks), flash::threads threads, flash::dkdv_smem bytes.
template <class T>
__global__ void __launch_bounds__(flash::threads)
    flash_attention_backward_dkdv_kernel(T* __restrict__ dqkv, const T* __restrict__ dout, const T* __restrict__ qkv,
                                         const float* __restrict__ lse, const float* __restrict__ delta,
                                         const std::int32_t* __restrict__ lengths, int heads, int seq, float scale,
                                         flash_dropout drop) {
    using namespace flash;
    if constexpr (!mma_compiled<T>) {
        __trap();
    } else {
        namespace w = nvcuda::wmma;
        using W = typename wmma_type<T>::type;
        constexpr int D = head_dim;
        CRAM_DYNAMIC_SHARED(unsigned char, smem);
        T* sk = reinterpret_cast<T*>(smem);  // the key block; then each warp's own rows hold its P^T and dS^T
        T* sv = sk + rows * lds;
        T* sq = sv + rows * lds;
        T* sdo = sq + rows * lds;
        float* sf = reinterpret_cast<float*>(sdo + rows * lds);  // per warp: 16 x 64 fp32
        float* s_lse = sf + warps * 16 * ldf;                     // the query block's lse and delta
        float* s_delta = s_lse + rows;
        // kj: this lane's key
        const auto [bh, b, h, k0, hidden, ld, qkv_row0, head_row0, len, warp, lane, r, c0, kj, active] =
            place_of(heads, seq, lengths);
        const T* base = qkv + qkv_row0;
        const T* gdo = dout + head_row0;

        stage(sk, base + hidden, ld, k0, seq);
        stage(sv, base + 2 * hidden, ld, k0, seq);
        __syncthreads();
        T* my_t = sk + warp * 16 * lds;
        float* my_f = sf + warp * 16 * ldf;
        w::fragment<w::matrix_a, 16, 16, 16, W, w::row_major> kf[D / 16], vf[D / 16];
#pragma unroll
        for (int kt = 0; kt < D / 16; ++kt) {
            w::load_matrix_sync(kf[kt], reinterpret_cast<const W*>(my_t + kt * 16), lds);
            w::load_matrix_sync(vf[kt], reinterpret_cast<const W*>(sv + warp * 16 * lds + kt * 16), lds);
        }
        w::fragment<w::accumulator, 16, 16, 16, float> dk[D / 16], dv[D / 16];
#pragma unroll
        for (int nt = 0; nt < D / 16; ++nt) {
            w::fill_fragment(dk[nt], 0.0f);
            w::fill_fragment(dv[nt], 0.0f);
        }
        __syncwarp();
        // a key block wholly past the length has zero gradients: skip the loop, write the zeros
        for (int q0 = 0; k0 < len && q0 < seq; q0 += rows) {
            __syncthreads();
            stage(sq, base, ld, q0, seq);
            stage(sdo, gdo, hidden, q0, seq);
            for (int i = threadIdx.x; i < rows; i += threads) {
                const bool in = q0 + i < seq;
                s_lse[i] = in ? lse[static_cast<index_t>(bh) * seq + q0 + i] : INFINITY;
                s_delta[i] = in ? delta[static_cast<index_t>(bh) * seq + q0 + i] : 0.0f;
            }
            __syncthreads();
            if (!active) continue;
            warp_abt(my_f, kf, reinterpret_cast<const W*>(sq));  // S^T = K Q^T; then P^T in registers
            __syncwarp();
            float p[32];
#pragma unroll
            for (int i = 0; i < 32; ++i) {
                const int q = q0 + c0 + i;
                p[i] = kj < len && q < seq ? __expf(my_f[r * ldf + c0 + i] * scale - s_lse[c0 + i]) : 0.0f;
                my_t[r * lds + c0 + i] = from_f32<T>(q < seq ? dropped(drop, p[i], prob_index(bh, seq, q, kj)) : 0.0f);
            }
            __syncwarp();
            warp_ab_accumulate(dv, reinterpret_cast<const W*>(my_t), reinterpret_cast<const W*>(sdo));  // dV += drop(P)^T dO
            warp_abt(my_f, vf, reinterpret_cast<const W*>(sdo));  // dP^T = V dO^T
            __syncwarp();  // the dV product is done reading P^T, and dP^T is in my_f
#pragma unroll
            for (int i = 0; i < 32; ++i) {
                const int q = q0 + c0 + i;
                const float dp = q < seq && kj < len ? dropped(drop, my_f[r * ldf + c0 + i], prob_index(bh, seq, q, kj))
                                                     : 0.0f;
                my_t[r * lds + c0 + i] = from_f32<T>(ops::softmax_backward(p[i], dp, s_delta[c0 + i], scale));
            }
            __syncwarp();
            warp_ab_accumulate(dk, reinterpret_cast<const W*>(my_t), reinterpret_cast<const W*>(sq));  // dK += dS^T Q
            __syncwarp();
        }
        if (!active) return;  // no barrier follows
        T* row = dqkv + qkv_row0 + static_cast<index_t>(kj) * ld + c0;
#pragma unroll
        for (int nt = 0; nt < D / 16; ++nt) w::store_matrix_sync(my_f + nt * 16, dk[nt], ldf, w::mem_row_major);
        __syncwarp();
        if (kj < seq) store_half_row(row + hidden, my_f + r * ldf + c0);
        __syncwarp();
#pragma unroll
        for (int nt = 0; nt < D / 16; ++nt) w::store_matrix_sync(my_f + nt * 16, dv[nt], ldf, w::mem_row_major);
        __syncwarp();
        if (kj < seq) store_half_row(row + 2 * hidden, my_f + r * ldf + c0);
    }
}

}  // namespace cram::cuda
