// The corpus-to-shards pipeline behind `cram_bert_24h prepare` (CRAMMING.md "Data pipeline"): read
// documents, optionally deduplicate, hold out a validation split, train (or load) the WordPiece vocabulary,
// encode on all cores, drop documents with more than 0.25 tokens per character, pack into seq_len-token
// blocks with [SEP] after each document (no [CLS], no padding, the remainder dropped), order the blocks by
// a curriculum, and write token shards plus summary.json. Every option and input is checked before the
// output is touched; the dataset is built in a sibling directory and swapped in at the end, under an
// exclusive lock on the output, so a failed or killed prepare leaves the previous dataset as it was, and
// an empty result is an error, not a dataset. Memory is bounded: blocks go to a temporary file and only
// one sort key per block is held while ordering.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "cram/core/checksum.hpp"
#include "cram/core/clock.hpp"
#include "cram/core/dir_lock.hpp"
#include "cram/core/error.hpp"
#include "cram/core/file_io.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/data/mlm_source.hpp"
#include "cram/data/readers.hpp"
#include "cram/data/shards.hpp"
#include "cram/data/wordpiece.hpp"
#include "cram/data/wordpiece_trainer.hpp"

namespace cram::data {

enum class curriculum { none, dots, unigram };

inline curriculum parse_curriculum(std::string_view s) {
    if (s == "none") return curriculum::none;
    if (s == "dots") return curriculum::dots;
    if (s == "unigram") return curriculum::unigram;
    CRAM_THROW("unknown curriculum '", s, "' (expected none, dots or unigram)");
}
inline const char* to_string(curriculum c) { return c == curriculum::dots ? "dots" : c == curriculum::unigram ? "unigram" : "none"; }

struct prepare_options {
    std::vector<std::filesystem::path> corpus;
    std::filesystem::path out;
    std::filesystem::path vocab;  // empty: train one of vocab_size tokens on the training documents
    int vocab_size = 32768;
    int seq_len = 128;
    int threads = 0;                 // 0: all cores
    std::int64_t max_docs = 0;       // 0: all documents
    std::int64_t vocab_docs = 0;     // documents used to train the vocabulary (0: all training documents)
    double val_fraction = 0.005;     // share of documents held out for validation
    double max_tokens_per_char = 0.25;
    bool dedup = false;              // exact document deduplication
    curriculum order = curriculum::none;
    bool shuffle = true;             // curriculum none: seeded shuffle of the blocks (false: corpus order)
    std::uint64_t seed = 0;
    std::int64_t shard_sequences = std::int64_t{1} << 18;
    std::size_t batch_bytes = std::size_t{8} << 20;  // documents handed to the encoder threads at once
    reader_options reader{};
    normalizer_options normalizer{};
    trainer_options trainer{};  // vocab_size/threads/normalizer are taken from above
};

struct prepare_summary {
    std::int64_t documents = 0, empty_documents = 0, bad_lines = 0, duplicates = 0, filtered = 0;
    std::int64_t train_documents = 0, val_documents = 0;
    std::int64_t bytes = 0, tokens = 0, train_tokens = 0, val_tokens = 0, dropped_tokens = 0;
    std::int64_t train_blocks = 0, val_blocks = 0;
    std::int32_t vocab_size = 0;
    int seq_len = 0;
    double seconds = 0, seconds_vocab = 0, seconds_encode = 0, seconds_write = 0;
    std::string first_bad_line;
    std::string vocab_xxh64;  // vocab_fingerprint of the dataset's vocab.txt
    std::vector<std::string> train_shards, val_shards;

