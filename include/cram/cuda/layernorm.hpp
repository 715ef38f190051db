// LayerNorm forward and backward, and the residual add fused into the forward: the CUDA twin of
// cram/ops/layernorm.hpp (normalisation, rstd and the input-gradient formula are its shared rules; fp32
// statistics, two-pass mean then variance, as the CPU oracle). Two sets of kernels, chosen by context::layernorm:
// - warp (the default; not yet run on a GPU): a warp per row with the row in registers, 16-byte loads of
//   everything, statistics by warp shuffles; the backward sums dweight/dbias in registers, then per block, into
//   one row of partial sums per block that a second small kernel adds in a fixed order (no atomics: the same
//   gradients on every run). For rows of up to 1024 elements, a multiple of 8, whose pointers allow 16-byte
//   access.
// - block (the first kernels, and the fallback for other shapes): one thread block per row, CUB block
//   reductions, dweight/dbias per block in shared memory added with one atomic per column per block.
// Every kernel takes two storage types: A for the output, the weights and the output's gradient, X for the input,
// the residual sum and the input's gradient. X is A, except for the norms of an fp32 residual stream beside bf16
// or fp16 activations (the backend's residual_layernorm_*), which read fp32 and write A.
#pragma once

#include <initializer_list>
#include <type_traits>

#include <cub/block/block_reduce.cuh>

#include "cram/core/error.hpp"
#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/elementwise.hpp"
#include "cram/cuda/error.hpp"
#include "cram/ops/layernorm.hpp"

namespace cram::cuda {

// ---- block per row -----------------------------------------------------------------------------
namespace detail {
// Calls f(column, value) for every element of the row this thread owns. With VEC a thread owns whole
// 16-byte vectors, so it owns the same columns in every row (the backward's shared accumulators rely on it).
template <class T, int BLOCK, bool VEC, class F>
__device__ __forceinline__ void for_row(const T* x, index_t cols, F&& f) {
    if constexpr (VEC) {
        constexpr int W = vec16<T>::n;
        for (index_t v = threadIdx.x; v * W < cols; v += BLOCK) {
            const vec16<T> p = load16(x + v * W);
#pragma unroll
            for (int j = 0; j < W; ++j) f(v * W + j, to_f32(p.v[j]));
        }
    } else {
        for (index_t c = threadIdx.x; c < cols; c += BLOCK) f(c, to_f32(x[c]));
    }
}
constexpr int layernorm_threads = 128;
}  // namespace detail

// VEC: rows of a multiple of 8 elements, every pointer 16-byte aligned.
template <class A, class X, class S, int BLOCK, bool VEC>
__global__ void __launch_bounds__(BLOCK) layernorm_forward_kernel(A* __restrict__ out, S* __restrict__ mean,
                                                                  S* __restrict__ rstd, const X* __restrict__ in,
                                                                  const A* __restrict__ w, const A* __restrict__ b,
                                                                  index_t rows, index_t cols, float eps) {
    using reduce = cub::BlockReduce<float, BLOCK>;
    CRAM_SHARED(typename reduce::TempStorage, tmp);
    CRAM_SHARED(float, s_stat);
    const float n_cols = static_cast<float>(cols);  // divided by, as the CPU oracle does (no rounded reciprocal)
    for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const X* x = in + r * cols;
        float s = 0.0f;
        detail::for_row<X, BLOCK, VEC>(x, cols, [&](index_t, float v) { s += v; });
        s = reduce(tmp).Sum(s);
        if (threadIdx.x == 0) s_stat = s / n_cols;
        __syncthreads();
        const float mu = s_stat;
        float q = 0.0f;
        detail::for_row<X, BLOCK, VEC>(x, cols, [&](index_t, float v) { q += (v - mu) * (v - mu); });
        __syncthreads();  // tmp and s_stat are reused
        q = reduce(tmp).Sum(q);
        if (threadIdx.x == 0) s_stat = ops::layernorm_rstd(q / n_cols, eps);
        __syncthreads();
        const float rs = s_stat;
        A* o = out + r * cols;
        if constexpr (VEC) {
            for (index_t v = threadIdx.x; v * 8 < cols; v += BLOCK) {
                float xv[8], wv[8], bv[8];
                load8(x + v * 8, xv);
                load8(w + v * 8, wv);
                load8(b + v * 8, bv);
#pragma unroll
                for (int j = 0; j < 8; ++j) xv[j] = ops::layernorm_output(xv[j], mu, rs, wv[j], bv[j]);
                store8(o + v * 8, xv);
            }
        } else {
            for (index_t c = threadIdx.x; c < cols; c += BLOCK)
                o[c] = from_f32<A>(ops::layernorm_output(to_f32(x[c]), mu, rs, to_f32(w[c]), to_f32(b[c])));
        }
        if (threadIdx.x == 0) {
            mean[r] = from_f32<S>(mu);
            rstd[r] = from_f32<S>(rs);
        }
        __syncthreads();
    }
}

