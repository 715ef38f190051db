// The MLM batch source the trainer consumes: the packed sequences of one split of a dataset directory
// (written by prepare_dataset: summary.json lists the shards), read in order with wrap-around (epochs),
// masked with the foundation's Philox masking keyed by (seed, global sequence index) so a run resumed
// with seek(position) sees exactly the batches an uninterrupted run would. Also: reading and checking
// summary.json, the vocabulary fingerprint, and the shared lock a reader holds on its dataset.
#pragma once

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "cram/core/checksum.hpp"
#include "cram/core/dir_lock.hpp"
#include "cram/core/error.hpp"
#include "cram/data/shards.hpp"
#include "cram/data/wordpiece.hpp"
#include "cram/model/batch.hpp"
#include "cram/model/masking.hpp"

namespace cram::data {

inline constexpr const char* dataset_summary_name = "summary.json";

namespace detail {

// A field's value for a message: short, on one line.
inline std::string json_excerpt(const nlohmann::json& v) {
    std::string s = v.dump();
    if (s.size() > 60) s = s.substr(0, 57) + "...";
    return s;
}

// The fields of summary.json that readers use (the trainer, mlm_source, verify_dataset_vocab), checked for
// their types once, so that a hand-edited or foreign file is an error naming the file and the field instead
// of a JSON library's type error somewhere later.
inline void check_summary_fields(const nlohmann::json& j, const std::string& where) {
    auto fail = [&](const std::string& field, const char* want, const nlohmann::json* v) {
        CRAM_THROW(where, ": field \"", field, "\" ", v ? "must be " : "is missing: it must be ", want,
                   v ? ", not " + json_excerpt(*v) : std::string(),
                   " (the file was not written by `cram_bert_24h prepare`, or was edited; re-run prepare)");
    };
    auto count = [&](const nlohmann::json& obj, const std::string& key, const std::string& field, bool required,
                     std::int64_t min, std::int64_t max = std::numeric_limits<std::int64_t>::max()) {
        const auto it = obj.find(key);
        if (it == obj.end()) {
            if (required) fail(field, min > 0 ? "a positive integer" : "a non-negative integer", nullptr);
            return;
        }
        if (!it->is_number_integer() || it->get<std::int64_t>() < min || it->get<std::int64_t>() > max)
            fail(field, min > 0 ? "a positive integer" : "a non-negative integer", &*it);
    };
    constexpr std::int64_t int_max = std::numeric_limits<std::int32_t>::max();
    count(j, "seq_len", "seq_len", true, 1, int_max);
    count(j, "vocab_size", "vocab_size", false, 1, int_max);
    if (const auto it = j.find("vocab_xxh64"); it != j.end() && !it->is_string()) fail("vocab_xxh64", "a string of 16 hex digits", &*it);
    const auto splits = j.find("splits");
    if (splits == j.end()) fail("splits", "an object with the \"train\" and \"val\" splits", nullptr);
    if (!splits->is_object()) fail("splits", "an object with the \"train\" and \"val\" splits", &*splits);
    for (const auto& [name, split] : splits->items()) {
        const std::string field = "splits." + name;
        if (!split.is_object()) fail(field, "an object with \"shards\" and \"sequences\"", &split);
        const auto shards = split.find("shards");
        if (shards == split.end()) fail(field + ".shards", "an array of shard file names", nullptr);
        if (!shards->is_array()) fail(field + ".shards", "an array of shard file names", &*shards);
        for (std::size_t i = 0; i < shards->size(); ++i)
            if (!(*shards)[i].is_string()) fail(field + ".shards[" + std::to_string(i) + "]", "a shard file name", &(*shards)[i]);
        count(split, "sequences", field + ".sequences", false, 0);
    }
}

}  // namespace detail

// Reads DIR/summary.json, the last file prepare writes (its absence means an unfinished or foreign
// directory), with the fields readers use checked for their types (errors name the file and the field).
inline nlohmann::json read_dataset_summary(const std::filesystem::path& dir) {
    const auto path = dir / dataset_summary_name;
    std::ifstream in(path, std::ios::binary);
    if (!in)
        CRAM_THROW("dataset directory ", dir.string(), " has no ", dataset_summary_name,
                   " (not made by `cram_bert_24h prepare`, or prepare did not finish)");
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) CRAM_THROW(path.string(), " is not valid JSON (or not a JSON object)");
    detail::check_summary_fields(j, path.string());
    return j;
}

