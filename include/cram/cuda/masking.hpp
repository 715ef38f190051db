// MLM masking on the device, the CUDA twin of cram/ops/masking.hpp: one thread per sequence runs
// ops::mask_sequence, the very function the CPU's mask_batch runs (CRAM_HOST_DEVICE, Philox-addressed), so
// the masks are identical bit for bit.
// device_mlm_batch owns the device arrays of one micro-batch, filled by masking raw tokens on the device
// (cram::mlm_view gives the model its view; host-masked batches go through cram::batch_upload).
#pragma once

#include <cstdint>

#include "cram/core/error.hpp"
#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/error.hpp"
#include "cram/cuda/memory.hpp"
#include "cram/ops/masking.hpp"

namespace cram::cuda {

template <class I>
__global__ void mask_batch_kernel(const I* __restrict__ tokens, int batch, int seq, ops::masking_options opt,
                                  std::uint64_t seed, std::uint64_t first_sequence, I* __restrict__ ids,
                                  I* __restrict__ positions, I* __restrict__ targets) {
    const int b = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    if (b >= batch) return;
    const int k = ops::masked_per_sequence(seq, opt.mask_fraction);
    const index_t row = static_cast<index_t>(b) * seq;
    I* pos = positions + static_cast<index_t>(b) * k;
    ops::mask_sequence(tokens + row, seq, opt, seed, first_sequence + static_cast<std::uint64_t>(b), ids + row, pos,
                  targets + static_cast<index_t>(b) * k);
    for (int i = 0; i < k; ++i) pos[i] += static_cast<I>(row);  // flat row indices, as mask_batch makes them
}

// Masks batch x seq device tokens into ids [batch*seq], positions and targets [batch*k] (k per sequence).
inline void mask_batch(context& ctx, const std::int32_t* tokens, int batch, int seq, const ops::masking_options& opt,
                       std::uint64_t seed, std::uint64_t first_sequence, std::int32_t* ids, std::int32_t* positions,
                       std::int32_t* targets) {
    ops::check_masking(seq, opt);
    if (batch <= 0) return;
    constexpr int threads = 64;
    CRAM_LAUNCH(static_cast<unsigned>((batch + threads - 1) / threads), threads, 0, ctx.stream(),
                mask_batch_kernel<std::int32_t>)(tokens, batch, seq, opt, seed, first_sequence, ids, positions,
                                                 targets);
    CRAM_CUDA_CHECK_LAUNCH();
}

class device_mlm_batch {
public:
    using memory_space = device_memory;  // cram::mlm_view(batch) is the model's view of it
    device_mlm_batch() = default;
    device_mlm_batch(int max_batch, int seq, float mask_fraction = ops::masking_options{}.mask_fraction)
        : max_batch_(max_batch), seq_(seq), k_(ops::masked_per_sequence(seq, mask_fraction)),
          tokens_(std::size_t(max_batch) * seq), ids_(std::size_t(max_batch) * seq),
          positions_(std::size_t(max_batch) * std::size_t(k_)), targets_(std::size_t(max_batch) * std::size_t(k_)) {
        CRAM_CHECK(max_batch > 0 && seq > 0, "device_mlm_batch needs a positive batch and sequence length");
    }

    // Uploads raw tokens [batch*seq] (host) and masks them on the device.
    void mask(context& ctx, const std::int32_t* host_tokens, int batch, const ops::masking_options& opt,
              std::uint64_t seed, std::uint64_t first_sequence) {
        CRAM_CHECK(batch > 0 && batch <= max_batch_, "batch ", batch, " outside [1, ", max_batch_, "]");
        CRAM_CHECK(ops::masked_per_sequence(seq_, opt.mask_fraction) == k_, "mask fraction ", opt.mask_fraction,
                   " differs from the one this batch was sized for");
        const std::size_t n = std::size_t(batch) * seq_;
        CRAM_CUDA_CHECK(cudaMemcpyAsync(tokens_.data(), host_tokens, n * sizeof(std::int32_t), cudaMemcpyHostToDevice,
                                        ctx.stream()));
        mask_batch(ctx, tokens_.data(), batch, seq_, opt, seed, first_sequence, ids_.data(), positions_.data(),
                   targets_.data());
        batch_ = batch;
        num_masked_ = batch * k_;
    }
    int batch() const { return batch_; }
    int seq() const { return seq_; }
    int num_masked() const { return num_masked_; }
    const std::int32_t* ids() const { return ids_.data(); }
    const std::int32_t* positions() const { return positions_.data(); }
    const std::int32_t* targets() const { return targets_.data(); }

private:
    int max_batch_ = 0, seq_ = 0, k_ = 0, batch_ = 0, num_masked_ = 0;
    device_buffer<std::int32_t> tokens_, ids_, positions_, targets_;
};

}  // namespace cram::cuda