// din += rs * (dy*w - mean(dy*w) - xhat * mean(dy*w*xhat)); dw += dy*xhat; db += dy (dynamic shared
// memory: 2*cols floats of per-block partial sums).
template <class A, class X, class S, class G, int BLOCK, bool VEC>
__global__ void __launch_bounds__(BLOCK) layernorm_backward_kernel(X* __restrict__ din, A* __restrict__ narrow,
                                                                   G* __restrict__ dw, G* __restrict__ db,
                                                                   const A* __restrict__ dout,
                                                                   const X* __restrict__ in, const S* __restrict__ mean,
                                                                   const S* __restrict__ rstd, const A* __restrict__ w,
                                                                   index_t rows, index_t cols) {
    using reduce = cub::BlockReduce<float, BLOCK>;
    CRAM_SHARED(typename reduce::TempStorage, tmp);
    CRAM_SHARED(float, s_a);
    CRAM_SHARED(float, s_b);
    CRAM_DYNAMIC_SHARED(float, acc);  // [0, cols): dw partials, [cols, 2 cols): db partials
    for (index_t c = threadIdx.x; c < 2 * cols; c += BLOCK) acc[c] = 0.0f;
    __syncthreads();
    const float n_cols = static_cast<float>(cols);  // divided by, as the CPU oracle does (no rounded reciprocal)
    for (index_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const X* x = in + r * cols;
        const A* dy = dout + r * cols;
        const float mu = to_f32(mean[r]), rs = to_f32(rstd[r]);
        float a = 0.0f, bsum = 0.0f;
        // pass 1: sums of dxhat and dxhat*xhat; the parameter-gradient partials on the way
        detail::for_row<A, BLOCK, VEC>(dy, cols, [&](index_t c, float g) {
            const float xhat = ops::layernorm_xhat(to_f32(x[c]), mu, rs);
            const float dxhat = g * to_f32(w[c]);
            a += dxhat;
            bsum += dxhat * xhat;
            acc[c] += g * xhat;
            acc[cols + c] += g;
        });
        a = reduce(tmp).Sum(a);
        if (threadIdx.x == 0) s_a = a / n_cols;
        __syncthreads();
        bsum = reduce(tmp).Sum(bsum);
        if (threadIdx.x == 0) s_b = bsum / n_cols;
        __syncthreads();
        const float ma = s_a, mb = s_b;
        X* dx = din + r * cols;
        A* nx = narrow ? narrow + r * cols : nullptr;
        detail::for_row<A, BLOCK, VEC>(dy, cols, [&](index_t c, float g) {
            const float xhat = ops::layernorm_xhat(to_f32(x[c]), mu, rs);
            const X d = from_f32<X>(to_f32(dx[c]) + ops::layernorm_input_grad(g, to_f32(w[c]), xhat, rs, ma, mb));
            dx[c] = d;
            if (nx) nx[c] = from_f32<A>(to_f32(d));
        });
        __syncthreads();
    }
    __syncthreads();
    for (index_t c = threadIdx.x; c < cols; c += BLOCK) {
        atomicAdd(dw + c, acc[c]);
        atomicAdd(db + c, acc[cols + c]);
    }
}

