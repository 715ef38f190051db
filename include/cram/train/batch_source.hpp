// What the trainer reads MLM micro-batches from: a small interface so the same loop trains on a prepared
// dataset (cram::data::mlm_source, adapted in dataset_source.hpp) or on tokens held in memory (tests, demos).
// A source is a position in a fixed sequence order; masking is keyed by (seed, global sequence index), so
// seek(position) after a resume reproduces exactly the batches an uninterrupted run would have drawn.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/model/batch.hpp"
#include "cram/model/masking.hpp"

namespace cram::train {

class batch_source {
public:
    virtual ~batch_source() = default;
    // The next `batch` sequences, masked with `seed`; advances position() by `batch`.
    virtual host_mlm_batch next_batch(int batch, std::uint64_t seed) = 0;
    virtual std::int64_t position() const = 0;
    virtual void seek(std::int64_t sequence_index) = 0;
    virtual std::int64_t num_sequences() const = 0;
    virtual std::int32_t vocab_size() const = 0;
    virtual int seq_len() const = 0;
};

// Packed sequences of `seq` tokens in memory, read in order with wrap-around.
class memory_source final : public batch_source {
public:
    memory_source(std::vector<std::int32_t> tokens, int seq, masking_options masking)
        : tokens_(std::move(tokens)), seq_(seq), masking_(masking) {
        CRAM_CHECK(seq > 0, "sequence length must be positive, got ", seq);
        count_ = static_cast<std::int64_t>(tokens_.size()) / seq;
        CRAM_CHECK(count_ > 0, "memory_source needs at least one sequence of ", seq, " tokens, got ", tokens_.size(), " tokens");
        for (auto t : tokens_)
            CRAM_CHECK(t >= 0 && t < masking_.vocab, "token id ", t, " outside the vocabulary of ", masking_.vocab);
    }
    host_mlm_batch next_batch(int batch, std::uint64_t seed) override {
        buf_.resize(static_cast<std::size_t>(batch) * static_cast<std::size_t>(seq_));
        for (int b = 0; b < batch; ++b) {
            const std::int64_t s = (position_ + b) % count_;
            std::copy_n(tokens_.begin() + s * seq_, seq_, buf_.begin() + std::int64_t(b) * seq_);
        }
        auto out = mask_batch(buf_.data(), batch, seq_, masking_, seed, static_cast<std::uint64_t>(position_));
        position_ += batch;
        return out;
    }
    std::int64_t position() const override { return position_; }
    void seek(std::int64_t i) override {
        CRAM_CHECK(i >= 0, "seek to ", i);
        position_ = i;
    }
    std::int64_t num_sequences() const override { return count_; }
    std::int32_t vocab_size() const override { return masking_.vocab; }
    int seq_len() const override { return seq_; }

private:
    std::vector<std::int32_t> tokens_, buf_;
    int seq_;
    masking_options masking_;
    std::int64_t count_ = 0, position_ = 0;
};

}  // namespace cram::train
