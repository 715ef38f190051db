// Token embedding + (scaled sinusoidal or learned) positions + optional token types, forward and
// backward, and the row gather/scatter of sparse prediction. Backward scatters into the fp32 gradient
// tables with atomics (rows repeat whenever a token repeats); the position scale's gradient is a CUB
// block reduction per block plus one atomic. Out-of-range ids set the context's device error word
// (reported at the next synchronize) instead of reading out of bounds. The CUDA twin of
// cram/ops/embedding.hpp (the sum and id range rules are its shared ones).
#pragma once

#include <cstdint>
#include <type_traits>

#include <cub/block/block_reduce.cuh>

#include "cram/core/error.hpp"
#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/error.hpp"
#include "cram/ops/embedding.hpp"

namespace cram::cuda {

template <class T>
__global__ void embedding_forward_kernel(T* __restrict__ out, const std::int32_t* __restrict__ ids,
                                         const std::int32_t* __restrict__ type_ids, const T* __restrict__ word,
                                         const T* __restrict__ positions, const T* __restrict__ pos_scale,
                                         const T* __restrict__ type_table, index_t rows, index_t seq, index_t hidden,
                                         index_t vocab, index_t types, unsigned* error_word) {
    const float sc = pos_scale ? to_f32(*pos_scale) : 1.0f;
    const index_t n = rows * hidden;
    for (index_t i = global_thread(); i < n; i += grid_threads()) {
        const index_t r = i / hidden, c = i - r * hidden, s = r % seq;
        const index_t id = ids[r];
        if (!ops::id_in_range(id, vocab)) {
            atomicOr(error_word, error_token_id);
            out[i] = from_f32<T>(0.0f);
            continue;
        }
        float v = ops::embedding_value(to_f32(word[id * hidden + c]), sc, to_f32(positions[s * hidden + c]));
        if (type_table) {
            const index_t t = type_ids ? type_ids[r] : 0;
            if (!ops::id_in_range(t, types))
                atomicOr(error_word, error_token_type);
            else
                v += to_f32(type_table[t * hidden + c]);
        }
        out[i] = from_f32<T>(v);
    }
}

template <class T, class G, int BLOCK>
__global__ void __launch_bounds__(BLOCK) embedding_backward_kernel(
    G* __restrict__ dword, G* __restrict__ dpositions, G* __restrict__ dpos_scale, G* __restrict__ dtype_table,
    const T* __restrict__ dout, const std::int32_t* __restrict__ ids, const std::int32_t* __restrict__ type_ids,
    const T* __restrict__ positions, const T* __restrict__ pos_scale, index_t rows, index_t seq, index_t hidden,
    index_t vocab, index_t pad_id) {
    const float sc = pos_scale ? to_f32(*pos_scale) : 1.0f;
    const index_t n = rows * hidden;
    float dscale = 0.0f;
    for (index_t i = global_thread(); i < n; i += grid_threads()) {
        const index_t r = i / hidden, c = i - r * hidden, s = r % seq;
        const float g = to_f32(dout[i]);
        const index_t id = ids[r];
        if (ops::id_in_range(id, vocab) && ops::embedding_row_learns(id, pad_id))
            atomicAdd(dword + id * hidden + c, g);
        if (dpositions) atomicAdd(dpositions + s * hidden + c, sc * g);
        if (dpos_scale) dscale += g * to_f32(positions[s * hidden + c]);
        if (dtype_table) {
            const index_t t = type_ids ? type_ids[r] : 0;
            if (t >= 0) atomicAdd(dtype_table + t * hidden + c, g);
        }
    }
    if (dpos_scale) {  // uniform across the grid: every thread reaches the collective
        using reduce = cub::BlockReduce<float, BLOCK>;
        CRAM_SHARED(typename reduce::TempStorage, tmp);
        const float total = reduce(tmp).Sum(dscale);
        if (threadIdx.x == 0) atomicAdd(dpos_scale, total);
    }
}

template <class T>
__global__ void gather_rows_kernel(T* __restrict__ out, const T* __restrict__ in, const std::int32_t* __restrict__ rows,
                                   index_t n, index_t cols) {
    for (index_t i = global_thread(); i < n * cols; i += grid_threads()) {
        const index_t r = i / cols, c = i - r * cols;
        out[i] = in[static_cast<index_t>(rows[r]) * cols + c];
    }
}
// dst[rows[i]] += src[i]; atomics because rows may repeat (the CPU oracle allows it).
template <class T>
__global__ void scatter_add_rows_kernel(T* __restrict__ dst, const T* __restrict__ src,
                                        const std::int32_t* __restrict__ rows, index_t n, index_t cols) {
    for (index_t i = global_thread(); i < n * cols; i += grid_threads()) {
        const index_t r = i / cols, c = i - r * cols;
        atomic_add_f(dst + static_cast<index_t>(rows[r]) * cols + c, to_f32(src[i]));
    }
}

// ---- launchers ----------------------------------------------------------------------------------------
template <class T>
void embedding_forward(context& ctx, T* out, const std::int32_t* ids, const std::int32_t* type_ids, const T* word,
                       const T* positions, opt_ptr<const T> pos_scale, opt_ptr<const T> type_table, index_t batch, index_t seq,
                       index_t hidden, index_t vocab, index_t types) {
    const index_t rows = batch * seq;
    if (rows <= 0) return;
    CRAM_CHECK(ids && word && positions, "embedding_forward: ids, word table and positions are required");
    CRAM_LAUNCH(grid_for(ctx, rows * hidden, 256), 256, 0, ctx.stream(), embedding_forward_kernel<T>)(
        out, ids, type_ids, word, positions, pos_scale, type_table, rows, seq, hidden, vocab, types, ctx.error_word());
    CRAM_CUDA_CHECK_LAUNCH();
}

// Gradients accumulate (fp32): dword rows, dpositions (learned table, or null), dpos_scale (or null),
// dtype_table (or null). vocab (the word table's rows) bounds the scatter: ids outside it are skipped
// (the forward pass reported them through the error word). The word row pad_id (>= 0) gets no gradient
// (ops::embedding_row_learns, PyTorch's padding_idx).
template <class T, class G>
void embedding_backward(context& ctx, G* dword, opt_ptr<G> dpositions, opt_ptr<G> dpos_scale, opt_ptr<G> dtype_table,
                        const T* dout, const std::int32_t* ids, const std::int32_t* type_ids, const T* positions,
                        opt_ptr<const T> pos_scale, index_t batch, index_t seq, index_t hidden, index_t vocab,
                        std::int32_t pad_id = -1) {
    static_assert(std::is_same_v<G, float>, "cram::cuda: parameter gradients are fp32");
    const index_t rows = batch * seq;
    if (rows <= 0) return;
    constexpr int B = 256;
    CRAM_LAUNCH(grid_for(ctx, rows * hidden, B), B, 0, ctx.stream(), embedding_backward_kernel<T, G, B>)(
        dword, dpositions, dpos_scale, dtype_table, dout, ids, type_ids, positions, pos_scale, rows, seq, hidden,
        vocab, index_t(pad_id));
    CRAM_CUDA_CHECK_LAUNCH();
}

template <class T>
void gather_rows(context& ctx, T* out, const T* in, const std::int32_t* rows, index_t n, index_t cols) {
    if (n <= 0 || cols <= 0) return;
    CRAM_LAUNCH(grid_for(ctx, n * cols, 256), 256, 0, ctx.stream(), gather_rows_kernel<T>)(out, in, rows, n, cols);
    CRAM_CUDA_CHECK_LAUNCH();
}
template <class T>
void scatter_add_rows(context& ctx, T* dst, const T* src, const std::int32_t* rows, index_t n, index_t cols) {
    if (n <= 0 || cols <= 0) return;
    CRAM_LAUNCH(grid_for(ctx, n * cols, 256), 256, 0, ctx.stream(), scatter_add_rows_kernel<T>)(dst, src, rows, n,
                                                                                                cols);
    CRAM_CUDA_CHECK_LAUNCH();
}

}  // namespace cram::cuda
