// cram/train/training_state.hpp: the AdamW step over a state's flat buffers decays only the decayed range of a
// layout, and clip_scale brings the global norm down to the clip value. (The per-element step is tested in
// tests/ops/test_adamw.cpp.)
#include <algorithm>
#include <cstddef>
#include <vector>

#include "cram/cpu/backend.hpp"
#include "cram/model/parameters.hpp"
#include "cram/train/optimizer.hpp"
#include "cram/train/training_state.hpp"
#include "test_support.hpp"

namespace {
using vec = std::vector<double>;
}  // namespace

TEST_CASE("training_state's AdamW step decays only the decayed range of a layout") {
    // roles in visit order, interleaved, so the layout must reorder them to put decayed tensors first
    cram::param_layout layout;
    layout.add("a.weight", {3, 5}, cram::param_role::matrix);
    layout.add("a.bias", {5}, cram::param_role::bias);
    layout.add("norm.weight", {5}, cram::param_role::norm_weight);
    layout.add("emb.weight", {4, 3}, cram::param_role::embedding);
    layout.add("norm.bias", {5}, cram::param_role::norm_bias);
    layout.add("pos.scale", {1}, cram::param_role::position_scale);
    layout.finalize();
    using be = cram::cpu::backend<double>;
    be::context ctx;
    cram::train::training_state<be> state(ctx, layout);
    vec params(layout.buffer_size(), 0.0), grads(layout.buffer_size(), 0.0);
    for (std::size_t i = 0; i < params.size(); ++i) params[i] = 1.0 + 0.01 * double(i);
    // Every real parameter gets gradient 0 except the tensor under test, whose gradient is +1:
    // zero-gradient elements move only by decay, so decay shows up in isolation.
    cram::train::adamw_options o;
    o.weight_decay = 0.1f;
    const double lr = 0.01, wd = double(o.weight_decay);
    const vec before = params;
    const auto* bias = layout.find("a.bias");
    REQUIRE(bias);
    for (std::size_t i = 0; i < bias->size; ++i) grads[bias->offset + i] = 1.0;
    state.load_params(params.data());
    std::copy(grads.begin(), grads.end(), state.grads());
    state.adamw_step(o, float(lr), 1, 1.0f);
    std::copy_n(state.params(), params.size(), params.begin());
    const double lr_f = double(float(lr));
    for (const auto& t : layout.tensors()) {
        // the original cramming grouping: everything but biases and norms, the position scale included
        const bool decayed = t.name == "a.weight" || t.name == "emb.weight" || t.name == "pos.scale";
        CAPTURE(t.name);
        CHECK((t.offset < layout.decay_end()) == decayed);
        for (std::size_t i = 0; i < t.size; ++i) {
            const double p0 = before[t.offset + i];
            double ref = decayed ? p0 * (1 - lr_f * wd) : p0;
            if (t.name == "a.bias") ref -= lr_f * 1.0 / (1.0 + double(o.eps));  // not decayed, Adam step of sign 1
            CHECK(params[t.offset + i] == doctest::Approx(ref).epsilon(1e-12));
        }
    }
}

TEST_CASE("clip_scale brings the global norm down to the clip value") {
    CHECK(cram::train::clip_scale(2.0, 0.5f) == doctest::Approx(0.25));
    CHECK(cram::train::clip_scale(0.4, 0.5f) == 1.0f);
    CHECK(cram::train::clip_scale(0.5, 0.5f) == 1.0f);
    CHECK(cram::train::clip_scale(100.0, 0.0f) == 1.0f);  // disabled
}
