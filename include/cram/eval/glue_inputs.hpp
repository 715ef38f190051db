// GLUE model inputs: `[CLS] A [SEP] B [SEP]` (single sentence: `[CLS] A [SEP]`) with the pretraining
// WordPiece, longest-first truncation to max_len tokens in all, token types 0 for [CLS] A [SEP] and 1 for
// B [SEP]; and padded batches (cram::host_token_batch, padded to the longest sequence in the batch).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/eval/glue_tasks.hpp"
#include "cram/model/batch.hpp"

namespace cram::eval {

struct encoded_example {
    std::vector<std::int32_t> ids, type_ids;
};

namespace detail {

// Hugging Face's longest_first: drop one token at a time from the end of the longer text (from B when they
// are equally long) until both fit in `budget`.
inline void truncate_longest_first(std::vector<std::int32_t>& a, std::vector<std::int32_t>& b, std::size_t budget) {
    while (a.size() + b.size() > budget) {
        if (a.size() > b.size())
            a.pop_back();
        else
            b.pop_back();
    }
}

}  // namespace detail

// Tokenizer: encode(std::string_view) -> std::vector<int32_t> without special tokens, and specials() with
// .cls and .sep (cram::data::wordpiece). `pair`: `[CLS] A [SEP] B [SEP]` (an empty B gives `[CLS] A [SEP]
// [SEP]`, as Hugging Face's tokenizers with an empty text_pair); otherwise `[CLS] A [SEP]` and ex.b unused.
template <class Tokenizer>
encoded_example encode_example(const Tokenizer& tok, const glue_example& ex, bool pair, int max_len = 128) {
    const int specials = pair ? 3 : 2;
    CRAM_CHECK(max_len > specials, "GLUE inputs need max_len > ", specials, " (room for one token after [CLS] and [SEP]), got ",
               max_len);
    std::vector<std::int32_t> a = tok.encode(ex.a);
    std::vector<std::int32_t> b;
    if (pair) b = tok.encode(ex.b);
    detail::truncate_longest_first(a, b, std::size_t(max_len - specials));
    const auto& sp = tok.specials();
    encoded_example e;
    e.ids.reserve(a.size() + b.size() + std::size_t(specials));
    e.ids.push_back(std::int32_t(sp.cls));
    e.ids.insert(e.ids.end(), a.begin(), a.end());
    e.ids.push_back(std::int32_t(sp.sep));
    e.type_ids.assign(e.ids.size(), 0);
    if (pair) {
        e.ids.insert(e.ids.end(), b.begin(), b.end());
        e.ids.push_back(std::int32_t(sp.sep));
        e.type_ids.resize(e.ids.size(), 1);
    }
    return e;
}

// As above with the shape taken from the example: a pair when ex.b is non-empty. For whole tasks prefer
// the overload above with glue_task_info::pair (a pair task's row with an empty B keeps its second [SEP]).
template <class Tokenizer>
encoded_example encode_example(const Tokenizer& tok, const glue_example& ex, int max_len = 128) {
    return encode_example(tok, ex, !ex.b.empty(), max_len);
}

// all[indices[0..count)] as one batch, padded with pad_id (type id 0) to the longest of them; lengths set so
// the padding is masked out of attention. with_types false leaves type_ids empty (a model without a
// token-type table ignores them anyway; this only saves the copy).
inline host_token_batch make_token_batch(const std::vector<encoded_example>& all, const std::size_t* indices,
                                         std::size_t count, std::int32_t pad_id, bool with_types = true) {
    CRAM_CHECK(count > 0 && indices != nullptr, "make_token_batch: an empty batch (count ", count, ")");
    host_token_batch b;
    b.batch = int(count);
    std::size_t seq = 0;
    for (std::size_t i = 0; i < count; ++i) {
        CRAM_CHECK(indices[i] < all.size(), "make_token_batch: example index ", indices[i], " outside [0, ",
                   all.size(), ")");
        CRAM_CHECK(all[indices[i]].ids.size() == all[indices[i]].type_ids.size(), "make_token_batch: example ",
                   indices[i], " has ", all[indices[i]].ids.size(), " ids but ", all[indices[i]].type_ids.size(),
                   " type ids");
        seq = std::max(seq, all[indices[i]].ids.size());
    }
    b.seq = int(seq);
    b.ids.assign(count * seq, pad_id);
    if (with_types) b.type_ids.assign(count * seq, 0);
    b.lengths.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
        const auto& e = all[indices[i]];
        std::copy(e.ids.begin(), e.ids.end(), b.ids.begin() + std::ptrdiff_t(i * seq));
        if (with_types)
            std::copy(e.type_ids.begin(), e.type_ids.end(), b.type_ids.begin() + std::ptrdiff_t(i * seq));
        b.lengths[i] = std::int32_t(e.ids.size());
    }
    return b;
}

}  // namespace cram::eval
