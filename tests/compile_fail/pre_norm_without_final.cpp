// Must NOT compile: a pre-norm model without a final LayerNorm leaves the last block unnormalised.
#include "cram/model/bert.hpp"

constexpr cram::bert_config bad{.vocab = 64, .hidden = 32, .heads = 4, .layers = 1, .intermediate = 64,
                                .norm = cram::norm_placement::pre, .final_norm = false};
template class cram::bert<bad, cram::cpu::backend<float>>;
