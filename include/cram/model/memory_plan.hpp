// How many sequences fit on a device: the bytes a micro-batch of one sequence takes (the model's own
// activation list, bert::activation_bytes, plus the backend's per-sequence op scratch and the staged batch),
// the bytes that do not grow with the batch (the training state, the backend's fixed workspaces), and the
// micro-batch that fills the free memory. The trainer and the app use it to pick a micro-batch by default and
// to fail early, saying what is missing, when not even one sequence fits.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cram/core/error.hpp"
#include "cram/model/bert.hpp"
#include "cram/ops/masking.hpp"

namespace cram {

// The mask fraction the planner assumes: the largest a recipe masks (crammed's 25 %; train/recipe.hpp).
inline constexpr float planned_mask_fraction = 0.25f;

// Rows per sequence through the MLM decoder: the masked ones with sparse prediction, every one without.
template <bert_config C>
index_t decoder_rows_per_sequence(int seq = C.max_seq) {
    return C.sparse_prediction ? index_t(ops::masked_per_sequence(seq, planned_mask_fraction)) : index_t(seq);
}

// Bytes that grow with the micro-batch, per sequence of `seq` tokens.
template <bert_config C, ops::backend Backend>
std::size_t bytes_per_sequence(int seq = C.max_seq) {
    constexpr std::size_t staged_ints_per_token = 5;  // ids, type ids, masked positions/targets, lengths: a bound
    return bert<C, Backend>::activation_bytes(1, seq) +
           Backend::scratch_bytes_per_sequence(index_t(seq), index_t(C.hidden), index_t(C.heads), index_t(C.vocab),
                                               decoder_rows_per_sequence<C>(seq)) +
           staged_ints_per_token * sizeof(std::int32_t) * std::size_t(seq);
}

// Bytes that do not depend on the micro-batch: the training state (parameters, gradients, two AdamW moments
// and, where the matmuls read another type, the weight copy), the position table and the backend's workspaces.
template <bert_config C, ops::backend Backend>
std::size_t fixed_bytes() {
    using param_t = typename Backend::param_t;
    using act_t = typename Backend::act_t;
    const std::size_t n = bert_layout<C>().buffer_size();
    const std::size_t weights = Backend::weights_alias_params ? 0 : sizeof(act_t);
    return n * (4 * sizeof(param_t) + weights) + std::size_t(C.max_seq) * C.hidden * sizeof(act_t) +
           Backend::fixed_scratch_bytes(index_t(C.vocab));
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

// The same for model C on a backend, given the device's free and total bytes (e.g. cuda::context::memory_info()).
template <bert_config C, ops::backend Backend>
micro_batch_plan pick_micro_batch(std::size_t free_bytes, std::size_t total_bytes, int seq = C.max_seq,
                                  int granularity = 8, int max_batch = 4096, bool power_of_two = false) {
    return pick_micro_batch(free_bytes, total_bytes, bytes_per_sequence<C, Backend>(seq), fixed_bytes<C, Backend>(),
                            granularity, max_batch, 0.92, power_of_two);
}

}  // namespace cram