    nlohmann::json to_json() const {
        return {{"documents", documents},         {"empty_documents", empty_documents},
                {"bad_lines", bad_lines},         {"first_bad_line", first_bad_line},
                {"duplicates", duplicates},       {"filtered", filtered},
                {"train_documents", train_documents}, {"val_documents", val_documents},
                {"bytes", bytes},                 {"tokens", tokens},
                {"train_tokens", train_tokens},   {"val_tokens", val_tokens},
                {"dropped_tokens", dropped_tokens}, {"blocks", train_blocks + val_blocks},
                {"vocab_size", vocab_size},       {"vocab_xxh64", vocab_xxh64},
                {"seq_len", seq_len},
                {"seconds", seconds},             {"seconds_vocab", seconds_vocab},
                {"seconds_encode", seconds_encode}, {"seconds_write", seconds_write},
                {"splits",
                 {{"train", {{"shards", train_shards}, {"sequences", train_blocks}}},
                  {"val", {{"shards", val_shards}, {"sequences", val_blocks}}}}}};
    }
};

struct prepare_progress {
    std::string phase;  // "vocab", "train-vocab", "encode", "write"
    std::int64_t documents = 0, bytes = 0;
    double fraction = -1;  // of the phase, when known
};

// The most worker threads prepare takes: the library-wide cap (cram::max_cpu_threads: 4 per hardware
// thread, at most 1024; each thread holds its own word-count table while training the vocabulary).
inline int max_prepare_threads() { return cram::max_cpu_threads(); }

// The smallest vocabulary prepare trains: the 5 specials, the characters of plain English text (26
// letters, 10 digits, ~32 punctuation marks) and the "##" forms of the letters and digits already take
// ~110 tokens; below 128 a trained vocabulary is the bare alphabet with no merged pieces (and with more
// characters than the size allows, larger than asked).
inline constexpr int min_trained_vocab_size = 128;

// The smallest reader_options::max_line_bytes: the reader's buffer starts at 1 MiB, so smaller limits
// would not be enforced exactly.
inline constexpr std::size_t min_max_line_bytes = std::size_t{1} << 20;

// The entries a dataset directory holds (what prepare writes, its lock, leftovers of older versions).
// prepare replaces the whole directory, so it refuses one with anything else in it.
inline bool is_dataset_entry(const std::filesystem::path& p) {
    const auto name = p.filename().string();
    return name == "vocab.txt" || name == "tokenizer_config.json" || name == dataset_summary_name ||
           name == dir_lock::file_name || name.ends_with(".shard") || name.ends_with(".tmp") || is_temp_name(p);
}

// The output directory prepare works on: absolute, normalised, without a trailing separator (so that its
// sibling temporary directory has a name).
inline std::filesystem::path dataset_target(const std::filesystem::path& out) {
    auto p = std::filesystem::absolute(out).lexically_normal();
    if (!p.has_filename() && p.has_parent_path() && p != p.root_path()) p = p.parent_path();
    return p;
}

// Everything prepare can check before it reads the corpus or touches the output directory: the options'
// ranges, every input file (present, a file, readable) and the output (a directory holding a dataset or
// nothing). Throws a cram::error naming the option (as the command line spells it) or the file.
inline void validate_prepare_options(const prepare_options& opt) {
    namespace fs = std::filesystem;
    CRAM_CHECK(!opt.corpus.empty(), "prepare needs at least one corpus file (--corpus)");
    auto readable = [](const fs::path& f, const char* what, const char* option) {
        std::error_code ec;
        if (!fs::exists(f, ec)) CRAM_THROW(what, " ", f.string(), " (", option, ") does not exist");
        if (!fs::is_regular_file(f, ec)) CRAM_THROW(what, " ", f.string(), " (", option, ") is not a file");
        const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) CRAM_THROW("cannot read ", what, " ", f.string(), " (", option, "): ", std::strerror(errno));
        ::close(fd);
    };
    for (const auto& f : opt.corpus) readable(f, "corpus file", "--corpus");
    if (!opt.vocab.empty()) readable(opt.vocab, "vocabulary", "--vocab");
    if (opt.vocab.empty())
        CRAM_CHECK(opt.vocab_size >= min_trained_vocab_size, "--vocab-size ", opt.vocab_size, " is too small: a trained "
                   "vocabulary needs at least ", min_trained_vocab_size, " tokens (5 specials, the characters and "
                   "their ## forms; typical sizes are 8192 to 32768)");
    CRAM_CHECK(opt.seq_len >= 2 && opt.seq_len <= max_masking_seq, "--seq-len ", opt.seq_len, " outside [2, ",
               max_masking_seq, "]");
    CRAM_CHECK(opt.val_fraction >= 0 && opt.val_fraction < 1, "--val-fraction ", opt.val_fraction,
               " outside [0, 1) (the share of documents held out for validation)");
    CRAM_CHECK(opt.max_tokens_per_char > 0 && std::isfinite(opt.max_tokens_per_char), "--max-tokens-per-char ",
               opt.max_tokens_per_char, " must be a positive number");
    CRAM_CHECK(opt.shard_sequences > 0, "--shard-sequences ", opt.shard_sequences, " must be positive");
    CRAM_CHECK(opt.max_docs >= 0, "--max-docs ", opt.max_docs, " must be 0 (all) or positive");
    CRAM_CHECK(opt.vocab_docs >= 0, "--vocab-docs ", opt.vocab_docs, " must be 0 (all) or positive");
    CRAM_CHECK(opt.threads >= 0 && opt.threads <= max_prepare_threads(), "--threads ", opt.threads, " outside [0, ",
               max_prepare_threads(), "] (0: all cores; at most 4x the hardware threads)");
    CRAM_CHECK(opt.reader.max_line_bytes >= min_max_line_bytes, "--max-line-bytes ", opt.reader.max_line_bytes,
               " is below the minimum of ", min_max_line_bytes, " (1 MiB)");
    CRAM_CHECK(opt.batch_bytes > 0, "prepare_options::batch_bytes must be positive");
    CRAM_CHECK(!opt.out.empty(), "prepare needs an output directory (--out)");
    const fs::path out = dataset_target(opt.out);
    CRAM_CHECK(out.has_parent_path() && out != out.root_path(), "--out ", opt.out.string(), " cannot be a dataset directory");
    std::error_code ec;
    if (fs::exists(out, ec)) {
        if (!fs::is_directory(out, ec)) CRAM_THROW("--out ", opt.out.string(), " exists and is not a directory");
        for (const auto& e : fs::directory_iterator(out, ec))
            if (!is_dataset_entry(e.path()))
                CRAM_THROW("--out ", opt.out.string(), " holds ", e.path().filename().string(), ", which is not part of a "
                           "dataset: prepare replaces the whole directory, so choose a new or empty one (or one that "
                           "holds only a dataset)");
        if (ec) CRAM_THROW("cannot list --out ", opt.out.string(), ": ", ec.message());
    }
}

