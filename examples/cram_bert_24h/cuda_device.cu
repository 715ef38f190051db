// The app's CUDA side (compiled only when CMake found nvcc): registers the device probe and the
// micro-batch planner behind device_dispatch.hpp, so the plain C++ commands can use the GPU without
// CUDA headers. The trainer's `train --device cuda` entry is registered here too (see the header).
#include <string>

#include "cram/cram.hpp"
#include "device_dispatch.hpp"

namespace {

template <cram::bert_config C>
int pick(int seq) {
    cram::cuda::context ctx(0, std::size_t(1) << 20);
    // a power of two: it divides the recipe's 8192-sequence batch evenly
    const auto [free_b, total_b] = ctx.memory_info();
    return cram::pick_micro_batch<C, cram::cuda::backend>(free_b, total_b, seq, 8, 4096, true).micro_batch;
}

const bool registered = [] {
    auto& h = cram::app::cuda();
    h.probe = [] {
        const cram::cuda::device_probe p = cram::cuda::probe_device(0);
        return cram::app::cuda_device_info{p.usable, p.name, p.major, p.minor, p.free_bytes, p.total_bytes, p.reason};
    };
    h.pick_micro_batch = [](const std::string& preset, int seq) -> int {
        namespace P = cram::presets;
        if (preset == "crammed_bert") return pick<P::crammed_bert>(seq);
        if (preset == "crammed_mini") return pick<P::crammed_mini>(seq);
        if (preset == "crammed_tiny") return pick<P::crammed_tiny>(seq);
        if (preset == "bert_base") return pick<P::bert_base>(seq);
        CRAM_THROW("unknown preset '", preset, "' (crammed_bert, crammed_mini, crammed_tiny, bert_base)");
    };
    return true;
}();

}  // namespace
