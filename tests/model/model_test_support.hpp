// What the model tests share: a config as a type (for TEST_CASE_TEMPLATE) and a masked MLM batch of random tokens.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cram/cram.hpp"

namespace cram::model_test {

template <bert_config C>
struct config_tag {
    static constexpr bert_config value = C;
};

// `batch` sequences of `seq` random tokens (ids from 5: clear of the special tokens), a third of them masked; with
// token types, position i of the batch gets type i mod types.
template <bert_config C>
host_mlm_batch make_batch(int batch, int seq, std::uint64_t seed) {
    std::vector<std::int32_t> tokens(std::size_t(batch) * seq);
    philox_stream rng(seed, 7, 0);
    for (auto& t : tokens) t = 5 + std::int32_t(rng.next_below(C.vocab - 5));
    masking_options mo;
    mo.mask_fraction = 0.34f;
    mo.vocab = C.vocab;
    auto b = mask_batch(tokens.data(), batch, seq, mo, seed, 0);
    if constexpr (C.token_types > 0) {
        b.type_ids.resize(tokens.size());
        for (std::size_t i = 0; i < tokens.size(); ++i) b.type_ids[i] = std::int32_t(i % C.token_types);
    }
    return b;
}

}  // namespace cram::model_test
