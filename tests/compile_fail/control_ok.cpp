// Must compile: the same translation unit shape as the compile-fail cases with a valid config, so a
// failure there is the static_assert and not a broken include path.
#include "cram/model/bert.hpp"

constexpr cram::bert_config good{.vocab = 64, .hidden = 96, .heads = 12, .layers = 1, .intermediate = 64};
template class cram::bert<good, cram::cpu::backend<float>>;
