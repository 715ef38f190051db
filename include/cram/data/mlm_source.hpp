// The MLM batch source the trainer consumes: the packed sequences of one split of a dataset directory
// (written by prepare_dataset: summary.json lists the shards), read in order with wrap-around (epochs),
// masked with the foundation's Philox masking keyed by (seed, global sequence index) so a run resumed
// with seek(position) sees exactly the batches an uninterrupted run would.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/data/shards.hpp"
#include "cram/data/wordpiece.hpp"
#include "cram/model/batch.hpp"
#include "cram/model/masking.hpp"

namespace cram::data {

inline constexpr const char* dataset_summary_name = "summary.json";

// Reads DIR/summary.json, the last file prepare writes (its absence means an unfinished or foreign directory).
inline nlohmann::json read_dataset_summary(const std::filesystem::path& dir) {
    const auto path = dir / dataset_summary_name;
    std::ifstream in(path);
    if (!in)
        CRAM_THROW("dataset directory ", dir.string(), " has no ", dataset_summary_name,
                   " (not made by `cram_bert_24h prepare`, or prepare did not finish)");
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) CRAM_THROW(path.string(), " is not valid JSON");
    return j;
}

class mlm_source {
public:
    mlm_source(const std::filesystem::path& dir, std::string_view split, int seq) : dir_(dir) {
        CRAM_CHECK(split == "train" || split == "val", "split '", split, "' must be train or val");
        const auto summary = read_dataset_summary(dir);
        const auto where = (dir / dataset_summary_name).string();
        if (!summary.contains("splits") || !summary["splits"].contains(std::string(split)))
            CRAM_THROW(where, " lists no '", split, "' split");
        const auto& sp = summary["splits"][std::string(split)];
        seq_ = summary.value("seq_len", 0);
        if (seq != seq_)
            CRAM_THROW("dataset ", dir.string(), " was packed into ", seq_, "-token sequences, not ", seq,
                       " (re-run prepare with --seq-len ", seq, ")");
        std::int64_t total = 0;
        for (const auto& name : sp.at("shards")) {
            shards_.emplace_back(dir / name.get<std::string>());
            const auto& s = shards_.back();
            if (s.seq_len() != seq_)
                CRAM_THROW("token shard ", s.path().string(), " has sequence length ", s.seq_len(), ", the dataset ", seq_);
            starts_.push_back(total);
            total += s.num_sequences();
        }
        starts_.push_back(total);
        total_ = total;
        if (total_ == 0) CRAM_THROW("dataset ", dir.string(), " has no sequences in its '", split, "' split");
        vocab_ = wordpiece::load(dir / "vocab.txt");
        for (const auto& s : shards_)
            if (s.vocab_size() != vocab_.vocab_size())
                CRAM_THROW("token shard ", s.path().string(), " was written for a vocabulary of ", s.vocab_size(),
                           " tokens but ", (dir / "vocab.txt").string(), " has ", vocab_.vocab_size());
        const auto& sp_ids = vocab_.specials();
        if (sp_ids.mask < 0) CRAM_THROW((dir / "vocab.txt").string(), " has no [MASK] token");
        num_specials_ = 0;
        for (auto name : special_token_names)
            if (vocab_.token_to_id(name) >= 0) num_specials_ = std::max(num_specials_, vocab_.token_to_id(name) + 1);
    }

    std::int64_t num_sequences() const { return total_; }
    int seq_len() const { return seq_; }
    std::int32_t vocab_size() const { return vocab_.vocab_size(); }
    const wordpiece& vocab() const { return vocab_; }
    const special_ids& specials() const { return vocab_.specials(); }

    // Tokens of `count` sequences from global index `first` (wrapping around the end), [count*seq].
    void read(std::int64_t first, int count, std::int32_t* out) const {
        CRAM_CHECK(count >= 0, "count ", count);
        std::int64_t idx = ((first % total_) + total_) % total_;
        int done = 0;
        while (done < count) {
            const auto it = std::upper_bound(starts_.begin(), starts_.end(), idx);
            const auto s = static_cast<std::size_t>(it - starts_.begin() - 1);
            const std::int64_t local = idx - starts_[s];
            const std::int64_t take = std::min<std::int64_t>(count - done, shards_[s].num_sequences() - local);
            shards_[s].read(local, take, out + static_cast<std::size_t>(done) * static_cast<std::size_t>(seq_));
            done += static_cast<int>(take);
            idx += take;
            if (idx >= total_) idx = 0;
        }
    }

    // The masking options this dataset needs: [MASK] id, vocab size, random replacements above the specials.
    masking_options masking(masking_options opt = {}) const {
        opt.mask_id = vocab_.specials().mask;
        opt.vocab = vocab_.vocab_size();
        opt.random_low = num_specials_;
        return opt;
    }

    // The next `batch` sequences, masked; advances position() by `batch`.
    host_mlm_batch next_batch(int batch, const masking_options& opt, std::uint64_t seed) {
        tokens_.resize(static_cast<std::size_t>(batch) * static_cast<std::size_t>(seq_));
        read(position_, batch, tokens_.data());
        auto out = mask_batch(tokens_.data(), batch, seq_, masking(opt), seed, static_cast<std::uint64_t>(position_));
        position_ += batch;
        return out;
    }

    std::int64_t position() const { return position_; }
    void seek(std::int64_t sequence_index) {
        CRAM_CHECK(sequence_index >= 0, "seek to ", sequence_index);
        position_ = sequence_index;
    }

private:
    std::filesystem::path dir_;
    std::vector<shard_reader> shards_;
    std::vector<std::int64_t> starts_;
    std::int64_t total_ = 0, position_ = 0;
    int seq_ = 0;
    std::int32_t num_specials_ = 5;
    wordpiece vocab_;
    std::vector<std::int32_t> tokens_;
};

}  // namespace cram::data
