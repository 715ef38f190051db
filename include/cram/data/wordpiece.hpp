// WordPiece encoding with ids identical to Hugging Face's BertNormalizer + BertPreTokenizer + WordPiece
// (unk "[UNK]", prefix "##", words over 100 characters become [UNK]) for any vocab.txt, but faster: one
// pass over the bytes with the per-code-point table of unicode.hpp, words collected in a reused buffer, a
// flat open-addressing hash of the vocabulary (whole word first, then greedy longest match), no allocation
// per token. encode_batch spreads documents over cram's thread pool.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/text.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/data/unicode.hpp"

namespace cram::data {

struct special_ids {
    std::int32_t pad = 0, unk = 1, cls = 2, sep = 3, mask = 4;
};

inline constexpr std::string_view special_token_names[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

namespace detail {

inline std::uint64_t hash_bytes(const char* p, std::size_t n) {
    // 8 bytes at a time, multiply-xorshift mixing; strong enough for a load factor of 1/2.
    std::uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        h = (h ^ v) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    if (n) {
        std::uint64_t v = 0;
        std::memcpy(&v, p, n);
        h = (h ^ v) * 0xC4CEB9FE1A85EC53ull;
        h ^= h >> 29;
    }
    h *= 0x94D049BB133111EBull;
    return h ^ (h >> 31);
}

// String -> id map over one byte pool; open addressing with linear probing, power-of-two capacity.
class flat_string_map {
public:
    void reserve(std::size_t n) {
        std::size_t cap = 16;
        while (cap < 2 * n + 2) cap <<= 1;
        slots_.assign(cap, slot{});
        mask_ = cap - 1;
    }
    // Inserts or overwrites (a repeated key keeps the last id, as HF's HashMap insert does).
    void put(std::string_view key, std::int32_t id) {
        if (slots_.empty() || (size_ + 1) * 2 > slots_.size()) grow();
        const std::uint64_t h = hash_bytes(key.data(), key.size());
        for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
            slot& s = slots_[i];
            if (s.id < 0) {
                s = {static_cast<std::uint32_t>(pool_.size()), static_cast<std::uint32_t>(key.size()),
                     static_cast<std::uint32_t>(h >> 32), id};
                pool_.append(key);
                ++size_;
                return;
            }
            if (s.tag == static_cast<std::uint32_t>(h >> 32) && key_of(s) == key) {
                s.id = id;
                return;
            }
        }
    }
    std::int32_t get(const char* p, std::size_t n) const {
        if (slots_.empty()) return -1;
        const std::uint64_t h = hash_bytes(p, n);
        const auto tag = static_cast<std::uint32_t>(h >> 32);
        for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
            const slot& s = slots_[i];
            if (s.id < 0) return -1;
            if (s.tag == tag && s.len == n && std::memcmp(pool_.data() + s.off, p, n) == 0) return s.id;
        }
    }
    std::size_t size() const { return size_; }

private:
    struct slot {
        std::uint32_t off = 0, len = 0, tag = 0;
        std::int32_t id = -1;
    };
    std::string_view key_of(const slot& s) const { return {pool_.data() + s.off, s.len}; }
    void grow() {
        std::vector<slot> old = std::move(slots_);
        std::string old_pool = std::move(pool_);
        reserve(std::max<std::size_t>(16, size_ * 2 + 8));
        pool_.clear();
        size_ = 0;
        for (const slot& s : old)
            if (s.id >= 0) put(std::string_view(old_pool.data() + s.off, s.len), s.id);
    }
    std::vector<slot> slots_;
    std::string pool_;
    std::size_t mask_ = 0, size_ = 0;
};

// Rust's str::trim_end: trailing White_Space characters.
inline std::string_view trim_end_unicode(std::string_view s) {
    while (!s.empty()) {
        std::size_t start = s.size() - 1;
        while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
        std::size_t i = start;
        const char32_t cp = unicode::decode_utf8(reinterpret_cast<const unsigned char*>(s.data()), s.size(), i);
        if (!unicode::is_whitespace_prop(cp)) break;
        s = s.substr(0, start);
    }
    return s;
}

}  // namespace detail

