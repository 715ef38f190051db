// WordPiece vocabulary training, the same algorithm as Hugging Face's WordPieceTrainer (which runs its BPE
// trainer with the "##" continuation prefix): count the pre-tokenised words, start from the specials, the
// alphabet (by code point) and its "##" forms, then repeatedly merge the most frequent adjacent pair (ties:
// smaller ids first) until the vocabulary has N tokens. Word counting runs on cram's thread pool with one flat
// hash map per part; the merge loop (detail::pair_merger) keeps pair counts and the words each pair occurs
// in, with a lazy max-heap.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
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

namespace detail {

// The vocabulary being built: token strings in id order, each string once.
class vocabulary_builder {
public:
    // The id of `token`, appended when new.
    std::int32_t intern(const std::string& token) {
        auto [it, fresh] = ids_.emplace(token, static_cast<std::int32_t>(tokens_.size()));
        if (fresh) tokens_.push_back(token);
        return it->second;
    }
    const std::string& token(std::int32_t id) const { return tokens_[static_cast<std::size_t>(id)]; }
    std::size_t size() const { return tokens_.size(); }
    std::vector<std::string> take() { return std::move(tokens_); }

private:
    std::vector<std::string> tokens_;
    std::unordered_map<std::string, std::int32_t> ids_;
};

struct counted_word {
    std::string_view text;
    std::int64_t count;
};

// Words in a deterministic order (count desc, then bytes), so the result does not depend on how many
// threads counted them, nor on the order their hash tables were merged in.
inline std::vector<counted_word> words_by_count(const word_counts& counts) {
    std::vector<counted_word> words;
    words.reserve(counts.size());
    counts.for_each([&](std::string_view w, std::int64_t n) { words.push_back({w, n}); });
    std::sort(words.begin(), words.end(), [](const counted_word& a, const counted_word& b) {
        return a.count != b.count ? a.count > b.count : a.text < b.text;
    });
    return words;
}

// The alphabet: every character, weighted by the counts of the words it occurs in; with `limit` > 0 only
// that many of the most frequent (ties: smaller code point). Sorted by code point, the order of their ids.
inline std::vector<char32_t> choose_alphabet(const std::vector<counted_word>& words, int limit) {
    std::unordered_map<char32_t, std::int64_t> char_counts;
    for (const auto& w : words) {
        const auto* p = reinterpret_cast<const unsigned char*>(w.text.data());
        for (std::size_t i = 0; i < w.text.size();) char_counts[unicode::decode_utf8(p, w.text.size(), i)] += w.count;
    }
    std::vector<std::pair<char32_t, std::int64_t>> by_count(char_counts.begin(), char_counts.end());
    if (limit > 0 && by_count.size() > static_cast<std::size_t>(limit)) {
        std::sort(by_count.begin(), by_count.end(),
                  [](auto& a, auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
        by_count.resize(static_cast<std::size_t>(limit));
    }
    std::vector<char32_t> alphabet;
    alphabet.reserve(by_count.size());
    for (const auto& [c, n] : by_count) alphabet.push_back(c);
    std::sort(alphabet.begin(), alphabet.end());
    return alphabet;
}

// A merge's new token: the left symbol followed by the right one without its "##" continuation prefix.
inline std::string merged_token(const std::string& left, const std::string& right) {
    std::string merged = left;
    merged.append(right.compare(0, 2, "##") == 0 ? std::string_view(right).substr(2) : std::string_view(right));
    return merged;
}

// The merge loop's state: every word as symbol ids (first character plain, the rest "##"-prefixed, all back
// to back in one array), the count of every adjacent pair weighted by word counts, the words each pair
// occurs in, and a max-heap of pair counts that is updated lazily (stale entries are skipped when popped).
class pair_merger {
public:
    pair_merger(const std::vector<counted_word>& words, const std::vector<char32_t>& alphabet,
                vocabulary_builder& vocab) {
        split_into_symbols(words, std::unordered_set<char32_t>(alphabet.begin(), alphabet.end()), vocab);
        count_pairs();
        stamp_.assign(wcount_.size(), 0);
    }

    // The most frequent pair (ties: smaller ids first) as (a << 32 | b), or nothing once no pair is left or
    // the best one occurs fewer than max(1, min_frequency) times.
    std::optional<std::uint64_t> best_pair(std::int64_t min_frequency) {
        while (!heap_.empty()) {
            const candidate top = heap_.top();
            heap_.pop();
            const std::int64_t now = pair_count_[pair_index_.at(top.pair)];
            if (top.count != now) {  // stale: the pair's count changed after this entry was pushed
                if (now > 0) heap_.push({now, top.pair});
                continue;
            }
            if (top.count < 1 || top.count < min_frequency) return std::nullopt;
            return top.pair;
        }
        return std::nullopt;
    }

    // Replaces every occurrence of `pair` by the symbol `m`, then moves the counts of the pairs around it.
    void merge(std::uint64_t pair, std::int32_t m) {
        const std::uint32_t ps = pair_index_.at(pair);
        const auto a = static_cast<std::int32_t>(pair >> 32);
        const auto b = static_cast<std::int32_t>(pair & 0xFFFFFFFFu);
        ++round_;
        changes_.clear();
        std::vector<std::uint32_t> where = std::move(pair_words_[ps]);
        pair_words_[ps].clear();
        pair_count_[ps] = 0;
        for (std::uint32_t w : where) {
            if (stamp_[w] == round_) continue;  // a word is listed once per pair, but may repeat after earlier merges
            stamp_[w] = round_;
            rewrite_word(w, a, b, m);
        }
        apply_changes(pair);
    }

private:
    struct candidate {
        std::int64_t count;
        std::uint64_t pair;
        bool operator<(const candidate& o) const {  // max-heap: larger count, then smaller pair
            return count != o.count ? count < o.count : pair > o.pair;
        }
    };

    static std::uint64_t key(std::int32_t a, std::int32_t b) {
        return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
    }

    // The pair's slot in pair_count_ and pair_words_, made on first sight.
    std::uint32_t pair_slot(std::uint64_t k) {
        auto [it, fresh] = pair_index_.emplace(k, static_cast<std::uint32_t>(pair_count_.size()));
        if (fresh) {
            pair_count_.push_back(0);
            pair_words_.emplace_back();
        }
        return it->second;
    }

    // Records word w under the pair in `slot`, once: a word's pairs are visited word by word, so a repeat
    // is always the last entry.
    void note_word(std::uint32_t slot, std::uint32_t w) {
        auto& pw = pair_words_[slot];
        if (pw.empty() || pw.back() != w) pw.push_back(w);
    }

    // Characters outside the alphabet are dropped from the words; the "##" forms get their ids here, in
    // the order they first occur (words by count), as in Hugging Face's trainer.
    void split_into_symbols(const std::vector<counted_word>& words, const std::unordered_set<char32_t>& kept,
                            vocabulary_builder& vocab) {
        off_.reserve(words.size());
        for (const auto& w : words) {
            const auto start = static_cast<std::uint32_t>(sym_.size());
            const auto* p = reinterpret_cast<const unsigned char*>(w.text.data());
            bool first = true;
            for (std::size_t i = 0; i < w.text.size();) {
                const std::size_t at = i;
                const char32_t c = unicode::decode_utf8(p, w.text.size(), i);
                if (!kept.count(c)) continue;
                std::string s = first ? std::string() : std::string("##");
                s.append(w.text.substr(at, i - at));
                sym_.push_back(vocab.intern(s));
                first = false;
            }
            off_.push_back(start);
            len_.push_back(static_cast<std::uint32_t>(sym_.size()) - start);
            wcount_.push_back(w.count);
        }
    }

    void count_pairs() {
        pair_index_.reserve(wcount_.size() * 2);
        for (std::uint32_t w = 0; w < wcount_.size(); ++w) {
            for (std::uint32_t i = 0; i + 1 < len_[w]; ++i) {
                const std::uint32_t s = pair_slot(key(sym_[off_[w] + i], sym_[off_[w] + i + 1]));
                pair_count_[s] += wcount_[w];
                note_word(s, w);
            }
        }
        std::vector<candidate> init;
        init.reserve(pair_index_.size());
        for (const auto& [k, s] : pair_index_)
            if (pair_count_[s] > 0) init.push_back({pair_count_[s], k});
        heap_ = std::priority_queue<candidate>(std::less<candidate>{}, std::move(init));
    }

    // Merges (a, b) -> m inside word w, in place and left to right; the pairs that disappear and appear
    // around each merge go to changes_ (weighted by the word's count), the word under its new pairs.
    void rewrite_word(std::uint32_t w, std::int32_t a, std::int32_t b, std::int32_t m) {
        std::int32_t* s = sym_.data() + off_[w];
        const std::uint32_t n = len_[w];
        const std::int64_t c = wcount_[w];
        std::uint32_t out = 0;
        for (std::uint32_t i = 0; i < n;) {
            if (i + 1 < n && s[i] == a && s[i + 1] == b) {
                if (out > 0) {
                    changes_.push_back({key(s[out - 1], a), -c});
                    changes_.push_back({key(s[out - 1], m), c});
                }
                if (i + 2 < n) {
                    changes_.push_back({key(b, s[i + 2]), -c});
                    changes_.push_back({key(m, s[i + 2]), c});
                }
                s[out++] = m;
                i += 2;
            } else {
                s[out++] = s[i++];
            }
        }
        len_[w] = out;
        for (std::uint32_t i = 0; i < out; ++i) {
            if (s[i] != m) continue;
            if (i > 0) note_word(pair_slot(key(s[i - 1], m)), w);
            if (i + 1 < out) note_word(pair_slot(key(m, s[i + 1])), w);
        }
    }

    // Sums the changes per pair (sorted, so each pair is touched once); pairs that grew go (back) on the
    // heap, the ones that shrank are left to be found stale. The merged pair itself stays at zero.
    void apply_changes(std::uint64_t merged_pair) {
        std::sort(changes_.begin(), changes_.end());
        for (std::size_t i = 0; i < changes_.size();) {
            std::size_t j = i;
            std::int64_t delta = 0;
            while (j < changes_.size() && changes_[j].first == changes_[i].first) delta += changes_[j++].second;
            const std::uint32_t s = pair_slot(changes_[i].first);
            if (changes_[i].first != merged_pair) {
                pair_count_[s] += delta;
                if (delta > 0) heap_.push({pair_count_[s], changes_[i].first});
            }
            i = j;
        }
    }

    std::vector<std::int32_t> sym_;        // all words' symbols, back to back
    std::vector<std::uint32_t> off_, len_;  // word w is sym_[off_[w] .. off_[w] + len_[w])
    std::vector<std::int64_t> wcount_;      // and occurs wcount_[w] times in the corpus
    std::unordered_map<std::uint64_t, std::uint32_t> pair_index_;
    std::vector<std::int64_t> pair_count_;
    std::vector<std::vector<std::uint32_t>> pair_words_;
    std::priority_queue<candidate> heap_;
    std::vector<std::uint32_t> stamp_;  // the round in which a word was last rewritten
    std::uint32_t round_ = 0;
    std::vector<std::pair<std::uint64_t, std::int64_t>> changes_;  // (pair, count delta) of one merge
};

}  // namespace detail

// Learns the vocabulary (token strings in id order) from word counts: the specials, the alphabet, then one
// token per merge of the most frequent pair until the vocabulary has opt.vocab_size tokens.
inline std::vector<std::string> train_wordpiece(const word_counts& counts, const trainer_options& opt,
                                                const std::function<void(const trainer_progress&)>& progress = {}) {
    CRAM_CHECK(opt.vocab_size > static_cast<int>(opt.special_tokens.size()), "vocab size ", opt.vocab_size,
               " must exceed the ", opt.special_tokens.size(), " special tokens");
    detail::vocabulary_builder vocab;
    for (const auto& s : opt.special_tokens) vocab.intern(s);
    const auto words = detail::words_by_count(counts);
    const auto alphabet = detail::choose_alphabet(words, opt.limit_alphabet);
    for (char32_t c : alphabet) {
        std::string s;
        unicode::append_utf8(s, c);
        vocab.intern(s);
    }
    detail::pair_merger merger(words, alphabet, vocab);
    const auto target = static_cast<std::size_t>(opt.vocab_size);
    while (vocab.size() < target) {
        const auto pair = merger.best_pair(opt.min_frequency);
        if (!pair) break;
        const auto left = static_cast<std::int32_t>(*pair >> 32), right = static_cast<std::int32_t>(*pair & 0xFFFFFFFFu);
        // the merged string may exist already (made from another pair): it keeps its id, the vocabulary does not grow
        merger.merge(*pair, vocab.intern(detail::merged_token(vocab.token(left), vocab.token(right))));
        if (progress && (vocab.size() % 1024 == 0 || vocab.size() == target))
            progress({static_cast<int>(vocab.size()), opt.vocab_size});
    }
    return vocab.take();
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
