// Must NOT compile: a GELU-GLU FFN splits its first linear in two halves, so intermediate must be even.
#include "cram/model/bert.hpp"

constexpr cram::bert_config bad{.vocab = 64, .hidden = 32, .heads = 4, .layers = 1, .intermediate = 63,
                                .ffn = cram::ffn_kind::gelu_glu};
template class cram::bert<bad, cram::cpu::backend<float>>;
