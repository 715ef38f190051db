// The corpus-to-shards pipeline behind `cram_bert_24h prepare` (CRAMMING.md "Data pipeline"): read
// documents, optionally deduplicate, hold out a validation split, train (or load) the WordPiece vocabulary,
// encode on all cores, drop documents with more than 0.25 tokens per character, pack into seq_len-token
// blocks with [SEP] after each document (no [CLS], no padding, the remainder dropped), order the blocks by
// a curriculum, and write token shards plus summary.json, which is written last so that an interrupted run
// never leaves a directory that looks complete. Memory is bounded: blocks go to a temporary file and only
// one sort key per block is held while ordering.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/file_io.hpp"
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
    std::vector<std::string> train_shards, val_shards;

    nlohmann::json to_json() const {
        return {{"documents", documents},         {"empty_documents", empty_documents},
                {"bad_lines", bad_lines},         {"first_bad_line", first_bad_line},
                {"duplicates", duplicates},       {"filtered", filtered},
                {"train_documents", train_documents}, {"val_documents", val_documents},
                {"bytes", bytes},                 {"tokens", tokens},
                {"train_tokens", train_tokens},   {"val_tokens", val_tokens},
                {"dropped_tokens", dropped_tokens}, {"blocks", train_blocks + val_blocks},
                {"vocab_size", vocab_size},       {"seq_len", seq_len},
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

namespace detail {

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
// max_docs and dedup, so that decompression and JSON parsing overlap the encoding.
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

}  // namespace detail

// Runs the whole pipeline; returns what summary.json records.
inline prepare_summary prepare_dataset(const prepare_options& opt,
                                       const std::function<void(const prepare_progress&)>& progress = {}) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    auto seconds_since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
    CRAM_CHECK(!opt.corpus.empty(), "prepare needs at least one corpus file");
    CRAM_CHECK(!opt.out.empty(), "prepare needs an output directory");
    CRAM_CHECK(opt.seq_len >= 2 && opt.seq_len <= max_masking_seq, "sequence length ", opt.seq_len, " outside [2, ", max_masking_seq, "]");
    CRAM_CHECK(opt.max_tokens_per_char > 0, "max tokens per character ", opt.max_tokens_per_char, " must be positive");
    const int threads = opt.threads > 0 ? opt.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

    std::filesystem::create_directories(opt.out);
    // An old summary would make a half-rewritten directory look valid: it goes first.
    std::filesystem::remove(opt.out / dataset_summary_name);
    for (const auto& e : std::filesystem::directory_iterator(opt.out)) {
        const auto name = e.path().filename().string();
        if (name.ends_with(".shard") || name.ends_with(".tmp") || is_temp_name(e.path())) std::filesystem::remove(e.path());
    }

    prepare_summary sum;
    sum.seq_len = opt.seq_len;
    auto report = [&](const char* phase, std::int64_t docs, std::int64_t bytes, double fraction) {
        if (progress) progress({phase, docs, bytes, fraction});
    };

    // ---- vocabulary ----
    const auto tv = clock::now();
    wordpiece wp;
    if (!opt.vocab.empty()) {
        wp = wordpiece::load(opt.vocab, opt.normalizer);
        write_vocab_files(opt.out, wp.tokens(), opt.normalizer, opt.seq_len);
    } else {
        word_counter counter(opt.normalizer, threads);
        const std::int64_t limit = opt.vocab_docs > 0 ? (opt.max_docs > 0 ? std::min(opt.vocab_docs, opt.max_docs) : opt.vocab_docs) : opt.max_docs;
        detail::batch_producer producer(opt, limit, opt.dedup);
        std::int64_t docs = 0;
        while (auto b = producer.next()) {
            // validation documents stay unseen by the vocabulary
            std::vector<std::string> train_docs;
            train_docs.reserve(b->docs.size());
            for (std::size_t i = 0; i < b->docs.size(); ++i)
                if (!detail::is_validation(b->ordinals[i], opt.seed, opt.val_fraction)) train_docs.push_back(std::move(b->docs[i]));
            counter.add(train_docs);
            docs += static_cast<std::int64_t>(b->docs.size());
            report("vocab", docs, b->bytes_so_far, -1);
        }
        trainer_options topt = opt.trainer;
        topt.vocab_size = opt.vocab_size;
        topt.threads = threads;
        topt.normalizer = opt.normalizer;
        const word_counts counts = counter.take();
        const auto vocab = train_wordpiece(counts, topt, [&](const trainer_progress& p) {
            report("train-vocab", p.vocab, 0, static_cast<double>(p.vocab) / p.target);
        });
        write_vocab_files(opt.out, vocab, opt.normalizer, opt.seq_len);
        wp = wordpiece::load(opt.out / "vocab.txt", opt.normalizer);
    }
    sum.vocab_size = wp.vocab_size();
    sum.seconds_vocab = seconds_since(tv);
    const std::int32_t sep = wp.specials().sep;
    CRAM_CHECK(sep >= 0, "the vocabulary has no [SEP] token");

    // ---- encode, filter, split, pack ----
    const auto te = clock::now();
    detail::block_spill train_spill(opt.out / "train.blocks.tmp", opt.seq_len);
    detail::block_spill val_spill(opt.out / "val.blocks.tmp", opt.seq_len);
    std::vector<std::int64_t> unigram(static_cast<std::size_t>(wp.vocab_size()), 0);
    {
        detail::batch_producer producer(opt, opt.max_docs, opt.dedup);
        while (auto b = producer.next()) {
            std::vector<std::string_view> views(b->docs.begin(), b->docs.end());
            const auto ids = wp.encode_batch(views, threads);
            for (std::size_t i = 0; i < ids.size(); ++i) {
                const auto chars = detail::count_chars(b->docs[i]);
                sum.bytes += static_cast<std::int64_t>(b->docs[i].size());
                ++sum.documents;
                if (ids[i].empty() ||
                    static_cast<double>(ids[i].size()) > opt.max_tokens_per_char * static_cast<double>(chars)) {
                    ++sum.filtered;
                    continue;
                }
                const auto n = static_cast<std::int64_t>(ids[i].size()) + 1;
                sum.tokens += n;
                if (detail::is_validation(b->ordinals[i], opt.seed, opt.val_fraction)) {
                    ++sum.val_documents;
                    sum.val_tokens += n;
                    val_spill.add_document(ids[i], sep);
                } else {
                    ++sum.train_documents;
                    sum.train_tokens += n;
                    for (std::int32_t t : ids[i]) ++unigram[static_cast<std::size_t>(t)];
                    train_spill.add_document(ids[i], sep);
                }
            }
            report("encode", sum.documents, b->bytes_so_far, -1);
        }
        const auto& st = producer.stats();
        sum.empty_documents = st.empty;
        sum.bad_lines = st.bad_lines;
        sum.first_bad_line = st.first_bad_line;
        sum.duplicates = producer.duplicates();
    }
    sum.documents += sum.duplicates;
    train_spill.close();
    val_spill.close();
    sum.dropped_tokens = train_spill.remainder() + val_spill.remainder();
    sum.train_blocks = train_spill.blocks();
    sum.val_blocks = val_spill.blocks();
    sum.seconds_encode = seconds_since(te);

    // ---- order and write shards ----
    const auto tw = clock::now();
    const std::size_t seq = static_cast<std::size_t>(opt.seq_len);
    auto write_split = [&](const detail::block_spill& spill, const char* split, std::int64_t blocks, bool ordered,
                           std::vector<std::string>& names) {
        detail::mapped_blocks data(spill.path());
        std::vector<std::int64_t> order(static_cast<std::size_t>(blocks));
        for (std::int64_t i = 0; i < blocks; ++i) order[static_cast<std::size_t>(i)] = i;
        if (ordered && blocks > 0) {
            if (opt.order == curriculum::none) {
                if (opt.shuffle) {
                    std::uint64_t s = opt.seed ^ 0x5DEECE66Dull;
                    for (std::size_t i = order.size() - 1; i > 0; --i) {
                        const std::size_t j = static_cast<std::size_t>(detail::splitmix64(s) % (i + 1));
                        std::swap(order[i], order[j]);
                    }
                }
            } else {
                std::vector<float> key(static_cast<std::size_t>(blocks));
                const std::int32_t dot = wp.token_to_id(".");
                std::vector<float> logp;
                if (opt.order == curriculum::unigram) {
                    std::int64_t total = 0;
                    for (auto c : unigram) total += c;
                    logp.resize(unigram.size());
                    for (std::size_t t = 0; t < unigram.size(); ++t)
                        logp[t] = static_cast<float>(std::log((static_cast<double>(unigram[t]) + 1.0) / (static_cast<double>(total) + 1.0)));
                }
                for (std::int64_t b = 0; b < blocks; ++b) {
                    const std::int32_t* p = data.data() + static_cast<std::size_t>(b) * seq;
                    double k = 0;
                    for (std::size_t i = 0; i < seq; ++i)
                        k += opt.order == curriculum::dots ? (p[i] == dot ? 1.0 : 0.0) : logp[static_cast<std::size_t>(p[i])];
                    key[static_cast<std::size_t>(b)] = static_cast<float>(opt.order == curriculum::dots ? k : k / static_cast<double>(seq));
                }
                // most "." first / most likely first; ties keep corpus order
                std::stable_sort(order.begin(), order.end(), [&](std::int64_t x, std::int64_t y) {
                    return key[static_cast<std::size_t>(x)] > key[static_cast<std::size_t>(y)];
                });
            }
        }
        std::vector<std::int32_t> buf;
        for (std::int64_t first = 0, index = 0; first < blocks || (blocks == 0 && index == 0); first += opt.shard_sequences, ++index) {
            char name[64];
            std::snprintf(name, sizeof name, "%s-%05lld.shard", split, static_cast<long long>(index));
            shard_writer w(opt.out / name, wp.vocab_size(), opt.seq_len);
            const std::int64_t n = std::min(opt.shard_sequences, blocks - first);
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
    };
    write_split(train_spill, "train", sum.train_blocks, true, sum.train_shards);
    write_split(val_spill, "val", sum.val_blocks, false, sum.val_shards);
    sum.seconds_write = seconds_since(tw);
    sum.seconds = seconds_since(t0);

    // ---- summary, last ----
    nlohmann::json j = sum.to_json();
    j["format"] = "cram-token-shards";
    j["shard_version"] = shard_version;
    j["curriculum"] = to_string(opt.order);
    j["shuffle"] = opt.shuffle;
    j["dedup"] = opt.dedup;
    j["val_fraction"] = opt.val_fraction;
    j["max_tokens_per_char"] = opt.max_tokens_per_char;
    j["seed"] = opt.seed;
    j["normalizer"] = {{"lowercase", opt.normalizer.lowercase}, {"strip_accents", opt.normalizer.strip_accents},
                       {"clean_text", opt.normalizer.clean_text}, {"handle_chinese_chars", opt.normalizer.handle_chinese_chars},
                       {"replace_quotes", opt.normalizer.replace_quotes}, {"drop_non_ascii", opt.normalizer.drop_non_ascii}};
    std::vector<std::string> corpus;
    for (const auto& c : opt.corpus) corpus.push_back(c.string());
    j["corpus"] = corpus;
    atomic_write_file(opt.out / dataset_summary_name, j.dump(2) + "\n");
    return sum;
}

}  // namespace cram::data