// ---- warp per row ---------------------------------------------------------------------------------
namespace detail {
constexpr int layernorm_warp_threads = 128;     // four rows at a time per block
constexpr int layernorm_warp_max_vectors = 4;   // packs of 8 elements per lane: 1024 elements a row
constexpr int layernorm_partial_groups = 8;     // row groups of the partial-sum reduction

// Packs of 8 elements per lane the warp kernels hold for a row of `cols` elements, or 0 when they do not apply.
inline int layernorm_warp_vectors(index_t cols) {
    if (cols <= 0 || cols % 8 != 0) return 0;
    const index_t per_lane = (cols / 8 + 31) / 32;
    return per_lane <= layernorm_warp_max_vectors ? static_cast<int>(per_lane) : 0;
}

// Calls f(std::integral_constant<int, V>) for the run-time vector count v in [1, layernorm_warp_max_vectors].
template <class F>
void with_warp_vectors(int v, F&& f) {
    switch (v) {
        case 1: f(std::integral_constant<int, 1>{}); break;
        case 2: f(std::integral_constant<int, 2>{}); break;
        case 3: f(std::integral_constant<int, 3>{}); break;
        case 4: f(std::integral_constant<int, 4>{}); break;
        default: CRAM_THROW("layernorm: no warp kernel for ", v, " vectors per lane");
    }
}

// Row r's lane-held packs of 8: pack lane + 32 i of the row for i < V, those past the row's end skipped; f(i, the
// pack's first column).
template <int V, class F>
__device__ __forceinline__ void for_lane_vectors(index_t nvec, F&& f) {
    const int lane = static_cast<int>(threadIdx.x & 31u);
#pragma unroll
    for (int i = 0; i < V; ++i) {
        const index_t v = lane + 32 * i;
        if (v < nvec) f(i, v * 8);
    }
}
}  // namespace detail

// A warp per row (grid-stride over rows), V packs of 8 elements of it per lane in registers; weight and bias are
// loaded once per warp. With ADD the row is in + in2 (the residual stream plus a branch), rounded to X and stored
// in `sum`, and normalised as stored, exactly as the CPU's add followed by its LayerNorm.
template <class A, class X, int V, bool ADD>
__global__ void __launch_bounds__(detail::layernorm_warp_threads)
    layernorm_warp_forward_kernel(A* __restrict__ out, float* __restrict__ mean, float* __restrict__ rstd,
                                  X* __restrict__ sum, const X* __restrict__ in, const A* __restrict__ in2,
                                  const A* __restrict__ w, const A* __restrict__ b, index_t rows, index_t cols,
                                  float eps) {
    constexpr int warps = detail::layernorm_warp_threads / 32;
    const index_t nvec = cols / 8;
    const float n_cols = static_cast<float>(cols);  // divided by, as the CPU oracle does (no rounded reciprocal)
    float wf[V][8] = {}, bf[V][8] = {};
    detail::for_lane_vectors<V>(nvec, [&](int i, index_t c) {
        load8(w + c, wf[i]);
        load8(b + c, bf[i]);
    });
    for (index_t r = index_t(blockIdx.x) * warps + threadIdx.x / 32; r < rows; r += index_t(gridDim.x) * warps) {
        const index_t row = r * cols;
        float x[V][8] = {};
        float s = 0.0f;
        detail::for_lane_vectors<V>(nvec, [&](int i, index_t c) {
            load8(in + row + c, x[i]);
            if constexpr (ADD) {
                float y[8];
                load8(in2 + row + c, y);
#pragma unroll
                for (int j = 0; j < 8; ++j) x[i][j] = round_as<X>(x[i][j] + y[j]);
                store8(sum + row + c, x[i]);
            }
#pragma unroll
            for (int j = 0; j < 8; ++j) s += x[i][j];
        });
        const float mu = warp_sum(s) / n_cols;
        float q = 0.0f;
        detail::for_lane_vectors<V>(nvec, [&](int i, index_t) {
#pragma unroll
            for (int j = 0; j < 8; ++j) q += (x[i][j] - mu) * (x[i][j] - mu);
        });
        const float rs = ops::layernorm_rstd(warp_sum(q) / n_cols, eps);
        detail::for_lane_vectors<V>(nvec, [&](int i, index_t c) {
            float o[8];
#pragma unroll
            for (int j = 0; j < 8; ++j) o[j] = ops::layernorm_output(x[i][j], mu, rs, wf[i][j], bf[i][j]);
            store8(out + row + c, o);
        });
        if ((threadIdx.x & 31u) == 0) {
            mean[r] = mu;
            rstd[r] = rs;
        }
    }
}

