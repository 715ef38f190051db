// WordPiece vocabulary training, the same algorithm as Hugging Face's WordPieceTrainer (which runs its BPE
// trainer with the "##" continuation prefix): count the pre-tokenised words, start from the specials, the
// alphabet (by code point) and its "##" forms, then repeatedly merge the most frequent adjacent pair (ties:
// smaller ids first) until the vocabulary has N tokens. Word counting runs on all cores with one flat hash
// map per thread; the merge loop keeps pair counts and the words each pair occurs in, with a lazy max-heap.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/file_io.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/data/wordpiece.hpp"

namespace cram::data {

struct trainer_options {
    int vocab_size = 32768;
    std::int64_t min_frequency = 0;  // stop merging below this pair count (HF's default: 0)
    int limit_alphabet = 0;          // keep only the most frequent characters (0: all, HF's default)
    std::vector<std::string> special_tokens{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    normalizer_options normalizer{};
    int threads = 0;  // 0: all cores
};

// Counts of pre-tokenised words: one open-addressing table over a byte pool.
class word_counts {
public:
    word_counts() { rehash(1 << 12); }

    void add(std::string_view w, std::int64_t n = 1) {
        if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.size() * 2);
        const std::uint64_t h = detail::hash_bytes(w.data(), w.size());
        for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
            slot& s = slots_[i];
            if (s.count == 0) {
                s = {h, static_cast<std::uint64_t>(pool_.size()), static_cast<std::uint32_t>(w.size()), n};
                pool_.append(w);
                ++size_;
                return;
            }
            if (s.hash == h && s.len == w.size() && std::memcmp(pool_.data() + s.off, w.data(), w.size()) == 0) {
                s.count += n;
                return;
            }
        }
    }
    void merge(const word_counts& o) {
        o.for_each([&](std::string_view w, std::int64_t n) { add(w, n); });
    }
    template <class Fn>
    void for_each(Fn&& fn) const {
        for (const slot& s : slots_)
            if (s.count) fn(std::string_view(pool_.data() + s.off, s.len), s.count);
    }
    std::size_t size() const { return size_; }
    std::size_t memory_bytes() const { return slots_.size() * sizeof(slot) + pool_.capacity(); }

private:
    struct slot {
        std::uint64_t hash = 0, off = 0;
        std::uint32_t len = 0;
        std::int64_t count = 0;
    };
    void rehash(std::size_t cap) {
        std::vector<slot> old = std::move(slots_);
        slots_.assign(cap, slot{});
        mask_ = cap - 1;
        for (const slot& s : old) {
            if (!s.count) continue;
            for (std::size_t i = s.hash & mask_;; i = (i + 1) & mask_)
                if (slots_[i].count == 0) {
                    slots_[i] = s;
                    break;
                }
        }
    }
    std::vector<slot> slots_;
    std::string pool_;
    std::size_t mask_ = 0, size_ = 0;
};

// Counts words of documents on cram's thread pool, one table per part (no locks); call add() with batches
// of documents, then take().
class word_counter {
public:
    explicit word_counter(const normalizer_options& opt = {}, int threads = 0) : pre_(opt) {
        threads_ = threads > 0 ? threads : cpu_threads();
        local_.resize(static_cast<std::size_t>(threads_));
    }

    void add(std::span<const std::string> docs) {
        std::atomic<std::size_t> next{0};  // documents are claimed 8 at a time: their lengths vary a lot
        auto count_part = [&](int part) {
            std::string scratch;
            word_counts& wc = local_[static_cast<std::size_t>(part)];
            for (;;) {
                const std::size_t b = next.fetch_add(8);
                if (b >= docs.size()) break;
                for (std::size_t i = b; i < std::min(docs.size(), b + 8); ++i)
                    pre_.for_each_word(docs[i], [&](std::string_view w, int) { wc.add(w); }, scratch);
            }
        };
        if (threads_ == 1 || docs.size() < 16) {
            count_part(0);
            return;
        }
        parallel_parts(threads_, count_part);
    }
    void add_text(std::string_view text) {
        std::string scratch;
        pre_.for_each_word(text, [&](std::string_view w, int) { local_[0].add(w); }, scratch);
    }

    word_counts take() {
        word_counts all = std::move(local_[0]);
        for (std::size_t t = 1; t < local_.size(); ++t) all.merge(local_[t]);
        local_.assign(local_.size(), word_counts{});
        return all;
    }

private:
    pretokenizer pre_;
    int threads_ = 1;
    std::vector<word_counts> local_;
};

struct trainer_progress {
    int vocab = 0, target = 0;
};