// BERT normalisation + pre-tokenisation (no vocabulary): the words WordPiece sees, for encoding and training.
class pretokenizer {
public:
    pretokenizer() : pretokenizer(normalizer_options{}) {}
    explicit pretokenizer(const normalizer_options& opt) : opt_(opt), table_(unicode::get_normalizer_table(opt)) {}

    const normalizer_options& options() const { return opt_; }

    // Calls fn(word, chars) for each pre-tokenised word of `text`; `scratch` is reused storage.
    template <class Fn>
    void for_each_word(std::string_view text, Fn&& fn, std::string& scratch) const {
        if (opt_.replace_quotes && (text.find("``") != text.npos || text.find("''") != text.npos)) {
            std::string q;
            q.reserve(text.size());
            for (std::size_t i = 0; i < text.size(); ++i) {
                if (i + 1 < text.size() && (text[i] == '`' || text[i] == '\'') && text[i + 1] == text[i]) {
                    q.push_back('"');
                    ++i;
                } else {
                    q.push_back(text[i]);
                }
            }
            run(q, fn, scratch);
        } else {
            run(text, fn, scratch);
        }
    }

    std::vector<std::string> words(std::string_view text) const {
        std::vector<std::string> out;
        std::string scratch;
        for_each_word(text, [&](std::string_view w, int) { out.emplace_back(w); }, scratch);
        return out;
    }

    // Normalised text (what HF's BertNormalizer returns; CJK padding included; quotes not replaced).
    std::string normalize(std::string_view text) const {
        std::string out;
        const auto* p = reinterpret_cast<const unsigned char*>(text.data());
        for (std::size_t i = 0; i < text.size();) {
            const char32_t cp = unicode::decode_utf8(p, text.size(), i);
            for (char32_t c : table_->normalize_char(cp)) unicode::append_utf8(out, c);
        }
        return out;
    }

private:
    // The scan: normalise + pre-tokenise, calling fn(word, chars) per word.
    template <class Fn>
    void run(std::string_view text, Fn&& fn, std::string& word) const {
        const unicode::normalizer_table& t = *table_;
        const auto* p = reinterpret_cast<const unsigned char*>(text.data());
        const std::size_t n = text.size();
        word.clear();
        int chars = 0;
        auto flush = [&] {
            if (!word.empty()) {
                fn(std::string_view(word), chars);
                word.clear();
                chars = 0;
            }
        };
        std::size_t i = 0;
        while (i < n) {
            const unsigned char c = p[i];
            if (c < 0x80) {
                const unicode::cp_entry& e = t.ascii(c);
                ++i;
                if (e.kind == unicode::cp_kind::word) {
                    word.push_back(t.text(e)[0]);
                    ++chars;
                } else if (e.kind == unicode::cp_kind::space) {
                    flush();
                } else if (e.kind == unicode::cp_kind::isolated) {
                    flush();
                    fn(t.text(e), 1);
                }
                continue;
            }
            const std::size_t at = i;
            const char32_t cp = unicode::decode_utf8(p, n, i);
            const unicode::cp_entry& e = t.at(cp);
            switch (e.kind) {
                case unicode::cp_kind::drop:
                    break;
                case unicode::cp_kind::space:
                    flush();
                    break;
                case unicode::cp_kind::word:
                    if (e.same) {
                        word.append(text.data() + at, i - at);
                    } else {
                        word.append(t.text(e));
                    }
                    chars += e.chars;
                    break;
                case unicode::cp_kind::isolated:
                    flush();
                    fn(t.text(e), e.chars);
                    break;
                case unicode::cp_kind::complex: {
                    const std::string_view s = t.text(e);
                    const auto* q = reinterpret_cast<const unsigned char*>(s.data());
                    for (std::size_t j = 0; j < s.size();) {
                        const std::size_t from = j;
                        const char32_t oc = unicode::decode_utf8(q, s.size(), j);
                        const auto k = unicode::normalizer_table::classify(oc);
                        if (k == unicode::pretok_class::space) {
                            flush();
                        } else if (k == unicode::pretok_class::punct) {
                            flush();
                            fn(s.substr(from, j - from), 1);
                        } else {
                            word.append(s.substr(from, j - from));
                            ++chars;
                        }
                    }
                    break;
                }
            }
        }
        flush();
    }