// din += the input gradient, a warp per row as the forward (and, unless null, `narrow` = the new din rounded to A:
// what the next branch's matmuls read when din is an fp32 residual stream). Each lane sums dweight and dbias for
// its columns in registers over the rows it visits; the block's warps then add theirs in shared memory
// ([warps][2 cols]) into the block's row of `partial` [gridDim.x][2 cols] (dweight, then dbias), which
// layernorm_partials_kernel adds up.
template <class A, class X, int V>
__global__ void __launch_bounds__(detail::layernorm_warp_threads)
    layernorm_warp_backward_kernel(X* __restrict__ din, A* __restrict__ narrow, float* __restrict__ partial,
                                   const A* __restrict__ dout,
                                   const X* __restrict__ in, const float* __restrict__ mean,
                                   const float* __restrict__ rstd, const A* __restrict__ w, index_t rows,
                                   index_t cols) {
    CRAM_DYNAMIC_SHARED(float, warp_sums);
    constexpr int warps = detail::layernorm_warp_threads / 32;
    const index_t nvec = cols / 8;
    const float n_cols = static_cast<float>(cols);  // divided by, as the CPU oracle does (no rounded reciprocal)
    float wf[V][8] = {}, dwf[V][8] = {}, dbf[V][8] = {};
    detail::for_lane_vectors<V>(nvec, [&](int i, index_t c) { load8(w + c, wf[i]); });
    for (index_t r = index_t(blockIdx.x) * warps + threadIdx.x / 32; r < rows; r += index_t(gridDim.x) * warps) {
        const index_t row = r * cols;
        const float mu = mean[r], rs = rstd[r];
        float g[V][8] = {}, xhat[V][8] = {};
        float a = 0.0f, c2 = 0.0f;  // sums of dxhat and of dxhat * xhat
        detail::for_lane_vectors<V>(nvec, [&](int i, index_t c) {
            load8(in + row + c, xhat[i]);
            load8(dout + row + c, g[i]);
#pragma unroll
            for (int j = 0; j < 8; ++j) {
                xhat[i][j] = ops::layernorm_xhat(xhat[i][j], mu, rs);
                const float dxhat = g[i][j] * wf[i][j];
                a += dxhat;
                c2 += dxhat * xhat[i][j];
                dwf[i][j] += g[i][j] * xhat[i][j];
                dbf[i][j] += g[i][j];
            }
        });
        const float ma = warp_sum(a) / n_cols, mb = warp_sum(c2) / n_cols;
        detail::for_lane_vectors<V>(nvec, [&](int i, index_t c) {
            float d[8];
            load8(din + row + c, d);
#pragma unroll
            for (int j = 0; j < 8; ++j)
                d[j] = round_as<X>(d[j] + ops::layernorm_input_grad(g[i][j], wf[i][j], xhat[i][j], rs, ma, mb));
            store8(din + row + c, d);
            if (narrow) store8(narrow + row + c, d);
        });
    }
    float* mine = warp_sums + (threadIdx.x / 32) * 2 * cols;
    detail::for_lane_vectors<V>(nvec, [&](int i, index_t c) {
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            mine[c + j] = dwf[i][j];
            mine[cols + c + j] = dbf[i][j];
        }
    });
    __syncthreads();
    for (index_t c = threadIdx.x; c < 2 * cols; c += blockDim.x) {
        float t = 0.0f;
#pragma unroll
        for (int k = 0; k < warps; ++k) t += warp_sums[k * 2 * cols + c];
        partial[index_t(blockIdx.x) * 2 * cols + c] = t;
    }
}

// dw[c] += the sum over blocks of partial[block][c], db[c] += that of partial[block][cols + c]: 32 of the 2 cols
// columns per thread block, its 8 warps summing every 8th row, then added in warp order (a fixed order).
template <int = 0>  // a template, so that the header defines it in every translation unit without clashing
__global__ void __launch_bounds__(32 * detail::layernorm_partial_groups)
    layernorm_partials_kernel(float* __restrict__ dw, float* __restrict__ db, const float* __restrict__ partial,
                              index_t blocks, index_t cols) {
    constexpr int groups = detail::layernorm_partial_groups;
    using group_sums_tile = float[groups][33];
    CRAM_SHARED(group_sums_tile, group_sums);
    const int lane = static_cast<int>(threadIdx.x & 31u), group = static_cast<int>(threadIdx.x / 32);
    const index_t c = index_t(blockIdx.x) * 32 + lane;
    float t = 0.0f;
    if (c < 2 * cols)
        for (index_t k = group; k < blocks; k += groups) t += partial[k * 2 * cols + c];
    group_sums[group][lane] = t;
    __syncthreads();
    if (group == 0 && c < 2 * cols) {
        float total = 0.0f;
#pragma unroll
        for (int k = 0; k < groups; ++k) total += group_sums[k][lane];
        if (c < cols)
            dw[c] += total;
        else
            db[c - cols] += total;
    }
}

