// BERT normalisation and pre-tokenisation as one table lookup per code point. Hugging Face's
// BertNormalizer (clean control characters, pad CJK ideographs, NFD + strip nonspacing marks, lowercase)
// and BertPreTokenizer (split on whitespace, isolate punctuation) act character by character, so their
// combined effect on each scalar value is precomputed once (properties from utf8proc) and the hot loop in
// wordpiece.hpp is a byte scan: ASCII through a 128-entry table, everything else through this one.
#pragma once

#include <utf8proc.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "cram/core/error.hpp"

namespace cram::data {

// The switches of BERT's normaliser (all on = bert-base-uncased and HF's BertNormalizer defaults) plus the
// cramming recipe's extras. replace_quotes turns `` and '' into " before anything else; drop_non_ascii
// removes every non-ASCII character of the normalised text (after accents are stripped, so "é" keeps its "e").
struct normalizer_options {
    bool clean_text = true;
    bool handle_chinese_chars = true;
    bool strip_accents = true;
    bool lowercase = true;
    bool replace_quotes = false;
    bool drop_non_ascii = false;

    auto key() const {
        return std::tuple(clean_text, handle_chinese_chars, strip_accents, lowercase, drop_non_ascii);
    }
    bool operator==(const normalizer_options&) const = default;
};

namespace unicode {

inline constexpr char32_t replacement_char = 0xFFFD;
inline constexpr char32_t max_scalar = 0x10FFFF;

// Decodes one UTF-8 scalar at s[i] (i < n), advancing i. Invalid or truncated sequences, overlong forms and
// surrogates yield U+FFFD and consume one byte, as a lossy decoder does; BERT's cleaning then drops them.
inline char32_t decode_utf8(const unsigned char* s, std::size_t n, std::size_t& i) {
    const unsigned c = s[i];
    if (c < 0x80) {
        ++i;
        return c;
    }
    int len;
    char32_t cp;
    char32_t min;
    if ((c & 0xE0) == 0xC0) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        ++i;
        return replacement_char;
    }
    if (i + static_cast<std::size_t>(len) > n) {
        ++i;
        return replacement_char;
    }
    for (int k = 1; k < len; ++k) {
        const unsigned b = s[i + static_cast<std::size_t>(k)];
        if ((b & 0xC0) != 0x80) {
            ++i;
            return replacement_char;
        }
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > max_scalar || (cp >= 0xD800 && cp <= 0xDFFF)) {
        ++i;
        return replacement_char;
    }
    i += static_cast<std::size_t>(len);
    return cp;
}

inline void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

inline bool valid_utf8(std::string_view s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    for (std::size_t i = 0; i < s.size();) {
        const std::size_t at = i;
        if (decode_utf8(p, s.size(), i) == replacement_char && !(s.substr(at, 3) == "\xEF\xBF\xBD")) return false;
    }
    return true;
}

// ---- character properties, as Hugging Face's Rust code defines them ----------------------------------------

// Hugging Face reads categories from the `unicode_categories` crate, whose tables predate several Unicode
// releases: characters assigned later count there as unassigned (Cn, so "other", so cleaned away) and marks
// added later are not stripped. These ranges, found by running HF over every scalar value
// (tests/data/hf_reference/hf_reference.js codepoints), are where utf8proc's current tables and HF's differ;
// ids stay identical because the encoder asks these functions, not utf8proc, first.
struct cp_range {
    char32_t lo, hi;
};
struct cp_map {
    char32_t from, to;
};
#ifndef CRAM_DATA_NO_HF_TABLES
#include "cram/data/unicode_hf_tables.inc"
#else  // the generator (tests/data/hf_reference/gen_unicode_tables.cpp) starts from utf8proc alone
inline constexpr cp_range hf_other_extra[] = {{0x7FFFFFFF, 0x7FFFFFFF}}, hf_other_missing[] = {{0x7FFFFFFF, 0x7FFFFFFF}},
                          hf_mn_extra[] = {{0x7FFFFFFF, 0x7FFFFFFF}}, hf_mn_missing[] = {{0x7FFFFFFF, 0x7FFFFFFF}},
                          hf_punct_extra[] = {{0x7FFFFFFF, 0x7FFFFFFF}}, hf_punct_missing[] = {{0x7FFFFFFF, 0x7FFFFFFF}};
inline constexpr cp_map hf_lower_extra[] = {{0x7FFFFFFF, 0x7FFFFFFF}};
inline constexpr char32_t hf_nfd_identity[] = {0x7FFFFFFF};
#endif

inline bool in_ranges(const cp_range* r, std::size_t n, char32_t cp) {
    std::size_t lo = 0, hi = n;
    while (lo < hi) {
        const std::size_t mid = (lo + hi) / 2;
        if (cp < r[mid].lo) {
            hi = mid;
        } else if (cp > r[mid].hi) {
            lo = mid + 1;
        } else {
            return true;
        }
    }
    return false;
}

inline int category(char32_t cp) { return utf8proc_category(static_cast<utf8proc_int32_t>(cp)); }

// Rust's char::is_whitespace (the White_Space property).
inline bool is_whitespace_prop(char32_t cp) {
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x85) return true;
    const int c = category(cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

// BertNormalizer: \t \n \r and White_Space.
inline bool is_bert_whitespace(char32_t cp) { return cp == '\t' || cp == '\n' || cp == '\r' || is_whitespace_prop(cp); }

// BertNormalizer's "control": categories Cc, Cf, Cn, Co, Cs (in HF's older tables), except \t \n \r.
inline bool is_bert_control(char32_t cp) {
    if (cp == '\t' || cp == '\n' || cp == '\r') return false;
    if (in_ranges(hf_other_extra, std::size(hf_other_extra), cp)) return true;
    if (in_ranges(hf_other_missing, std::size(hf_other_missing), cp)) return false;
    const int c = category(cp);
    return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF ||
           c == UTF8PROC_CATEGORY_CO || c == UTF8PROC_CATEGORY_CS;
}

// Nonspacing marks (Mn) as HF's tables have them: what strip_accents removes.
inline bool is_nonspacing_mark(char32_t cp) {
    if (in_ranges(hf_mn_extra, std::size(hf_mn_extra), cp)) return true;
    if (in_ranges(hf_mn_missing, std::size(hf_mn_missing), cp)) return false;
    return category(cp) == UTF8PROC_CATEGORY_MN;
}

// BertPreTokenizer's punctuation: any ASCII punctuation (symbols like $ + < = > ^ ` | ~ included) or a
// character of a P* category.
inline bool is_bert_punctuation(char32_t cp) {
    if (cp < 0x80) return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
    if (in_ranges(hf_punct_extra, std::size(hf_punct_extra), cp)) return true;
    if (in_ranges(hf_punct_missing, std::size(hf_punct_missing), cp)) return false;
    const int c = category(cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

// The CJK blocks BERT pads with spaces. Hugging Face's list starts the fifth block at U+2B920 where the
// original BERT code has U+2B820; ids follow HF, so U+2B820..U+2B91F stay inside words.
inline bool is_cjk_ideograph(char32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// Canonical decomposition (NFD) of one character, as HF's normalisation crate does it.
inline int canonical_decompose(char32_t cp, char32_t* out, int cap) {
    for (std::size_t k = 0; k < std::size(hf_nfd_identity); ++k)
        if (hf_nfd_identity[k] == cp) {
            out[0] = cp;
            return 1;
        }
    utf8proc_int32_t buf[32];
    int last = 0;
    const auto n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), buf, 32, UTF8PROC_DECOMPOSE, &last);
    if (n <= 0 || n > cap) {
        out[0] = cp;
        return 1;
    }
    for (int k = 0; k < n; ++k) out[k] = static_cast<char32_t>(buf[k]);
    return static_cast<int>(n);
}

// Lowercase as Rust's char::to_lowercase (newer Unicode than utf8proc 2.8 for a few letters). Its one
// multi-character mapping, U+0130, decomposes under NFD first, so a single code point suffices whenever
// accents are stripped; without stripping U+0130 lowercases to plain "i" here (Rust: "i" + U+0307).
inline char32_t to_lower(char32_t cp) {
    for (const auto& m : hf_lower_extra)
        if (m.from == cp) return m.to;
    return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp)));
}

