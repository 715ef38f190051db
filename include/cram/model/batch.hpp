// What a training or evaluation step consumes, typed by where its memory lives. A view's pointers are in
// one memory space (host_memory, or a backend's device memory such as cram::cuda::device_memory); a model
// accepts only views in its backend's space, so handing a host batch to a CUDA model does not compile.
// The host_* structs own host storage and hand out host views; batch_upload.hpp moves them to a device.
#pragma once

#include <cstdint>
#include <vector>

#include "cram/core/memory_space.hpp"

namespace cram {

// One MLM micro-batch in sparse form: the decoder and loss run only on masked_positions.
template <class Space>
struct mlm_batch {
    using memory_space = Space;
    int batch = 0;
    int seq = 0;
    const std::int32_t* ids = nullptr;       // [batch*seq] input ids, masking applied
    const std::int32_t* type_ids = nullptr;  // [batch*seq] or null (no token types)
    int num_masked = 0;
    const std::int32_t* masked_positions = nullptr;  // [num_masked] flat row b*seq + s, ascending
    const std::int32_t* masked_targets = nullptr;    // [num_masked] the original ids there
};

// Token sequences for encoding and classification: padded to `seq`, keys at or beyond lengths[b] are
// masked out of attention.
template <class Space>
struct token_batch {
    using memory_space = Space;
    int batch = 0;
    int seq = 0;
    const std::int32_t* ids = nullptr;       // [batch*seq]
    const std::int32_t* type_ids = nullptr;  // [batch*seq] or null
    const std::int32_t* lengths = nullptr;   // [batch] or null (all full length)
};

// Token sequences with their supervision: class labels (classification) or float targets (regression).
template <class Space>
struct labeled_batch {
    using memory_space = Space;
    token_batch<Space> tokens;
    const std::int32_t* labels = nullptr;  // [batch] class ids, or null for a regression head
    const float* targets = nullptr;        // [batch] regression targets, or null for a classifier
};

// The view of an owner of masked device arrays that exposes batch(), seq(), ids(), num_masked(), positions()
// and targets() in its memory_space (cuda::device_mlm_batch, which masks on the device).
template <class Owner>
mlm_batch<typename Owner::memory_space> mlm_view(const Owner& b) {
    return {b.batch(), b.seq(), b.ids(), nullptr, b.num_masked(), b.positions(), b.targets()};
}

struct host_mlm_batch {
    int batch = 0;
    int seq = 0;
    std::vector<std::int32_t> ids, type_ids, masked_positions, masked_targets;

    mlm_batch<host_memory> view() const {
        return {batch, seq, ids.data(), type_ids.empty() ? nullptr : type_ids.data(),
                static_cast<int>(masked_positions.size()), masked_positions.data(), masked_targets.data()};
    }
};

struct host_token_batch {
    int batch = 0;
    int seq = 0;
    std::vector<std::int32_t> ids, type_ids, lengths;

    token_batch<host_memory> view() const {
        return {batch, seq, ids.data(), type_ids.empty() ? nullptr : type_ids.data(),
                lengths.empty() ? nullptr : lengths.data()};
    }
};

struct host_labeled_batch {
    host_token_batch tokens;
    std::vector<std::int32_t> labels;
    std::vector<float> targets;

    labeled_batch<host_memory> view() const {
        return {tokens.view(), labels.empty() ? nullptr : labels.data(), targets.empty() ? nullptr : targets.data()};
    }
};

}  // namespace cram