// ---- launchers ----------------------------------------------------------------------------------------
namespace detail {
// The warp kernels' packs per lane for this call, or 0 for the block kernels (asked for, or the shape or
// alignment does not allow the warp ones).
inline int layernorm_warp_route(const context& ctx, index_t cols, std::initializer_list<const void*> pointers) {
    if (ctx.layernorm != layernorm_kernel::warp) return 0;
    for (const void* p : pointers)
        if (!aligned16(p)) return 0;
    return layernorm_warp_vectors(cols);
}

// Blocks for a grid-stride loop over rows, four per block: as many as fit on the GPU at once (so no block waits
// for a second wave while others loop), never more than the rows need. The occupancy of each kernel instantiation
// is asked once per process (one device per process: the trainer's ranks each have their own).
template <auto Kernel>
index_t layernorm_warp_blocks(const context& ctx, index_t rows, std::size_t smem) {
    static const int per_sm = [&] {
        int n = 0;
        CRAM_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, Kernel, layernorm_warp_threads, smem));
        return std::max(n, 1);
    }();
    constexpr index_t warps = layernorm_warp_threads / 32;
    return std::max<index_t>(1, std::min<index_t>((rows + warps - 1) / warps, index_t(ctx.sm_count()) * per_sm));
}

template <class A, class X, bool ADD>
void launch_layernorm_warp_forward(context& ctx, int vectors, A* out, float* mean, float* rstd, X* sum, const X* in,
                                   const A* in2, const A* w, const A* b, index_t rows, index_t cols, float eps) {
    with_warp_vectors(vectors, [&](auto v) {
        constexpr auto kernel = layernorm_warp_forward_kernel<A, X, decltype(v)::value, ADD>;
        const auto grid = static_cast<unsigned>(layernorm_warp_blocks<kernel>(ctx, rows, 0));
        CRAM_LAUNCH(grid, layernorm_warp_threads, 0, ctx.stream(), kernel)(out, mean, rstd, sum, in, in2, w, b, rows,
                                                                           cols, eps);
    });
    CRAM_CUDA_CHECK_LAUNCH();
}
}  // namespace detail

// out = LayerNorm(in) with weight w and bias b; mean and rstd [rows] saved for the backward. The input may be
// wider than the output (an fp32 residual stream normalised into bf16 or fp16).
template <class A, class X, class S>
void layernorm_forward(context& ctx, A* out, S* mean, S* rstd, const X* in, const A* w, const A* b, index_t rows,
                       index_t cols, S eps) {
    static_assert(std::is_same_v<S, float>, "cram::cuda: LayerNorm statistics are fp32");
    static_assert(std::is_same_v<X, A> || std::is_same_v<X, float>, "cram::cuda: a norm's input is A or fp32");
    if (rows <= 0) return;
    CRAM_CHECK(cols > 0, "layernorm over ", cols, " columns");
    if (const int v = detail::layernorm_warp_route(ctx, cols, {out, in, w, b}); v > 0) {
        detail::launch_layernorm_warp_forward<A, X, false>(ctx, v, out, mean, rstd, nullptr, in, nullptr, w, b, rows,
                                                           cols, static_cast<float>(eps));
        return;
    }
    constexpr int B = detail::layernorm_threads;
    const unsigned grid = static_cast<unsigned>(std::min<index_t>(rows, index_t(ctx.sm_count()) * 16));
    const bool vec = cols % 8 == 0 && aligned16(out) && aligned16(in) && aligned16(w) && aligned16(b);
    if (vec)
        CRAM_LAUNCH(grid, B, 0, ctx.stream(), layernorm_forward_kernel<A, X, S, B, true>)(
            out, mean, rstd, in, w, b, rows, cols, static_cast<float>(eps));
    else
        CRAM_LAUNCH(grid, B, 0, ctx.stream(), layernorm_forward_kernel<A, X, S, B, false>)(
            out, mean, rstd, in, w, b, rows, cols, static_cast<float>(eps));
    CRAM_CUDA_CHECK_LAUNCH();
}