// ---- the per-code-point table -----------------------------------------------------------------------------

// What one input character becomes after normalisation, as seen by the pre-tokeniser.
enum class cp_kind : std::uint8_t {
    drop = 0,      // nothing (control characters, U+FFFD, stripped marks)
    space = 1,     // ends the current word
    word = 2,      // appends `text` to the current word
    isolated = 3,  // a word of its own: punctuation, padded CJK ideographs
    complex = 4,   // a mix: `text` is re-read character by character (rare)
};

struct cp_entry {
    cp_kind kind = cp_kind::drop;
    std::uint8_t len = 0;       // bytes of output
    std::uint8_t chars = 0;     // code points of output (HF's 100-character word limit counts these)
    std::uint8_t same = 0;      // 1: output bytes are the input bytes
    std::uint32_t offset = 0;   // into normalizer_table::pool
};

// Class of a normalised character for the pre-tokeniser (used for complex entries).
enum class pretok_class : std::uint8_t { word = 0, space = 1, punct = 2 };

class normalizer_table {
public:
    explicit normalizer_table(const normalizer_options& opt) : opt_(opt), entries_(max_scalar + 1) {
        std::string tmp;
        for (char32_t cp = 0; cp <= max_scalar; ++cp) {
            if (cp >= 0xD800 && cp <= 0xDFFF) continue;  // never produced by the decoder
            entries_[cp] = build(cp, tmp);
        }
        for (unsigned c = 0; c < 128; ++c) {
            const cp_entry& e = entries_[c];
            ascii_[c] = e;
        }
    }