namespace detail {

// A dataset directory being rebuilt: the exclusive lock on the target (made when missing), a fresh sibling
// work directory (temp_name_for) that receives every file, and at commit() the atomic exchange of the two.
// Destroyed uncommitted (an error, an empty result), it removes the work directory, and the target
// too when it made it, so the target is exactly as it was.
class staged_directory {
public:
    explicit staged_directory(const std::filesystem::path& target) : target_(target), work_(temp_name_for(target)) {
        namespace fs = std::filesystem;
        std::error_code ec;
        created_target_ = !fs::exists(target_, ec);
        lock_ = dir_lock(target_, "dataset", "cram_bert_24h prepare");
        try {
            remove_stale_siblings();
            fs::remove_all(work_, ec);  // our own pid's name: only ever a leftover of this very process
            fs::create_directory(work_, ec);
            if (ec) CRAM_THROW("cannot create ", work_.string(), " next to ", target_.string(), ": ", ec.message());
        } catch (...) {
            abandon();
            throw;
        }
        // the work directory's lock file is the target's (a second link to the locked file), so that once
        // the two are exchanged the dataset in place is still locked by this process until it ends (on a
        // file system without hard links the new directory is unlocked for the last moments only)
        const int linked = ::link((target_ / dir_lock::file_name).c_str(), (work_ / dir_lock::file_name).c_str());
        (void)linked;
    }
    staged_directory(const staged_directory&) = delete;
    staged_directory& operator=(const staged_directory&) = delete;
    ~staged_directory() {
        if (!committed_) abandon();
    }

    const std::filesystem::path& work() const { return work_; }
    void commit() {
        replace_directory(work_, target_);
        committed_ = true;
    }

private:
    void abandon() noexcept {
        std::error_code ec;
        std::filesystem::remove_all(work_, ec);
        if (created_target_) {
            std::filesystem::remove(target_ / dir_lock::file_name, ec);
            std::filesystem::remove(target_, ec);  // only when empty
        }
    }

    // Work directories (NAME.tmp-PID) and set-aside old datasets (NAME.old-PID, replace_directory's
    // fallback) of prepares that were killed: their process is gone, and the lock says no other prepare
    // of this target is running.
    void remove_stale_siblings() {
        namespace fs = std::filesystem;
        const std::string base = target_.filename().string();
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(parent_directory(target_), ec)) {
            const std::string name = e.path().filename().string();
            std::string_view rest;
            for (const char* tag : {".tmp-", ".old-"})
                if (name.size() > base.size() + 5 && name.starts_with(base) && name.compare(base.size(), 5, tag) == 0)
                    rest = std::string_view(name).substr(base.size() + 5);
            if (rest.empty() || rest.size() > 9 || rest.find_first_not_of("0123456789") != std::string_view::npos) continue;
            const auto pid = static_cast<::pid_t>(std::stol(std::string(rest)));
            if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
            std::error_code rm;
            fs::remove_all(e.path(), rm);
        }
    }

    std::filesystem::path target_, work_;
    dir_lock lock_;
    bool created_target_ = false, committed_ = false;
};

