// train_on_device and measure_on_device, and the CPU instantiation of the app's trainer (run_training<cpu::backend<float>>):
// the only plain C++ translation unit that compiles the trainer, so `train` and `run` share it and it
// builds in parallel with the command files and with the GPU side (cuda_train.cu).
#include <algorithm>
#include <thread>

#include "app_train.hpp"
#include "app_train_run.hpp"
#include "cram/cpu/backend.hpp"
#include "cram/core/thread_pool.hpp"
#include "device_dispatch.hpp"

namespace cram::app {

int train_on_device(train_settings s) {
    resolve_recipe(s);
    validate_settings(s);
    const device_kind dev = resolve_device(s.device);
    if (dev == device_kind::cuda) {
        if (s.micro_batch == 0) s.micro_batch = cuda_pick_micro_batch(s.preset, 128, s.residual == "fp32");
        return cuda_train(s);
    }
    // data-parallel ranks on one machine share its cores unless --threads says otherwise
    if (s.threads == 0 && s.ranks && s.ranks->local_size() > 1)
        s.threads = std::max(1, int(std::thread::hardware_concurrency()) / s.ranks->local_size());
    if (s.threads > 0) cram::set_cpu_threads(s.threads);
    if (s.micro_batch == 0) s.micro_batch = find_preset(s.preset).cpu_micro_batch;
    cpu::backend<float>::context ctx{s.threads};
    return run_training<cpu::backend<float>>(s, ctx);
}

memory_need cpu_memory_need(const std::string& preset, int seq) {
    return with_preset(preset, [&]<bert_config C>() {
        using B = cpu::backend<float>;
        return memory_need{bytes_per_sequence<C, B>(seq), fixed_bytes<C, B>()};
    });
}

measured_rate measure_on_device(const train_settings& s, int steps) {
    if (resolve_device(s.device) == device_kind::cuda) return cuda_measure(s, steps);
    if (s.threads > 0) cram::set_cpu_threads(s.threads);
    cpu::backend<float>::context ctx{s.threads};
    return measure_rate<cpu::backend<float>>(s, ctx, steps);
}

}  // namespace cram::app