// Learns the vocabulary (token strings in id order) from word counts.
inline std::vector<std::string> train_wordpiece(const word_counts& counts, const trainer_options& opt,
                                                const std::function<void(const trainer_progress&)>& progress = {}) {
    CRAM_CHECK(opt.vocab_size > static_cast<int>(opt.special_tokens.size()), "vocab size ", opt.vocab_size,
               " must exceed the ", opt.special_tokens.size(), " special tokens");
    std::vector<std::string> vocab;
    std::unordered_map<std::string, std::int32_t> ids;
    auto intern = [&](const std::string& s) -> std::int32_t {
        auto [it, fresh] = ids.emplace(s, static_cast<std::int32_t>(vocab.size()));
        if (fresh) vocab.push_back(s);
        return it->second;
    };
    for (const auto& s : opt.special_tokens) intern(s);

    // Words in a deterministic order (count desc, then bytes), so the result does not depend on threads.
    struct word_ref {
        std::string_view text;
        std::int64_t count;
    };
    std::vector<word_ref> words;
    words.reserve(counts.size());
    counts.for_each([&](std::string_view w, std::int64_t n) { words.push_back({w, n}); });
    std::sort(words.begin(), words.end(), [](const word_ref& a, const word_ref& b) {
        return a.count != b.count ? a.count > b.count : a.text < b.text;
    });

    // Alphabet: characters weighted by word counts, optionally only the most frequent, sorted by code point.
    std::unordered_map<char32_t, std::int64_t> char_counts;
    for (const auto& w : words) {
        const auto* p = reinterpret_cast<const unsigned char*>(w.text.data());
        for (std::size_t i = 0; i < w.text.size();) char_counts[unicode::decode_utf8(p, w.text.size(), i)] += w.count;
    }
    std::vector<std::pair<char32_t, std::int64_t>> alphabet(char_counts.begin(), char_counts.end());
    if (opt.limit_alphabet > 0 && alphabet.size() > static_cast<std::size_t>(opt.limit_alphabet)) {
        std::sort(alphabet.begin(), alphabet.end(), [](auto& a, auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
        alphabet.resize(static_cast<std::size_t>(opt.limit_alphabet));
    }
    std::sort(alphabet.begin(), alphabet.end());
    std::unordered_map<char32_t, bool> kept;
    for (const auto& [c, n] : alphabet) {
        std::string s;
        unicode::append_utf8(s, c);
        intern(s);
        kept[c] = true;
    }

    // Words as symbol ids: first character plain, the rest "##"-prefixed.
    std::vector<std::int32_t> sym;  // all words' symbols, back to back
    std::vector<std::uint32_t> off, len;
    std::vector<std::int64_t> wcount;
    off.reserve(words.size());
    for (const auto& w : words) {
        const auto start = static_cast<std::uint32_t>(sym.size());
        const auto* p = reinterpret_cast<const unsigned char*>(w.text.data());
        bool first = true;
        for (std::size_t i = 0; i < w.text.size();) {
            const std::size_t at = i;
            const char32_t c = unicode::decode_utf8(p, w.text.size(), i);
            if (!kept.count(c)) continue;
            std::string s = first ? std::string() : std::string("##");
            s.append(w.text.substr(at, i - at));
            sym.push_back(intern(s));
            first = false;
        }
        off.push_back(start);
        len.push_back(static_cast<std::uint32_t>(sym.size()) - start);
        wcount.push_back(w.count);
    }

    // Pair statistics.
    auto key = [](std::int32_t a, std::int32_t b) {
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
    };
    std::unordered_map<std::uint64_t, std::uint32_t> pair_index;
    pair_index.reserve(words.size() * 2);
    std::vector<std::int64_t> pair_count;
    std::vector<std::vector<std::uint32_t>> pair_words;
    auto pair_slot = [&](std::uint64_t k) -> std::uint32_t {
        auto [it, fresh] = pair_index.emplace(k, static_cast<std::uint32_t>(pair_count.size()));
        if (fresh) {
            pair_count.push_back(0);
            pair_words.emplace_back();
        }
        return it->second;
    };
    for (std::uint32_t w = 0; w < words.size(); ++w) {
        for (std::uint32_t i = 0; i + 1 < len[w]; ++i) {
            const std::uint32_t s = pair_slot(key(sym[off[w] + i], sym[off[w] + i + 1]));
            pair_count[s] += wcount[w];
            if (pair_words[s].empty() || pair_words[s].back() != w) pair_words[s].push_back(w);
        }
    }

    struct candidate {
        std::int64_t count;
        std::uint64_t pair;
        bool operator<(const candidate& o) const {  // max-heap: larger count, then smaller pair
            return count != o.count ? count < o.count : pair > o.pair;
        }
    };
    std::vector<candidate> init;
    init.reserve(pair_index.size());
    for (const auto& [k, s] : pair_index)
        if (pair_count[s] > 0) init.push_back({pair_count[s], k});
    std::priority_queue<candidate> heap(std::less<candidate>{}, std::move(init));

    std::vector<std::uint32_t> stamp(words.size(), 0);
    std::uint32_t round = 0;
    std::vector<std::pair<std::uint64_t, std::int64_t>> changes;
    const auto target = static_cast<std::size_t>(opt.vocab_size);
    while (vocab.size() < target && !heap.empty()) {
        candidate top = heap.top();
        heap.pop();
        const std::uint32_t ps = pair_index.at(top.pair);
        if (top.count != pair_count[ps]) {
            if (pair_count[ps] > 0) heap.push({pair_count[ps], top.pair});
            continue;
        }
        if (top.count < 1 || top.count < opt.min_frequency) break;
        const auto a = static_cast<std::int32_t>(top.pair >> 32);
        const auto b = static_cast<std::int32_t>(top.pair & 0xFFFFFFFFu);
        std::string merged = vocab[static_cast<std::size_t>(a)];
        const std::string& sb = vocab[static_cast<std::size_t>(b)];
        merged.append(sb.compare(0, 2, "##") == 0 ? std::string_view(sb).substr(2) : std::string_view(sb));
        const std::int32_t m = intern(merged);

        ++round;
        changes.clear();
        std::vector<std::uint32_t> where = std::move(pair_words[ps]);
        pair_words[ps].clear();
        pair_count[ps] = 0;
        for (std::uint32_t w : where) {
            if (stamp[w] == round) continue;
            stamp[w] = round;
            std::int32_t* s = sym.data() + off[w];
            std::uint32_t n = len[w];
            const std::int64_t c = wcount[w];
            std::uint32_t out = 0;
            for (std::uint32_t i = 0; i < n;) {
                if (i + 1 < n && s[i] == a && s[i + 1] == b) {
                    if (out > 0) {
                        changes.push_back({key(s[out - 1], a), -c});
                        changes.push_back({key(s[out - 1], m), c});
                    }
                    if (i + 2 < n) {
                        changes.push_back({key(b, s[i + 2]), -c});
                        changes.push_back({key(m, s[i + 2]), c});
                    }
                    s[out++] = m;
                    i += 2;
                } else {
                    s[out++] = s[i++];
                }
            }
            len[w] = out;
            // record the word under the pairs it now has around the new symbol
            for (std::uint32_t i = 0; i < out; ++i) {
                if (s[i] != m) continue;
                if (i > 0) {
                    auto& pw = pair_words[pair_slot(key(s[i - 1], m))];
                    if (pw.empty() || pw.back() != w) pw.push_back(w);
                }
                if (i + 1 < out) {
                    auto& pw = pair_words[pair_slot(key(m, s[i + 1]))];
                    if (pw.empty() || pw.back() != w) pw.push_back(w);
                }
            }
        }
        // apply count changes; pairs that grew go (back) on the heap
        std::sort(changes.begin(), changes.end());
        for (std::size_t i = 0; i < changes.size();) {
            std::size_t j = i;
            std::int64_t delta = 0;
            while (j < changes.size() && changes[j].first == changes[i].first) delta += changes[j++].second;
            const std::uint32_t s = pair_slot(changes[i].first);
            if (changes[i].first != top.pair) {
                pair_count[s] += delta;
                if (delta > 0) heap.push({pair_count[s], changes[i].first});
            }
            i = j;
        }
        if (progress && (vocab.size() % 1024 == 0 || vocab.size() == target))
            progress({static_cast<int>(vocab.size()), opt.vocab_size});
    }
    return vocab;
}

// vocab.txt (one token per line) and a tokenizer_config.json that transformers' BertTokenizer(Fast) loads.
inline void write_vocab_files(const std::filesystem::path& dir, const std::vector<std::string>& vocab,
                              const normalizer_options& norm, int model_max_length) {
    std::filesystem::create_directories(dir);
    std::string lines;
    for (const auto& t : vocab) {
        CRAM_CHECK(t.find('\n') == std::string::npos && !t.empty(), "vocabulary token with a newline or empty");
        lines.append(t).push_back('\n');
    }
    atomic_write_file(dir / "vocab.txt", lines);
    nlohmann::json cfg = {
        {"tokenizer_class", "BertTokenizer"},
        {"do_lower_case", norm.lowercase},
        {"strip_accents", norm.strip_accents == norm.lowercase ? nlohmann::json(nullptr) : nlohmann::json(norm.strip_accents)},
        {"tokenize_chinese_chars", norm.handle_chinese_chars},
        {"clean_up_tokenization_spaces", true},
        {"unk_token", "[UNK]"},
        {"sep_token", "[SEP]"},
        {"pad_token", "[PAD]"},
        {"cls_token", "[CLS]"},
        {"mask_token", "[MASK]"},
        {"model_max_length", model_max_length},
        {"cram_normalizer",
         {{"replace_quotes", norm.replace_quotes}, {"drop_non_ascii", norm.drop_non_ascii}, {"clean_text", norm.clean_text}}},
    };
    atomic_write_file(dir / "tokenizer_config.json", cfg.dump(2) + "\n");
}

}  // namespace cram::data
