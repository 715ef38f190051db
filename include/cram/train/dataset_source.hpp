// The trainer's view of a prepared dataset directory (cram::data::mlm_source over its token shards).
#pragma once

#include <filesystem>
#include <string_view>

#include "cram/data/mlm_source.hpp"
#include "cram/train/batch_source.hpp"

namespace cram::train {

class dataset_source final : public batch_source {
public:
    dataset_source(const std::filesystem::path& dir, std::string_view split, int seq, masking_options masking = {})
        : src_(dir, split, seq), masking_(src_.masking(masking)) {}
    host_mlm_batch next_batch(int batch, std::uint64_t seed) override { return src_.next_batch(batch, masking_, seed); }
    std::int64_t position() const override { return src_.position(); }
    void seek(std::int64_t i) override { src_.seek(i); }
    std::int64_t num_sequences() const override { return src_.num_sequences(); }
    std::int32_t vocab_size() const override { return src_.vocab_size(); }
    int seq_len() const override { return src_.seq_len(); }
    const data::mlm_source& source() const { return src_; }

private:
    data::mlm_source src_;
    masking_options masking_;
};

}  // namespace cram::train
