// Consumer of the installed package: one forward pass of crammed BERT on the CPU backend. Exits
// non-zero unless the MLM loss is finite and near ln(vocab), as it must be for a fresh model. Built with
// CONSUMER_CORE_ONLY it includes only headers of cram::core, the way a model-only user would.
#ifdef CONSUMER_CORE_ONLY
#include <cram/cpu/backend.hpp>
#include <cram/model/bert.hpp>
#include <cram/model/masking.hpp>
#include <cram/model/presets.hpp>
#include <cram/train/training_state.hpp>  // standard library only: part of cram::core
#else
#include <cram/cram.hpp>
#endif

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
    using backend = cram::cpu::backend<float>;
    using model_t = cram::bert<cram::presets::crammed_bert, backend>;
    backend::context ctx;
    cram::train::training_state<backend> state(ctx, model_t::layout());  // parameters live with whoever trains
    model_t model(ctx, cram::bind_bert<cram::presets::crammed_bert, backend>(state), /*max_batch=*/1, /*max_seq=*/32);
    state.init(1, 0.02f, model_t::hidden, 0);
    std::vector<std::int32_t> tokens(32);
    for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = std::int32_t(100 + 37 * i);
    cram::masking_options mask;
    const auto batch = cram::mask_batch(tokens.data(), 1, 32, mask, 7, 0);
    model.mlm_forward(batch.view());
    const double loss = model.take_mlm_loss();
    std::printf("crammed_bert: %zu parameters, MLM loss %.4f (ln vocab = %.4f)\n", model_t::parameter_count(), loss,
                std::log(32768.0));
    return std::isfinite(loss) && std::abs(loss - std::log(32768.0)) < 1.0 ? 0 : 1;
}
