// What a training or evaluation step consumes. The views hold pointers in the backend's memory
// (host memory for the CPU backend); the host_* structs own host storage and hand out views.
#pragma once

#include <cstdint>
#include <vector>

namespace cram {

// One MLM micro-batch in sparse form: the decoder and loss run only on masked_positions.
struct mlm_batch {
    int batch = 0;
    int seq = 0;
    const std::int32_t* ids = nullptr;       // [batch*seq] input ids, masking applied
    const std::int32_t* type_ids = nullptr;  // [batch*seq] or null (no token types)
    int num_masked = 0;
    const std::int32_t* masked_positions = nullptr;  // [num_masked] flat row b*seq + s, ascending
    const std::int32_t* masked_targets = nullptr;    // [num_masked] the original ids there
};

struct host_mlm_batch {
    int batch = 0;
    int seq = 0;
    std::vector<std::int32_t> ids, type_ids, masked_positions, masked_targets;

    mlm_batch view() const {
        return {batch, seq, ids.data(), type_ids.empty() ? nullptr : type_ids.data(),
                static_cast<int>(masked_positions.size()), masked_positions.data(), masked_targets.data()};
    }
};

// Token sequences for encoding and classification: padded to `seq`, keys at or beyond
// lengths[b] are masked out of attention.
struct token_batch {
    int batch = 0;
    int seq = 0;
    const std::int32_t* ids = nullptr;       // [batch*seq]
    const std::int32_t* type_ids = nullptr;  // [batch*seq] or null
    const std::int32_t* lengths = nullptr;   // [batch] or null (all full length)
};

struct host_token_batch {
    int batch = 0;
    int seq = 0;
    std::vector<std::int32_t> ids, type_ids, lengths;

    token_batch view() const {
        return {batch, seq, ids.data(), type_ids.empty() ? nullptr : type_ids.data(),
                lengths.empty() ? nullptr : lengths.data()};
    }
};

}  // namespace cram
