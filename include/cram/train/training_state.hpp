// Everything an optimizer step changes, in one layout, owned by whoever trains (the pretraining trainer, or
// GLUE fine-tuning for an encoder plus its head): fp32 master parameters, their gradients, the AdamW moments
// and, on backends whose matmuls read another type (bf16 on CUDA), the weight copy. Models own none of it:
// they get views (bind_bert, bind_classifier), so one AdamW pass, one gradient norm and one weight refresh
// serve every part that trains together.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/fp16.hpp"
#include "cram/core/memory_space.hpp"
#include "cram/core/platform.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/model/parameters.hpp"
#include "cram/ops/backend.hpp"
#include "cram/train/optimizer.hpp"

namespace cram::train {

template <ops::backend Backend>
class training_state {
public:
    using context = typename Backend::context;
    using param_t = typename Backend::param_t;
    using act_t = typename Backend::act_t;
    template <class U>
    using buffer = typename Backend::template buffer<U>;

    // Parameters start at zero: load() or init() them. Gradients and moments are zeroed.
    training_state(context& ctx, param_layout layout)
        : ctx_(ctx), layout_(std::move(layout)), params_(n()), grads_(n()), m_(n()), v_(n()),
          weights_(Backend::weights_alias_params ? 0 : n()) {
        for (param_t* p : {params_.data(), grads_.data(), m_.data(), v_.data()}) Backend::zero(ctx_, p, index_t(n()));
    }
    training_state(const training_state&) = delete;
    training_state& operator=(const training_state&) = delete;

    const param_layout& layout() const { return layout_; }
    std::size_t size() const { return layout_.buffer_size(); }  // elements of each buffer
    context& ctx() { return ctx_; }

    param_t* params() { return params_.data(); }
    param_t* grads() { return grads_.data(); }
    param_t* m() { return m_.data(); }
    param_t* v() { return v_.data(); }
    // What the matmuls read: the parameters themselves where the backend computes in param_t.
    act_t* weights() {
        if constexpr (Backend::weights_alias_params)
            return reinterpret_cast<act_t*>(params_.data());
        else
            return weights_.data();
    }

    void zero_grads() { Backend::zero(ctx_, grads_.data(), index_t(n())); }
    // After the master parameters changed: refresh the copy the matmuls read.
    void refresh_weights() {
        if constexpr (!Backend::weights_alias_params)
            Backend::params_to_weights(ctx_, weights_.data(), params_.data(), index_t(n()));
    }
    // fp16 emulation on a host backend (precision.hpp): every gradient through fp16 and back, so values beyond
    // its range become infinite and tiny ones vanish as they would in fp16 storage.
    void round_grads_to_fp16() {
        static_assert(std::is_same_v<typename Backend::memory_space, host_memory>,
                      "fp16 gradient emulation is for host backends (a GPU computes in fp16 itself)");
        param_t* g = grads_.data();
        cram::parallel_for(std::ptrdiff_t(n()), 1.0, [g](std::ptrdiff_t b, std::ptrdiff_t e) {
            for (std::ptrdiff_t i = b; i < e; ++i) g[i] = param_t(cram::round_to_fp16(float(g[i])));
        });
    }

    // Global L2 norm of the gradients (synchronises a device backend: the clip decision is made on the host).
    double grad_norm() { return std::sqrt(Backend::sum_squares(ctx_, grads_.data(), index_t(n()))); }

    // One AdamW update of every parameter from grad_scale * gradient; weight decay only on the layout's
    // decayed range [0, decay_end) (matrices and embeddings come first in every layout). Refreshes the weights.
    void adamw_step(const adamw_options& o, float lr, long step_index, float grad_scale) {
        ops::adamw_hparams hp{lr, o.beta1, o.beta2, o.eps, o.weight_decay, step_index};
        const index_t decay_end = index_t(layout_.decay_end()), total = index_t(n());
        Backend::adamw_step(ctx_, params_.data(), grads_.data(), m_.data(), v_.data(), decay_end, hp,
                            param_t(grad_scale));
        hp.weight_decay = 0.0f;
        Backend::adamw_step(ctx_, params_.data() + decay_end, grads_.data() + decay_end, m_.data() + decay_end,
                            v_.data() + decay_end, total - decay_end, hp, param_t(grad_scale));
        refresh_weights();
    }

    // Every tensor initialised by its role from `seed` (init_parameters), then loaded.
    void init(std::uint64_t seed, float init_std, int hidden, int pad_id = -1) {
        std::vector<param_t> host(n(), param_t(0));
        init_parameters(host.data(), layout_, seed, init_std, hidden, pad_id);
        load_params(host.data());
    }

    // Host copies (checkpoints, fine-tuning start points). load_params refreshes the weights.
    void load_params(const param_t* host) {
        Backend::to_device(ctx_, params_.data(), host, index_t(n()));
        refresh_weights();
    }
    void store_params(param_t* host) { Backend::to_host(ctx_, host, params_.data(), index_t(n())); }
    void load_moments(const param_t* m, const param_t* v) {
        Backend::to_device(ctx_, m_.data(), m, index_t(n()));
        Backend::to_device(ctx_, v_.data(), v, index_t(n()));
    }
    void store_moments(param_t* m, param_t* v) {
        Backend::to_host(ctx_, m, m_.data(), index_t(n()));
        Backend::to_host(ctx_, v, v_.data(), index_t(n()));
    }

private:
    std::size_t n() const { return layout_.buffer_size(); }

    context& ctx_;
    param_layout layout_;
    buffer<param_t> params_, grads_, m_, v_;
    buffer<act_t> weights_;  // empty where the matmuls read params_ directly
};

}  // namespace cram::train
