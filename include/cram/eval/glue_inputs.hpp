// GLUE model inputs: `[CLS] A [SEP] B [SEP]` (single sentence: `[CLS] A [SEP]`) with the pretraining
// WordPiece, longest-first truncation to 128 tokens in all, token types 0 for [CLS] A [SEP] and 1 for
// B [SEP]; and padded batches (cram::host_token_batch, padded to the longest sequence in the batch).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/data/wordpiece.hpp"
#include "cram/eval/glue_tasks.hpp"
#include "cram/model/batch.hpp"

namespace cram::eval {

struct encoded_example {
    std::vector<std::int32_t> ids, type_ids;
};

// Longest-first truncation as Hugging Face's Python tokenizers do it: remove one token at a time from the
// end of the longer text (from B when they are equally long) until both fit in `budget` tokens.
inline void truncate_longest_first(std::vector<std::int32_t>& a, std::vector<std::int32_t>& b, std::size_t budget) {
    while (a.size() + b.size() > budget) {
        if (a.size() > b.size())
            a.pop_back();
        else
            b.pop_back();
    }
}

// Builds the input from already-tokenized texts (no special tokens in them). `pair` false ignores b.
inline encoded_example build_input(std::vector<std::int32_t> a, std::vector<std::int32_t> b, bool pair,
                                   const data::special_ids& sp, int max_len = 128) {
    const int specials = pair ? 3 : 2;
    CRAM_CHECK(max_len > specials, "GLUE inputs need max_len > ", specials, ", got ", max_len);
    if (!pair) b.clear();
    truncate_longest_first(a, b, std::size_t(max_len - specials));
    encoded_example e;
    e.ids.reserve(a.size() + b.size() + std::size_t(specials));
    e.ids.push_back(sp.cls);
    e.ids.insert(e.ids.end(), a.begin(), a.end());
    e.ids.push_back(sp.sep);
    e.type_ids.assign(e.ids.size(), 0);
    if (pair) {
        e.ids.insert(e.ids.end(), b.begin(), b.end());
        e.ids.push_back(sp.sep);
        e.type_ids.resize(e.ids.size(), 1);
    }
    return e;
}

// Tokenizer: anything with encode(std::string_view) -> std::vector<int32_t> (no special tokens) and
// specials() -> data::special_ids, i.e. cram::data::wordpiece.
template <class Tokenizer>
encoded_example encode_example(const Tokenizer& tok, const glue_example& ex, bool pair, int max_len = 128) {
    return build_input(tok.encode(ex.a), pair ? tok.encode(ex.b) : std::vector<std::int32_t>{}, pair, tok.specials(),
                       max_len);
}

// Examples idx[0..count) as one batch, padded with `pad` to the longest of them; lengths set so padding is
// masked out of attention. Token types are included only when `with_types` (models with a type table).
inline host_token_batch make_token_batch(const std::vector<encoded_example>& examples, const std::size_t* idx,
                                         std::size_t count, std::int32_t pad, bool with_types = true) {
    CRAM_CHECK(count > 0, "an empty batch");
    host_token_batch b;
    b.batch = int(count);
    std::size_t seq = 0;
    for (std::size_t i = 0; i < count; ++i) {
        CRAM_CHECK(idx[i] < examples.size(), "example index ", idx[i], " outside [0, ", examples.size(), ")");
        seq = std::max(seq, examples[idx[i]].ids.size());
    }
    b.seq = int(seq);
    b.ids.assign(count * seq, pad);
    if (with_types) b.type_ids.assign(count * seq, 0);
    b.lengths.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
        const auto& e = examples[idx[i]];
        std::copy(e.ids.begin(), e.ids.end(), b.ids.begin() + std::ptrdiff_t(i * seq));
        if (with_types) std::copy(e.type_ids.begin(), e.type_ids.end(), b.type_ids.begin() + std::ptrdiff_t(i * seq));
        b.lengths[i] = std::int32_t(e.ids.size());
    }
    return b;
}

}  // namespace cram::eval