// sum = a + b (rounded to X, the residual stream's type), out = LayerNorm(sum): a residual add and the norm after
// it, in one pass over the rows on the warp path (add_residual, then layernorm_forward, on the block path). sum
// aliases none of the others.
template <class A, class X, class S>
void add_layernorm_forward(context& ctx, X* sum, A* out, S* mean, S* rstd, const X* a, const A* b, const A* w,
                           const A* bias, index_t rows, index_t cols, S eps) {
    static_assert(std::is_same_v<S, float>, "cram::cuda: LayerNorm statistics are fp32");
    if (rows <= 0) return;
    CRAM_CHECK(cols > 0, "layernorm over ", cols, " columns");
    CRAM_CHECK(static_cast<const void*>(sum) != a && static_cast<const void*>(sum) != b &&
                   static_cast<const void*>(sum) != out,
               "add_layernorm_forward: sum must not alias its inputs or out");
    if (const int v = detail::layernorm_warp_route(ctx, cols, {sum, out, a, b, w, bias}); v > 0) {
        detail::launch_layernorm_warp_forward<A, X, true>(ctx, v, out, mean, rstd, sum, a, b, w, bias, rows, cols,
                                                          static_cast<float>(eps));
        return;
    }
    add_residual(ctx, sum, a, b, rows * cols);
    layernorm_forward(ctx, out, mean, rstd, static_cast<const X*>(sum), w, bias, rows, cols, eps);
}

// din += the input gradient; dw += and db += the parameter gradients. The input and its gradient may be wider
// than the output's gradient (an fp32 residual stream); then `narrow`, unless null, receives the new din rounded to
// A in the same pass.
template <class A, class X, class S, class G>
void layernorm_backward(context& ctx, X* din, G* dw, G* db, const A* dout, const X* in, const S* mean, const S* rstd,
                        const A* w, index_t rows, index_t cols, A* narrow = nullptr) {
    static_assert(std::is_same_v<G, float>, "cram::cuda: parameter gradients are fp32");
    static_assert(std::is_same_v<X, A> || std::is_same_v<X, float>, "cram::cuda: a norm's input is A or fp32");
    if (rows <= 0) return;
    CRAM_CHECK(!narrow || static_cast<const void*>(narrow) != static_cast<const void*>(din),
               "layernorm_backward: the narrowed copy must not alias din");
    if (const int v = detail::layernorm_warp_route(ctx, cols, {din, narrow, dout, in, w}); v > 0) {
        constexpr index_t warps = detail::layernorm_warp_threads / 32;
        // the block's warps' sums, [warps][2 cols] floats: at most 32 KiB (rows of 1024); the occupancy is asked
        // once per pack count, for the widest row it serves
        const std::size_t smem = std::size_t(warps) * 2 * std::size_t(cols) * sizeof(float);
        index_t blocks = 0;
        float* partial = nullptr;
        detail::with_warp_vectors(v, [&](auto vectors) {
            constexpr int V = decltype(vectors)::value;
            constexpr auto kernel = layernorm_warp_backward_kernel<A, X, V>;
            constexpr std::size_t widest = std::size_t(warps) * 2 * 32 * V * 8 * sizeof(float);
            blocks = detail::layernorm_warp_blocks<kernel>(ctx, rows, widest);
            partial = static_cast<float*>(ctx.scratch(std::size_t(blocks) * 2 * std::size_t(cols) * sizeof(float)));
            CRAM_LAUNCH(static_cast<unsigned>(blocks), detail::layernorm_warp_threads, smem, ctx.stream(), kernel)(
                din, narrow, partial, dout, in, mean, rstd, w, rows, cols);
        });
        CRAM_CUDA_CHECK_LAUNCH();
        const auto column_blocks = static_cast<unsigned>((2 * cols + 31) / 32);
        CRAM_LAUNCH(column_blocks, 32 * detail::layernorm_partial_groups, 0, ctx.stream(), layernorm_partials_kernel<>)(
            dw, db, partial, blocks, cols);
        CRAM_CUDA_CHECK_LAUNCH();
        return;
    }
    const std::size_t smem = 2 * static_cast<std::size_t>(cols) * sizeof(float);
    CRAM_CHECK(smem <= 48 * 1024, "layernorm_backward supports up to 6144 columns, got ", cols);
    constexpr int B = detail::layernorm_threads;
    const unsigned grid = static_cast<unsigned>(std::min<index_t>(rows, index_t(ctx.sm_count()) * 4));
    const bool vec = cols % vec16<A>::n == 0 && aligned16(dout);
    if (vec)
        CRAM_LAUNCH(grid, B, smem, ctx.stream(), layernorm_backward_kernel<A, X, S, G, B, true>)(
            din, narrow, dw, db, dout, in, mean, rstd, w, rows, cols);
    else
        CRAM_LAUNCH(grid, B, smem, ctx.stream(), layernorm_backward_kernel<A, X, S, G, B, false>)(
            din, narrow, dw, db, dout, in, mean, rstd, w, rows, cols);
    CRAM_CUDA_CHECK_LAUNCH();
}

}  // namespace cram::cuda