    const normalizer_options& options() const { return opt_; }
    const cp_entry& at(char32_t cp) const { return entries_[cp]; }
    const cp_entry& ascii(unsigned char c) const { return ascii_[c]; }
    std::string_view text(const cp_entry& e) const { return {pool_.data() + e.offset, e.len}; }

    // The normalised characters of one input character, with the padding spaces BERT puts around CJK.
    std::u32string normalize_char(char32_t cp) const {
        std::u32string out;
        if (opt_.clean_text) {
            if (cp == 0 || cp == replacement_char || is_bert_control(cp)) return out;
            if (is_bert_whitespace(cp)) cp = ' ';
        }
        const bool pad = opt_.handle_chinese_chars && is_cjk_ideograph(cp);
        if (pad) out.push_back(' ');
        char32_t dec[32];
        int n = 1;
        dec[0] = cp;
        if (opt_.strip_accents) n = canonical_decompose(cp, dec, 32);
        for (int k = 0; k < n; ++k) {
            char32_t c = dec[k];
            if (opt_.strip_accents && is_nonspacing_mark(c)) continue;
            if (opt_.lowercase) c = to_lower(c);
            if (opt_.drop_non_ascii && c >= 0x80) continue;
            out.push_back(c);
        }
        if (pad) out.push_back(' ');
        return out;
    }

    static pretok_class classify(char32_t c) {
        if (is_whitespace_prop(c)) return pretok_class::space;
        if (is_bert_punctuation(c)) return pretok_class::punct;
        return pretok_class::word;
    }

private:
    cp_entry build(char32_t cp, std::string& tmp) {
        const std::u32string out = normalize_char(cp);
        cp_entry e;
        if (out.empty()) return e;
        bool all_space = true, all_word = true;
        for (char32_t c : out) {
            const auto k = classify(c);
            all_space &= k == pretok_class::space;
            all_word &= k == pretok_class::word;
        }
        if (all_space) {
            e.kind = cp_kind::space;
            return e;
        }
        std::u32string core = out;
        if (out.size() == 1 && classify(out[0]) == pretok_class::punct) {
            e.kind = cp_kind::isolated;
        } else if (all_word) {
            e.kind = cp_kind::word;
        } else if (out.size() >= 3 && out.front() == ' ' && out.back() == ' ') {
            core = out.substr(1, out.size() - 2);
            bool inner_word = true;
            for (char32_t c : core) inner_word &= classify(c) == pretok_class::word;
            e.kind = inner_word ? cp_kind::isolated : cp_kind::complex;
            if (!inner_word) core = out;
        } else {
            e.kind = cp_kind::complex;
        }
        tmp.clear();
        for (char32_t c : core) append_utf8(tmp, c);
        std::string self;
        append_utf8(self, cp);
        CRAM_CHECK(tmp.size() < 256 && core.size() < 256, "normalised form of U+", static_cast<unsigned>(cp), " too long");
        e.len = static_cast<std::uint8_t>(tmp.size());
        e.chars = static_cast<std::uint8_t>(core.size());
        e.same = tmp == self;
        e.offset = static_cast<std::uint32_t>(pool_.size());
        pool_ += tmp;
        return e;
    }

    normalizer_options opt_;
    std::vector<cp_entry> entries_;
    std::array<cp_entry, 128> ascii_{};
    std::string pool_;
};

// One shared table per distinct option set (building one takes ~0.1 s).
inline std::shared_ptr<const normalizer_table> get_normalizer_table(const normalizer_options& opt) {
    static std::mutex m;
    static std::map<decltype(opt.key()), std::shared_ptr<const normalizer_table>> cache;
    std::lock_guard lock(m);
    auto& slot = cache[opt.key()];
    if (!slot) slot = std::make_shared<normalizer_table>(opt);
    return slot;
}

}  // namespace unicode
}  // namespace cram::data
