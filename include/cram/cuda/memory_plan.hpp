// How many sequences fit: device bytes per sequence of cram::bert<C, cuda::backend> (mirrors the buffers
// bert.hpp allocates plus the attention scratch of this backend), the fixed bytes (parameters, gradients,
// bf16 weights, AdamW moments, workspaces), and the micro-batch that fills the free memory. Used by the
// trainer to pick a micro-batch by default and to fail early with a clear message when nothing fits.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "cram/core/bf16.hpp"
#include "cram/core/error.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/error.hpp"
#include "cram/cuda/loss.hpp"
#include "cram/model/config.hpp"
#include "cram/model/parameters.hpp"

namespace cram::cuda {

// Activation and scratch bytes that grow with the micro-batch, per sequence of `seq` tokens.
template <bert_config C>
constexpr std::size_t activation_bytes_per_sequence(int seq = C.max_seq) {
    const std::size_t h = C.hidden, I = C.intermediate, inner = C.ffn_inner(), heads = C.heads, T = std::size_t(seq);
    const std::size_t a = sizeof(cram::bf16), f = sizeof(float);
    std::size_t per_token = 0;
    per_token += h * a + (C.embedding_norm ? h * a + 2 * f : 0);                   // emb, emb_ln, stats
    per_token += C.layers * ((8 * h + I + inner) * a + heads * T * a + 4 * f);      // block activations + probs
    per_token += C.final_norm ? h * a + 2 * f : 0;                                  // final norm
    per_token += h * a + (C.head_transform ? 3 * h * a + 2 * f : 0);                // head input / transform
    per_token += C.sparse_prediction ? 0 : sizeof(std::int32_t);                    // dense labels
    per_token += (9 * h + inner + I) * a;                                            // backward scratch
    per_token += 7 * h * a + heads * T * (f + a);                                    // attention backward scratch
    per_token += 2 * sizeof(std::int32_t) + 3 * sizeof(std::int32_t);                // batch ids, tokens, masks
    return per_token * T;
}

// Bytes that do not depend on the micro-batch: fp32 params + grads + 2 moments, the bf16 weights, the
// cuBLASLt workspace, the decoder's logits chunk, and a reserve for the CUDA context and allocator slack.
template <bert_config C>
std::size_t fixed_bytes() {
    const std::size_t n = bert_layout<C>().buffer_size();
    const std::size_t vocab = std::size_t(C.vocab);
    const std::size_t decoder = std::size_t(decoder_chunk_rows(1 << 20, index_t(vocab))) * vocab *
                                (sizeof(float) + sizeof(cram::bf16));
    return n * (4 * sizeof(float) + sizeof(cram::bf16)) + (std::size_t(32) << 20) + decoder + (std::size_t(768) << 20);
}

struct micro_batch_plan {
    int micro_batch = 0;
    std::size_t free_bytes = 0, total_bytes = 0, per_sequence = 0, fixed = 0;
};

// The largest multiple of `granularity` sequences whose activations fit in `usable` (a fraction of the
// free memory) after the fixed bytes. Throws, saying how much is missing, when not even one fits.
// With power_of_two the result is the largest power of two that fits instead (it divides the recipe's
// 8192-sequence batch, so gradient accumulation needs no ragged last micro-step).
inline micro_batch_plan pick_micro_batch(std::size_t free_bytes, std::size_t total_bytes, std::size_t per_sequence,
                                         std::size_t fixed, int granularity = 8, int max_batch = 4096,
                                         double usable = 0.92, bool power_of_two = false) {
    CRAM_CHECK(per_sequence > 0 && granularity > 0, "pick_micro_batch: bad arguments");
    micro_batch_plan p{0, free_bytes, total_bytes, per_sequence, fixed};
    const double avail = static_cast<double>(free_bytes) * usable - static_cast<double>(fixed);
    const long fit = avail > 0 ? static_cast<long>(avail / static_cast<double>(per_sequence)) : 0;
    if (fit < 1)
        CRAM_THROW("too little GPU memory: ", free_bytes >> 20, " MiB free of ", total_bytes >> 20, " MiB, the model needs ",
                   fixed >> 20, " MiB fixed plus ", per_sequence >> 20, " MiB per sequence; free the GPU, or use a "
                   "smaller preset or shorter sequences");
    long b = fit >= granularity ? fit / granularity * granularity : fit;
    if (b > max_batch) b = max_batch / granularity * granularity;
    if (power_of_two) {
        long pw = 1;
        while (pw * 2 <= b) pw *= 2;
        b = pw;
    }
    p.micro_batch = static_cast<int>(b);
    return p;
}

// The same for model C on the context's device, from the memory free right now.
template <bert_config C>
micro_batch_plan pick_micro_batch(context& ctx, int seq = C.max_seq, int granularity = 8, int max_batch = 4096,
                                  bool power_of_two = false) {
    std::size_t free_b = 0, total_b = 0;
    CRAM_CUDA_CHECK(cudaSetDevice(ctx.device()));
    CRAM_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return pick_micro_batch(free_b, total_b, activation_bytes_per_sequence<C>(seq), fixed_bytes<C>(), granularity,
                            max_batch, 0.92, power_of_two);
}

}  // namespace cram::cuda