inline std::uint64_t splitmix64(std::uint64_t& s) {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Is document number `ordinal` held out? A hash, so the split does not depend on batching or threads.
inline bool is_validation(std::uint64_t ordinal, std::uint64_t seed, double fraction) {
    if (fraction <= 0) return false;
    std::uint64_t s = ordinal * 0x9E3779B97F4A7C15ull ^ (seed + 0x1234567);
    const double u = static_cast<double>(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0);
    return u < fraction;
}

inline std::int64_t count_chars(std::string_view s) {
    std::int64_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

// Reads documents on a background thread into batches of about batch_bytes (bounded queue of two), applying
// max_docs and dedup, so that decompression and JSON parsing overlap the encoding. A thread of its own, not
// a part of the shared pool: it blocks on I/O and on the queue for a whole phase, and the encoder it feeds
// needs the pool meanwhile.
class batch_producer {
public:
    struct batch {
        std::vector<std::string> docs;
        std::vector<std::uint64_t> ordinals;  // document numbers (before dedup) for the validation split
        std::int64_t bytes_so_far = 0;
    };

    batch_producer(const prepare_options& opt, std::int64_t max_docs, bool dedup)
        : reader_(opt.corpus, opt.reader), batch_bytes_(opt.batch_bytes), max_docs_(max_docs), dedup_(dedup) {
        thread_ = std::thread([this] { run(); });
    }
    ~batch_producer() {
        {
            std::lock_guard lock(m_);
            stop_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

    std::optional<batch> next() {
        std::unique_lock lock(m_);
        cv_.wait(lock, [&] { return !queue_.empty() || done_; });
        if (!queue_.empty()) {
            batch b = std::move(queue_.front());
            queue_.pop_front();
            cv_.notify_all();
            return b;
        }
        if (error_) std::rethrow_exception(error_);
        return std::nullopt;
    }

    const reader_stats& stats() const { return reader_.stats(); }  // valid once next() returned nullopt
    std::int64_t duplicates() const { return duplicates_; }

private:
    void run() {
        try {
            batch b;
            std::size_t bytes = 0;
            std::string doc;
            std::uint64_t ordinal = 0;
            std::unordered_set<std::uint64_t> seen;
            while ((max_docs_ <= 0 || static_cast<std::int64_t>(ordinal) < max_docs_) && reader_.next(doc)) {
                const std::uint64_t ord = ordinal++;
                if (dedup_) {
                    const std::uint64_t h = hash_bytes(doc.data(), doc.size()) ^ (doc.size() * 0x9E3779B97F4A7C15ull);
                    if (!seen.insert(h).second) {
                        ++duplicates_;
                        continue;
                    }
                }
                bytes += doc.size();
                b.docs.push_back(std::move(doc));
                b.ordinals.push_back(ord);
                doc = std::string();
                if (bytes >= batch_bytes_) {
                    b.bytes_so_far = reader_.bytes_so_far();
                    if (!push(std::move(b))) return;
                    b = batch{};
                    bytes = 0;
                }
            }
            b.bytes_so_far = reader_.bytes_so_far();
            if (!b.docs.empty()) push(std::move(b));
        } catch (...) {
            std::lock_guard lock(m_);
            error_ = std::current_exception();
        }
        std::lock_guard lock(m_);
        done_ = true;
        cv_.notify_all();
    }
    bool push(batch&& b) {
        std::unique_lock lock(m_);
        cv_.wait(lock, [&] { return queue_.size() < 2 || stop_; });
        if (stop_) return false;
        queue_.push_back(std::move(b));
        cv_.notify_all();
        return true;
    }

    document_reader reader_;
    std::size_t batch_bytes_;
    std::int64_t max_docs_;
    bool dedup_;
    std::int64_t duplicates_ = 0;
    std::thread thread_;
    std::mutex m_;
    std::condition_variable cv_;
    std::deque<batch> queue_;
    bool done_ = false, stop_ = false;
    std::exception_ptr error_;
};

// Packs documents into blocks of seq tokens, spilling full blocks to a temporary file of int32.
class block_spill {
public:
    block_spill(std::filesystem::path path, int seq) : path_(std::move(path)), seq_(seq) {
        f_ = std::fopen(path_.string().c_str(), "wb");
        if (!f_) CRAM_THROW("cannot create ", path_.string(), ": ", std::strerror(errno));
    }
    ~block_spill() {
        if (f_) std::fclose(f_);
        std::error_code ec;
        std::filesystem::remove(path_, ec);
    }
    void add_document(const std::vector<std::int32_t>& ids, std::int32_t sep) {
        pending_.insert(pending_.end(), ids.begin(), ids.end());
        pending_.push_back(sep);
        const std::size_t full = pending_.size() / static_cast<std::size_t>(seq_) * static_cast<std::size_t>(seq_);
        if (full) {
            if (std::fwrite(pending_.data(), sizeof(std::int32_t), full, f_) != full)
                CRAM_THROW("cannot write ", path_.string(), ": ", std::strerror(errno));
            blocks_ += static_cast<std::int64_t>(full) / seq_;
            pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(full));
        }
    }
    void close() {
        if (std::fflush(f_) != 0) CRAM_THROW("cannot write ", path_.string(), ": ", std::strerror(errno));
    }
    std::int64_t blocks() const { return blocks_; }
    std::int64_t remainder() const { return static_cast<std::int64_t>(pending_.size()); }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
    int seq_;
    std::FILE* f_ = nullptr;
    std::vector<std::int32_t> pending_;
    std::int64_t blocks_ = 0;
};

// Read-only mapping of a spill file.
class mapped_blocks {
public:
    explicit mapped_blocks(const std::filesystem::path& p) {
        size_ = std::filesystem::file_size(p);
        if (size_ == 0) return;
        const int fd = ::open(p.string().c_str(), O_RDONLY);
        if (fd < 0) CRAM_THROW("cannot open ", p.string());
        map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
        ::close(fd);
        if (map_ == MAP_FAILED) CRAM_THROW("cannot mmap ", p.string());
    }
    ~mapped_blocks() {
        if (map_ && map_ != MAP_FAILED) ::munmap(map_, size_);
    }
    const std::int32_t* data() const { return static_cast<const std::int32_t*>(map_); }

private:
    void* map_ = nullptr;
    std::size_t size_ = 0;
};

// Blocks in the order the corpus gave them.
inline std::vector<std::int64_t> corpus_order(std::int64_t blocks) {
    std::vector<std::int64_t> order(static_cast<std::size_t>(blocks));
    for (std::int64_t i = 0; i < blocks; ++i) order[static_cast<std::size_t>(i)] = i;
    return order;
}

// A seeded Fisher-Yates shuffle (splitmix64 draws): the same seed gives the same order on every machine.
inline void shuffle_order(std::vector<std::int64_t>& order, std::uint64_t seed) {
    if (order.empty()) return;
    std::uint64_t s = seed ^ 0x5DEECE66Dull;
    for (std::size_t i = order.size() - 1; i > 0; --i) {
        const std::size_t j = static_cast<std::size_t>(splitmix64(s) % (i + 1));
        std::swap(order[i], order[j]);
    }
}

// Curriculum "dots" (CRAMMING.md's reference implementation): the number of "." tokens in each block.
inline std::vector<float> dot_counts(const std::int32_t* blocks, std::int64_t n, std::size_t seq, std::int32_t dot) {
    std::vector<float> key(static_cast<std::size_t>(n));
    for (std::int64_t b = 0; b < n; ++b) {
        const std::int32_t* p = blocks + static_cast<std::size_t>(b) * seq;
        double k = 0;
        for (std::size_t i = 0; i < seq; ++i) k += p[i] == dot ? 1.0 : 0.0;
        key[static_cast<std::size_t>(b)] = static_cast<float>(k);
    }
    return key;
}

// Curriculum "unigram" (the paper's text): each block's mean log-probability under the training split's
// add-one unigram model.
inline std::vector<float> unigram_log_likelihoods(const std::int32_t* blocks, std::int64_t n, std::size_t seq,
                                                  const std::vector<std::int64_t>& unigram) {
    std::int64_t total = 0;
    for (auto c : unigram) total += c;
    std::vector<float> logp(unigram.size());
    for (std::size_t t = 0; t < unigram.size(); ++t)
        logp[t] = static_cast<float>(std::log((static_cast<double>(unigram[t]) + 1.0) / (static_cast<double>(total) + 1.0)));
    std::vector<float> key(static_cast<std::size_t>(n));
    for (std::int64_t b = 0; b < n; ++b) {
        const std::int32_t* p = blocks + static_cast<std::size_t>(b) * seq;
        double k = 0;
        for (std::size_t i = 0; i < seq; ++i) k += logp[static_cast<std::size_t>(p[i])];
        key[static_cast<std::size_t>(b)] = static_cast<float>(k / static_cast<double>(seq));
    }
    return key;
}

// Largest key first (most "." / most likely first); ties keep corpus order.
inline void sort_by_key_descending(std::vector<std::int64_t>& order, const std::vector<float>& key) {
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t x, std::int64_t y) {
        return key[static_cast<std::size_t>(x)] > key[static_cast<std::size_t>(y)];
    });
}

// The steps of prepare_dataset over one set of options, in the order it runs them; each step leaves in the
// members what the next one reads.
class dataset_preparer {
public:
    // Checks everything it can before anything is read or written (validate_prepare_options, and a given
    // vocabulary is loaded and must have the tokens packing and masking need).
    dataset_preparer(const prepare_options& opt, const std::function<void(const prepare_progress&)>& progress)
        : opt_(opt), progress_(progress), threads_(opt.threads > 0 ? opt.threads : cpu_threads()) {
        validate_prepare_options(opt);
        if (!opt.vocab.empty()) {
            wp_ = wordpiece::load(opt.vocab, opt.normalizer);
            for (const char* t : {"[SEP]", "[MASK]"})
                if (wp_.token_to_id(t) < 0)
                    CRAM_THROW("vocabulary ", opt.vocab.string(), " (--vocab) has no ", t, " token (packing needs [SEP], "
                               "masking [MASK])");
        }
        sum_.seq_len = opt.seq_len;
    }

    // From here on the output directory is locked and the new dataset goes to its sibling work directory.
    void stage() {
        staged_.emplace(dataset_target(opt_.out));
        dir_ = staged_->work();
    }

    // The new dataset in the place of the old one, in one step.
    void publish() { staged_->commit(); }

    // The given vocabulary, or one trained on the training documents; either way written to the output.
    void build_vocabulary() {
        const stopwatch phase;
        if (!opt_.vocab.empty()) {
            write_vocab_files(dir_, wp_.tokens(), opt_.normalizer, opt_.seq_len);
        } else {
            train_vocabulary();
        }
        sum_.vocab_size = wp_.vocab_size();
        sum_.vocab_xxh64 = vocab_fingerprint(dir_ / "vocab.txt");
        sum_.seconds_vocab = phase.seconds();
        CRAM_CHECK(wp_.specials().sep >= 0, "the vocabulary has no [SEP] token");
    }

    // Every document encoded, filtered, assigned to its split and packed into blocks in a spill file.
    void encode_and_pack() {
        const stopwatch phase;
        train_spill_.emplace(dir_ / "train.blocks.tmp", opt_.seq_len);
        val_spill_.emplace(dir_ / "val.blocks.tmp", opt_.seq_len);
        unigram_.assign(static_cast<std::size_t>(wp_.vocab_size()), 0);
        {
            batch_producer producer(opt_, opt_.max_docs, opt_.dedup);
            while (auto b = producer.next()) {
                const std::vector<std::string_view> views(b->docs.begin(), b->docs.end());
                const auto ids = wp_.encode_batch(views, threads_);
                for (std::size_t i = 0; i < ids.size(); ++i) pack_document(b->docs[i], b->ordinals[i], ids[i]);
                report("encode", sum_.documents, b->bytes_so_far, -1);
            }
            const auto& st = producer.stats();
            sum_.empty_documents = st.empty;
            sum_.bad_lines = st.bad_lines;
            sum_.first_bad_line = st.first_bad_line;
            sum_.duplicates = producer.duplicates();
            if (sum_.documents == 0) no_documents(st);
        }
        sum_.documents += sum_.duplicates;
        train_spill_->close();
        val_spill_->close();
        sum_.dropped_tokens = train_spill_->remainder() + val_spill_->remainder();
        sum_.train_blocks = train_spill_->blocks();
        sum_.val_blocks = val_spill_->blocks();
        sum_.seconds_encode = phase.seconds();
        if (sum_.train_documents + sum_.val_documents == 0)
            CRAM_THROW("prepare: every one of the ", sum_.documents, " documents of ", corpus_names(), " was dropped (",
                       sum_.filtered, " with no tokens or more than --max-tokens-per-char ", opt_.max_tokens_per_char,
                       " tokens per character, ", sum_.duplicates, " duplicates): nothing to write");
        if (sum_.train_blocks == 0)
            CRAM_THROW("prepare: 0 training sequences: the training split of ", corpus_names(), " has ", sum_.train_tokens,
                       " tokens (", sum_.train_documents, " documents), less than one --seq-len block of ", opt_.seq_len,
                       "; add text, or lower --seq-len or --val-fraction");
    }

    // The training split in curriculum (or shuffled) order, the validation split in corpus order.
    void write_shards() {
        const stopwatch phase;
        write_split(*train_spill_, "train", sum_.train_blocks, /*ordered=*/true, sum_.train_shards);
        write_split(*val_spill_, "val", sum_.val_blocks, /*ordered=*/false, sum_.val_shards);
        train_spill_.reset();  // the spill files go before the directory is published
        val_spill_.reset();
        sum_.seconds_write = phase.seconds();
    }

    // summary.json, last: its presence is what marks the directory complete.
    prepare_summary write_summary(double total_seconds) {
        sum_.seconds = total_seconds;
        nlohmann::json j = sum_.to_json();
        j["format"] = "cram-token-shards";
        j["shard_version"] = shard_version;
        j["curriculum"] = to_string(opt_.order);
        j["shuffle"] = opt_.shuffle;
        j["dedup"] = opt_.dedup;
        j["val_fraction"] = opt_.val_fraction;
        j["max_tokens_per_char"] = opt_.max_tokens_per_char;
        j["seed"] = opt_.seed;
        const auto& n = opt_.normalizer;
        j["normalizer"] = {{"lowercase", n.lowercase},       {"strip_accents", n.strip_accents},
                           {"clean_text", n.clean_text},     {"handle_chinese_chars", n.handle_chinese_chars},
                           {"replace_quotes", n.replace_quotes}, {"drop_non_ascii", n.drop_non_ascii}};
        std::vector<std::string> corpus;
        for (const auto& c : opt_.corpus) corpus.push_back(c.string());
        j["corpus"] = corpus;
        atomic_write_file(dir_ / dataset_summary_name, j.dump(2) + "\n");
        return sum_;
    }

private:
    void report(const char* phase, std::int64_t docs, std::int64_t bytes, double fraction) const {
        if (progress_) progress_({phase, docs, bytes, fraction});
    }

    std::string corpus_names() const {
        std::string s;
        for (std::size_t i = 0; i < opt_.corpus.size() && i < 4; ++i) s += (i ? ", " : "") + opt_.corpus[i].string();
        if (opt_.corpus.size() > 4) s += " and " + std::to_string(opt_.corpus.size() - 4) + " more files";
        return s;
    }

    // The corpus gave nothing to work on: say what the reader saw.
    [[noreturn]] void no_documents(const reader_stats& st) const {
        CRAM_THROW("prepare: no documents read from ", corpus_names(), " (", st.lines, " lines: ", st.empty, " empty, ",
                   st.bad_lines, " malformed", st.first_bad_line.empty() ? std::string() : ", first: " + st.first_bad_line,
                   "); check --corpus and --format");
    }

    void train_vocabulary() {
        const word_counts counts = count_training_words();
        trainer_options topt = opt_.trainer;
        topt.vocab_size = opt_.vocab_size;
        topt.threads = threads_;
        topt.normalizer = opt_.normalizer;
        const auto vocab = train_wordpiece(counts, topt, [&](const trainer_progress& p) {
            report("train-vocab", p.vocab, 0, static_cast<double>(p.vocab) / p.target);
        });
        if (static_cast<int>(vocab.size()) > opt_.vocab_size)
            CRAM_THROW("prepare: the training text of ", corpus_names(), " has so many distinct characters that the 5 "
                       "specials, the characters and their ## forms alone make ", vocab.size(), " tokens, more than "
                       "--vocab-size ", opt_.vocab_size, ": raise --vocab-size");
        write_vocab_files(dir_, vocab, opt_.normalizer, opt_.seq_len);
        wp_ = wordpiece::load(dir_ / "vocab.txt", opt_.normalizer);
    }

    // Words of the first vocab_docs documents (within max_docs); validation documents stay unseen.
    word_counts count_training_words() {
        word_counter counter(opt_.normalizer, threads_);
        const std::int64_t limit = opt_.vocab_docs > 0 ? (opt_.max_docs > 0 ? std::min(opt_.vocab_docs, opt_.max_docs) : opt_.vocab_docs)
                                                       : opt_.max_docs;
        batch_producer producer(opt_, limit, opt_.dedup);
        std::int64_t docs = 0;
        while (auto b = producer.next()) {
            std::vector<std::string> train_docs;
            train_docs.reserve(b->docs.size());
            for (std::size_t i = 0; i < b->docs.size(); ++i)
                if (!is_validation(b->ordinals[i], opt_.seed, opt_.val_fraction)) train_docs.push_back(std::move(b->docs[i]));
            counter.add(train_docs);
            docs += static_cast<std::int64_t>(b->docs.size());
            report("vocab", docs, b->bytes_so_far, -1);
        }
        if (docs == 0) no_documents(producer.stats());  // before training a vocabulary of nothing
        return counter.take();
    }

    // One document's ids: counted, dropped when it has too many tokens per character (text the vocabulary
    // does not fit), else packed with a trailing [SEP] into its split's blocks.
    void pack_document(std::string_view doc, std::uint64_t ordinal, const std::vector<std::int32_t>& ids) {
        const auto chars = count_chars(doc);
        sum_.bytes += static_cast<std::int64_t>(doc.size());
        ++sum_.documents;
        if (ids.empty() || static_cast<double>(ids.size()) > opt_.max_tokens_per_char * static_cast<double>(chars)) {
            ++sum_.filtered;
            return;
        }
        const auto n = static_cast<std::int64_t>(ids.size()) + 1;
        const std::int32_t sep = wp_.specials().sep;
        sum_.tokens += n;
        if (is_validation(ordinal, opt_.seed, opt_.val_fraction)) {
            ++sum_.val_documents;
            sum_.val_tokens += n;
            val_spill_->add_document(ids, sep);
        } else {
            ++sum_.train_documents;
            sum_.train_tokens += n;
            for (std::int32_t t : ids) ++unigram_[static_cast<std::size_t>(t)];
            train_spill_->add_document(ids, sep);
        }
    }

    // The order in which a split's blocks are written: `ordered` splits follow the curriculum (none:
    // shuffled unless asked not to); the others keep corpus order.
    std::vector<std::int64_t> block_order(const std::int32_t* blocks, std::int64_t n, bool ordered) const {
        auto order = corpus_order(n);
        if (!ordered || n == 0) return order;
        const auto seq = static_cast<std::size_t>(opt_.seq_len);
        switch (opt_.order) {
            case curriculum::none:
                if (opt_.shuffle) shuffle_order(order, opt_.seed);
                break;
            case curriculum::dots:
                sort_by_key_descending(order, dot_counts(blocks, n, seq, wp_.token_to_id(".")));
                break;
            case curriculum::unigram:
                sort_by_key_descending(order, unigram_log_likelihoods(blocks, n, seq, unigram_));
                break;
        }
        return order;
    }

    // Shards of at most shard_sequences blocks, named SPLIT-00000.shard on; an empty split still gets one
    // (empty) shard, so that every split a summary names can be opened.
    void write_split(const block_spill& spill, const char* split, std::int64_t blocks, bool ordered,
                     std::vector<std::string>& names) const {
        const mapped_blocks data(spill.path());
        const auto order = block_order(data.data(), blocks, ordered);
        const std::size_t seq = static_cast<std::size_t>(opt_.seq_len);
        std::vector<std::int32_t> buf;
        for (std::int64_t first = 0, index = 0; first < blocks || (blocks == 0 && index == 0); first += opt_.shard_sequences, ++index) {
            char name[64];
            std::snprintf(name, sizeof name, "%s-%05lld.shard", split, static_cast<long long>(index));
            shard_writer w(dir_ / name, wp_.vocab_size(), opt_.seq_len);
            const std::int64_t n = std::min(opt_.shard_sequences, blocks - first);
            buf.resize(static_cast<std::size_t>(n) * seq);
            for (std::int64_t i = 0; i < n; ++i)
                std::memcpy(buf.data() + static_cast<std::size_t>(i) * seq,
                            data.data() + static_cast<std::size_t>(order[static_cast<std::size_t>(first + i)]) * seq,
                            seq * sizeof(std::int32_t));
            w.write(buf.data(), n);
            w.finish();
            names.push_back(name);
            report("write", first + n, 0, blocks ? static_cast<double>(first + n) / static_cast<double>(blocks) : 1.0);
            if (blocks == 0) break;
        }
    }

    const prepare_options& opt_;
    const std::function<void(const prepare_progress&)>& progress_;
    const int threads_;
    std::optional<staged_directory> staged_;  // the lock and the work directory, from stage() on
    std::filesystem::path dir_;               // where files are written: the work directory
    prepare_summary sum_;
    wordpiece wp_;
    std::optional<block_spill> train_spill_, val_spill_;  // made when encoding starts
    std::vector<std::int64_t> unigram_;                   // token counts of the training split
};

}  // namespace detail

// Runs the whole pipeline; returns what summary.json records. Options and inputs are checked first; then
// opt.out is locked (a second prepare, or a reader holding lock_dataset_for_reading, makes this throw),
// the dataset is built in a sibling directory and swapped in at the end. Any error before the swap (an
// empty result included) leaves opt.out as it was.
inline prepare_summary prepare_dataset(const prepare_options& opt,
                                       const std::function<void(const prepare_progress&)>& progress = {}) {
    const stopwatch total;
    detail::dataset_preparer run(opt, progress);
    run.stage();
    run.build_vocabulary();
    run.encode_and_pack();
    run.write_shards();
    auto summary = run.write_summary(total.seconds());
    run.publish();
    return summary;
}

}  // namespace cram::data
