// libFuzzer target: arbitrary bytes through BERT normalisation + WordPiece. Invariants: no crash, ids in
// range, the batch path agrees, the normalised text is valid UTF-8, and a vocabulary-free pre-tokenisation
// yields only non-empty words.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cram/data/wordpiece.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const auto wp = cram::data::wordpiece::load(CRAM_FUZZ_VOCAB);
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto ids = wp.encode(text);
    for (auto id : ids)
        if (id < 0 || id >= wp.vocab_size()) std::abort();
    const std::string_view one[1] = {text};
    if (wp.encode_batch(one, 1)[0] != ids) std::abort();
    if (!cram::data::unicode::valid_utf8(wp.normalize(text))) std::abort();
    for (const auto& w : wp.pretokenize(text))
        if (w.empty()) std::abort();
    return 0;
}
