// Embeddings: token + (learned or scaled sinusoidal) position + optional token type, forward and backward;
// the fixed sinusoid table; and the row gather/scatter of sparse prediction. The sum rule and the id range
// rule are CRAM_HOST_DEVICE, shared with the CUDA kernels (cram/cuda/embedding.hpp).
//
// Contract: out[batch*seq, hidden] = word[id] + pos_scale * positions[s] + type_table[type] (overwritten).
// Backward accumulates (+=) into every table it is given: dword, dpositions (learned table), dpos_scale
// (scalar), dtype_table; the word row pad_id (when >= 0) gets no gradient, as PyTorch's padding_idx: the
// original cramming embedding's pad row stays as initialised (zero) whatever the pad positions feed back.
// gather_rows overwrites; scatter_add_rows accumulates.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cram/core/error.hpp"
#include "cram/core/platform.hpp"
#include "cram/ops/elementwise.hpp"

namespace cram::ops {

using cram::index_t;

// ---- shared scalar rules ----------------------------------------------------------------------------
// A token id (or type) must index a row of its table: [0, n).
CRAM_HOST_DEVICE bool id_in_range(index_t id, index_t n) {
    return id >= 0 && id < n;
}
// Whether a token's gradient reaches its word row: every id but the padding id (pad_id < 0: no padding row).
CRAM_HOST_DEVICE bool embedding_row_learns(index_t id, index_t pad_id) {
    return id != pad_id || pad_id < 0;
}
// word + scale * position, before the token type (if any) is added.
template <class T>
CRAM_HOST_DEVICE T embedding_value(T word, T pos_scale, T position) {
    return word + pos_scale * position;
}

// ---- sinusoid table -------------------------------------------------------------------------------------
// Fixed table [seq, hidden]: even columns sin(pos / 10000^(i/hidden)), odd columns the matching cos.
// Computed on the host in double (the model rounds it to its activation type once).
template <class T>
void sinusoidal_table(T* out, index_t seq, index_t hidden) {
    for (index_t pos = 0; pos < seq; ++pos)
        for (index_t i = 0; i < hidden; i += 2) {
            const double freq = std::pow(10000.0, -static_cast<double>(i) / static_cast<double>(hidden));
            out[pos * hidden + i] = T(std::sin(static_cast<double>(pos) * freq));
            if (i + 1 < hidden) out[pos * hidden + i + 1] = T(std::cos(static_cast<double>(pos) * freq));
        }
}

// ---- embeddings -----------------------------------------------------------------------------------------
// For learned positions pass the table parameter and pos_scale = null (scale 1); for scaled sinusoidal
// pass the fixed table and the scalar. type_table null: no token types; type_ids null: every token type 0.
// Ids outside [0, vocab) and types outside [0, types) throw cram::error.
template <class T>
void embedding_forward(T* out, const std::int32_t* ids, const std::int32_t* type_ids, const T* word,
                       const T* positions, const T* pos_scale, const T* type_table, index_t batch, index_t seq,
                       index_t hidden, index_t vocab, index_t types) {
    const T sc = pos_scale ? *pos_scale : T(1);
    for (index_t r = 0; r < batch * seq; ++r) {
        const index_t id = ids[r], s = r % seq;
        CRAM_CHECK(id_in_range(id, vocab), "token id ", id, " at row ", r, " outside vocabulary [0, ", vocab, ")");
        const T* wrow = word + id * hidden;
        const T* prow = positions + s * hidden;
        T* o = out + r * hidden;
        for (index_t i = 0; i < hidden; ++i) o[i] = embedding_value(wrow[i], sc, prow[i]);
        if (type_table) {
            const index_t t = type_ids ? type_ids[r] : 0;
            CRAM_CHECK(id_in_range(t, types), "token type ", t, " at row ", r, " outside [0, ", types, ")");
            for (index_t i = 0; i < hidden; ++i) o[i] += type_table[t * hidden + i];
        }
    }
}

// dword[vocab, hidden] += rows of dout by id, except at id == pad_id; dpositions (or null) += pos_scale *
// dout by position; dpos_scale (or null) += sum(dout * positions); dtype_table (or null) += rows of dout by
// type. Position, scale and type gradients include the pad positions (only the pad's word row is frozen, as
// with padding_idx). vocab is the word table's row count: ids outside it throw instead of writing out of
// bounds. pad_id < 0: every row learns.
template <class T>
void embedding_backward(T* dword, T* dpositions, T* dpos_scale, T* dtype_table, const T* dout, const std::int32_t* ids,
                        const std::int32_t* type_ids, const T* positions, const T* pos_scale, index_t batch,
                        index_t seq, index_t hidden, index_t vocab, std::int32_t pad_id = -1) {
    const T sc = pos_scale ? *pos_scale : T(1);
    T dscale = 0;
    for (index_t r = 0; r < batch * seq; ++r) {
        const index_t id = ids[r], s = r % seq;
        CRAM_CHECK(id_in_range(id, vocab), "token id ", id, " at row ", r, " outside vocabulary [0, ", vocab, ")");
        const T* g = dout + r * hidden;
        if (embedding_row_learns(id, pad_id)) {
            T* dw = dword + id * hidden;
            for (index_t i = 0; i < hidden; ++i) dw[i] += g[i];
        }
        if (dpositions)
            for (index_t i = 0; i < hidden; ++i) dpositions[s * hidden + i] += sc * g[i];
        if (dpos_scale)
            for (index_t i = 0; i < hidden; ++i) dscale += g[i] * positions[s * hidden + i];
        if (dtype_table) {
            const index_t t = type_ids ? type_ids[r] : 0;
            for (index_t i = 0; i < hidden; ++i) dtype_table[t * hidden + i] += g[i];
        }
    }
    if (dpos_scale) *dpos_scale += dscale;
}

// ---- row gather / scatter (sparse prediction) -----------------------------------------------------------
// out[i, cols] = in[rows[i], cols] for i < n.
template <class T>
void gather_rows(T* out, const T* in, const std::int32_t* rows, index_t n, index_t cols) {
    for (index_t i = 0; i < n; ++i) std::copy_n(in + static_cast<index_t>(rows[i]) * cols, cols, out + i * cols);
}
// dst[rows[i], cols] += src[i, cols]; rows may repeat (their contributions add up).
template <class T>
void scatter_add_rows(T* dst, const T* src, const std::int32_t* rows, index_t n, index_t cols) {
    for (index_t i = 0; i < n; ++i) add_inplace(dst + static_cast<index_t>(rows[i]) * cols, src + i * cols, cols);
}

}  // namespace cram::ops