// The vocabulary's content fingerprint: XXH64 of the file's bytes as 16 hex digits (summary.json records
// it as "vocab_xxh64"; a checkpoint can record it too, tying its embedding rows to these tokens).
inline std::string vocab_fingerprint(const std::filesystem::path& vocab_txt) { return file_xxh64(vocab_txt); }

// Checks that DIR/vocab.txt is the vocabulary DIR/summary.json was prepared with (its token ids are the
// ones in the shards) and returns its fingerprint. A summary written before the fingerprint was recorded
// (no "vocab_xxh64") is accepted: there is nothing to compare with.
inline std::string verify_dataset_vocab(const std::filesystem::path& dir) {
    const auto summary = read_dataset_summary(dir);
    const auto vocab = dir / "vocab.txt";
    const std::string actual = vocab_fingerprint(vocab);
    const auto it = summary.find("vocab_xxh64");
    if (it != summary.end() && it->get<std::string>() != actual)
        CRAM_THROW(vocab.string(), " (xxh64 ", actual, ") is not the vocabulary that ", (dir / dataset_summary_name).string(),
                   " records (xxh64 ", it->get<std::string>(), "): the token shards' ids would mean other tokens; put the "
                   "original vocab.txt back or re-run prepare");
    return actual;
}

// Holds the dataset in DIR shared for as long as the returned lock lives: `prepare` into DIR refuses
// meanwhile (naming this process), so a run never sees its dataset replaced under it. Several readers may
// hold it at once. A directory this process cannot write (a read-only copy) cannot be prepared into
// either, so there nothing is locked and an unheld lock is returned.
inline dir_lock lock_dataset_for_reading(const std::filesystem::path& dir) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) CRAM_THROW("dataset directory ", dir.string(), " does not exist");
    const auto lock_file = dir / dir_lock::file_name;
    const bool have_file = std::filesystem::exists(lock_file, ec);
    if (::access(have_file ? lock_file.c_str() : dir.c_str(), W_OK) != 0) return dir_lock{};
    return dir_lock(dir, "dataset", "cram_bert_24h train", dir_lock::mode::shared);
}

class mlm_source {
public:
    mlm_source(const std::filesystem::path& dir, std::string_view split, int seq) : dir_(dir) {
        CRAM_CHECK(split == "train" || split == "val", "split '", split, "' must be train or val");
        const auto summary = read_dataset_summary(dir);
        const auto where = (dir / dataset_summary_name).string();
        if (!summary["splits"].contains(std::string(split))) CRAM_THROW(where, " lists no '", split, "' split");
        const auto& sp = summary["splits"][std::string(split)];
        seq_ = summary["seq_len"].get<int>();
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
        vocab_xxh64_ = verify_dataset_vocab(dir);  // the ids in the shards are this vocabulary's
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
    // vocab.txt's fingerprint, verified against summary.json when the source was opened.
    const std::string& vocab_xxh64() const { return vocab_xxh64_; }

private:
    std::filesystem::path dir_;
    std::vector<shard_reader> shards_;
    std::vector<std::int64_t> starts_;
    std::int64_t total_ = 0, position_ = 0;
    int seq_ = 0;
    std::int32_t num_specials_ = 5;
    wordpiece vocab_;
    std::string vocab_xxh64_;
    std::vector<std::int32_t> tokens_;
};

}  // namespace cram::data
