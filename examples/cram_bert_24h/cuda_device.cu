// The app's CUDA device functions (compiled only when CMake found nvcc; no_cuda.cpp stands in
// otherwise): the device probe and the micro-batch planner behind device_dispatch.hpp, so the plain
// C++ commands can ask about the GPU without CUDA headers. Includes only what the planner needs.
#include <string>

#include "app_presets.hpp"
#include "cram/cuda/backend.hpp"
#include "cram/cuda/context.hpp"
#include "cram/model/memory_plan.hpp"
#include "device_dispatch.hpp"

namespace cram::app {

bool cuda_compiled() { return true; }

cuda_device_info cuda_probe() {
    const cuda::device_probe p = cuda::probe_device(0);
    return cuda_device_info{p.usable, p.name, p.major, p.minor, p.free_bytes, p.total_bytes, p.reason};
}

// bf16 and fp16 activations take the same bytes (the memory model counts sizeof(act_t)), so one backend's count
// serves both precisions.
static_assert(sizeof(cuda::backend::act_t) == sizeof(cuda::fp16_backend::act_t));

namespace {
// f.template operator()<C, B>() with the backend whose layout the run has: cuda::backend, or the fp32 residual's
// where asked (residual_setting refuses that for post-norm presets before; fp16 takes the same bytes as bf16).
template <bert_config C, class F>
decltype(auto) with_layout(bool fp32_residual, F&& f) {
    if constexpr (bert_takes_residual_v<C, cuda::residual_fp32_backend>) {
        if (fp32_residual) return f.template operator()<C, cuda::residual_fp32_backend>();
    } else {
        CRAM_CHECK(!fp32_residual, "internal: an fp32 residual stream asked of a post-norm preset");
    }
    return f.template operator()<C, cuda::backend>();
}
}  // namespace

int cuda_pick_micro_batch(const std::string& preset, int seq, bool fp32_residual) {
    cuda::context ctx(0, std::size_t(1) << 20);
    return with_preset(preset, [&]<bert_config C>() {
        return with_layout<C>(fp32_residual, [&]<bert_config, class B>() {
            // a power of two: it divides the recipe's 8192-sequence batch evenly
            const auto [free_b, total_b] = ctx.memory_info();
            return pick_micro_batch<C, B>(free_b, total_b, seq, 8, 4096, true).micro_batch;
        });
    });
}

memory_need cuda_memory_need(const std::string& preset, int seq, bool fp32_residual) {
    return with_preset(preset, [&]<bert_config C>() {
        return with_layout<C>(fp32_residual, [&]<bert_config, class B>() {
            return memory_need{bytes_per_sequence<C, B>(seq), fixed_bytes<C, B>()};
        });
    });
}

}  // namespace cram::app
