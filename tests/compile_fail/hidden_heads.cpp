// Must NOT compile: hidden (100) is not a multiple of heads (12). The test passes when the compiler
// rejects it with validate_config's readable static_assert message (tests/compile_fail.cmake).
#include "cram/model/bert.hpp"

constexpr cram::bert_config bad{.vocab = 64, .hidden = 100, .heads = 12, .layers = 1, .intermediate = 64};
template class cram::bert<bad, cram::cpu::backend<float>>;
