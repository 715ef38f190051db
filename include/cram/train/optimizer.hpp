// AdamW over a model's flat buffers: weight decay on [0, decay_end) only (matrices and embeddings come
// first in every layout), global-norm gradient clipping folded into the update as a gradient scale,
// fp32 moments in the same layout. One pass over each buffer per step.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>

#include "cram/core/error.hpp"
#include "cram/core/platform.hpp"
#include "cram/ops/adamw.hpp"
#include "cram/model/parameters.hpp"

namespace cram {

struct adamw_options {
    float lr = 1e-3f;  // peak learning rate; the schedule multiplies it
    float beta1 = 0.9f;
    float beta2 = 0.98f;
    float eps = 1e-12f;
    float weight_decay = 0.01f;
    float clip_norm = 0.5f;  // global L2 norm; <= 0 disables clipping
};

// Moments for one parameter buffer of a given layout, in the backend's memory.
template <class Backend>
class adamw_state {
public:
    using param_t = typename Backend::param_t;
    adamw_state(typename Backend::context& ctx, const param_layout& layout)
        : layout_(&layout), m_(layout.buffer_size()), v_(layout.buffer_size()) {
        Backend::zero(ctx, m_.data(), index_t(layout.buffer_size()));
        Backend::zero(ctx, v_.data(), index_t(layout.buffer_size()));
    }
    param_t* m() { return m_.data(); }
    param_t* v() { return v_.data(); }
    const param_layout& layout() const { return *layout_; }

    // One update of `params` from `grads` (scaled by grad_scale), decay only on the decayed range.
    void step(typename Backend::context& ctx, param_t* params, const param_t* grads, const adamw_options& o, float lr,
              long step_index, float grad_scale) {
        ops::adamw_hparams hp{lr, o.beta1, o.beta2, o.eps, o.weight_decay, step_index};
        const index_t decay_end = index_t(layout_->decay_end()), total = index_t(layout_->buffer_size());
        Backend::adamw_step(ctx, params, grads, m_.data(), v_.data(), decay_end, hp, param_t(grad_scale));
        hp.weight_decay = 0.0f;
        Backend::adamw_step(ctx, params + decay_end, grads + decay_end, m_.data() + decay_end, v_.data() + decay_end,
                            total - decay_end, hp, param_t(grad_scale));
    }

private:
    const param_layout* layout_;
    typename Backend::template buffer<param_t> m_, v_;
};

// The factor that brings a gradient of norm `norm` down to `clip` (1 when already within, or disabled).
inline float clip_scale(double norm, float clip) {
    if (clip <= 0.0f || !(norm > clip)) return 1.0f;
    return static_cast<float>(clip / norm);
}

}  // namespace cram