    normalizer_options opt_;
    std::shared_ptr<const unicode::normalizer_table> table_;
};

class wordpiece {
public:
    static constexpr int max_input_chars_per_word = 100;

    wordpiece() = default;

    // Reads vocab.txt as HF does: one token per line, trailing whitespace trimmed, id = line number (a
    // leading UTF-8 byte-order mark is dropped).
    static wordpiece load(const std::filesystem::path& vocab_txt, const normalizer_options& opt = {}) {
        std::ifstream in(vocab_txt, std::ios::binary);
        if (!in) CRAM_THROW("cannot open vocabulary ", vocab_txt.string());
        std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (in.bad()) CRAM_THROW("error reading vocabulary ", vocab_txt.string());
        strip_bom_in_place(data);  // an editor's byte-order mark is not part of the first token
        std::vector<std::string> tokens;
        std::size_t pos = 0, line = 1;
        while (pos < data.size()) {
            std::size_t nl = data.find('\n', pos);
            if (nl == std::string::npos) nl = data.size();
            std::string_view l(data.data() + pos, nl - pos);
            if (!unicode::valid_utf8(l)) CRAM_THROW("vocabulary ", vocab_txt.string(), " line ", line, " is not valid UTF-8");
            tokens.emplace_back(detail::trim_end_unicode(l));
            pos = nl + 1;
            ++line;
        }
        try {
            return from_tokens(tokens, opt);
        } catch (const cram::error& e) {
            CRAM_THROW("vocabulary ", vocab_txt.string(), ": ", e.what());
        }
    }

    static wordpiece from_tokens(const std::vector<std::string>& tokens, const normalizer_options& opt = {}) {
        wordpiece w;
        w.opt_ = opt;
        w.pre_ = pretokenizer(opt);
        w.tokens_ = tokens;
        w.whole_.reserve(tokens.size());
        w.cont_.reserve(tokens.size() / 4 + 16);
        for (std::size_t i = 0; i < tokens.size(); ++i) {
            const std::string& t = tokens[i];
            const auto id = static_cast<std::int32_t>(i);
            w.whole_.put(t, id);
            w.max_whole_ = std::max(w.max_whole_, t.size());
            if (t.size() > 2 && t[0] == '#' && t[1] == '#') {
                w.cont_.put(std::string_view(t).substr(2), id);
                w.max_cont_ = std::max(w.max_cont_, t.size() - 2);
            }
        }
        // A repeated token keeps its last line in the map; earlier lines map back to nothing.
        w.id_valid_.assign(tokens.size(), 0);
        for (std::size_t i = 0; i < tokens.size(); ++i)
            if (w.whole_.get(tokens[i].data(), tokens[i].size()) == static_cast<std::int32_t>(i)) w.id_valid_[i] = 1;
        w.unk_ = w.token_to_id("[UNK]");
        if (w.unk_ < 0) CRAM_THROW("the vocabulary has no [UNK] token (", tokens.size(), " tokens)");
        w.specials_.pad = w.token_to_id("[PAD]");
        w.specials_.unk = w.unk_;
        w.specials_.cls = w.token_to_id("[CLS]");
        w.specials_.sep = w.token_to_id("[SEP]");
        w.specials_.mask = w.token_to_id("[MASK]");
        return w;
    }

    std::vector<std::int32_t> encode(std::string_view text) const {
        std::vector<std::int32_t> out;
        out.reserve(text.size() / 4 + 4);
        encode_append(text, out);
        return out;
    }

