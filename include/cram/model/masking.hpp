// The host-side MLM masking helper: masks a batch of raw token sequences into a host_mlm_batch (what data
// loaders and tests hand to a model). The masking itself (options, the per-sequence rule the GPU runs too)
// is the op in cram/ops/masking.hpp; its names are re-exported here because the model layer speaks them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cram/model/batch.hpp"
#include "cram/ops/masking.hpp"

namespace cram {

using ops::mask_sequence;
using ops::masked_per_sequence;
using ops::masking_options;
using ops::max_masking_seq;

// Masks `batch` packed sequences (row-major [batch*seq]) whose global indices start at first_sequence.
inline host_mlm_batch mask_batch(const std::int32_t* tokens, int batch, int seq, const masking_options& opt,
                                 std::uint64_t seed, std::uint64_t first_sequence) {
    ops::check_masking(seq, opt);
    host_mlm_batch out;
    out.batch = batch;
    out.seq = seq;
    const int k = masked_per_sequence(seq, opt.mask_fraction);
    out.ids.resize(static_cast<std::size_t>(batch) * seq);
    out.masked_positions.resize(static_cast<std::size_t>(batch) * k);
    out.masked_targets.resize(static_cast<std::size_t>(batch) * k);
    ops::mask_batch(tokens, batch, seq, opt, seed, first_sequence, out.ids.data(), out.masked_positions.data(),
                    out.masked_targets.data());
    return out;
}

}  // namespace cram