    void encode_append(std::string_view text, std::vector<std::int32_t>& out) const {
        std::string scratch;
        encode_append(text, out, scratch);
    }

    // `scratch` is reused between calls by loops that encode many documents.
    void encode_append(std::string_view text, std::vector<std::int32_t>& out, std::string& scratch) const {
        pre_.for_each_word(text, [&](std::string_view w, int chars) { word_to_ids(w, chars, out); }, scratch);
    }

    std::vector<std::string> pretokenize(std::string_view text) const { return pre_.words(text); }
    const pretokenizer& pre() const { return pre_; }

    // Ids of one pre-tokenised word (greedy longest match; the whole word becomes [UNK] if a piece is missing).
    void word_to_ids(std::string_view w, int chars, std::vector<std::int32_t>& out) const {
        if (chars > max_input_chars_per_word) {
            out.push_back(unk_);
            return;
        }
        const std::int32_t whole = w.size() <= max_whole_ ? whole_.get(w.data(), w.size()) : -1;
        if (whole >= 0) {
            out.push_back(whole);
            return;
        }
        const std::size_t mark = out.size();
        std::size_t start = 0;
        while (start < w.size()) {
            const bool first = start == 0;
            const std::size_t limit = first ? max_whole_ : max_cont_;
            std::size_t end = std::min(w.size(), start + limit);
            while (end > start && end < w.size() && (static_cast<unsigned char>(w[end]) & 0xC0) == 0x80) --end;
            std::int32_t id = -1;
            while (end > start) {
                id = first ? whole_.get(w.data(), end) : cont_.get(w.data() + start, end - start);
                if (id >= 0) break;
                --end;
                while (end > start && (static_cast<unsigned char>(w[end]) & 0xC0) == 0x80) --end;
            }
            if (id < 0) {
                out.resize(mark);
                out.push_back(unk_);
                return;
            }
            out.push_back(id);
            start = end;
        }
    }

    // Encodes documents in `threads` parts on cram's thread pool (0: cram::cpu_threads()); out[i] = encode(docs[i]).
    // Each document is encoded on its own, so the ids do not depend on how the parts fall.
    std::vector<std::vector<std::int32_t>> encode_batch(std::span<const std::string_view> docs, int threads = 0) const {
        std::vector<std::vector<std::int32_t>> out(docs.size());
        if (threads <= 0) threads = cpu_threads();
        threads = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(threads), std::max<std::size_t>(1, docs.size())));
        std::atomic<std::size_t> next{0};  // documents are claimed 16 at a time: their lengths vary a lot
        parallel_parts(threads, [&](int) {
            std::string scratch;
            for (;;) {
                const std::size_t begin = next.fetch_add(16);
                if (begin >= docs.size()) break;
                const std::size_t end = std::min(docs.size(), begin + 16);
                for (std::size_t i = begin; i < end; ++i) {
                    out[i].reserve(docs[i].size() / 4 + 4);
                    encode_append(docs[i], out[i], scratch);
                }
            }
        });
        return out;
    }

    std::int32_t token_to_id(std::string_view token) const { return whole_.get(token.data(), token.size()); }
    std::string_view id_to_token(std::int32_t id) const {
        if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size() || !id_valid_[static_cast<std::size_t>(id)]) return {};
        return tokens_[static_cast<std::size_t>(id)];
    }
    std::int32_t vocab_size() const { return static_cast<std::int32_t>(tokens_.size()); }
    const special_ids& specials() const { return specials_; }
    const normalizer_options& options() const { return opt_; }
    const std::vector<std::string>& tokens() const { return tokens_; }

    std::string normalize(std::string_view text) const { return pre_.normalize(text); }

private:
    normalizer_options opt_;
    pretokenizer pre_;
    std::vector<std::string> tokens_;
    std::vector<std::uint8_t> id_valid_;
    detail::flat_string_map whole_, cont_;
    std::size_t max_whole_ = 0, max_cont_ = 0;
    std::int32_t unk_ = -1;
    special_ids specials_;
};

}  // namespace cram::data
