// The GPU entry of `cram_bert_24h train` (compiled only when CMake found nvcc): the same run_training as
// the CPU, instantiated with cram::cuda::backend, registered behind device_dispatch.hpp so the plain C++
// command needs no CUDA headers. MFU is shown when the device's peak is known by name.
#include <string>

#include "app_train.hpp"
#include "cram/cram.hpp"
#include "cram/train/metrics.hpp"
#include "device_dispatch.hpp"

namespace {

const bool registered = cram::app::set_cuda_entry<cram::app::train_settings>([](const cram::app::train_settings& s) {
    cram::app::train_settings settings = s;
    const cram::cuda::device_probe p = cram::cuda::probe_device(0);
    settings.peak_flops = cram::train::known_peak_flops(p.name);
    cram::cuda::context ctx(0);
    return cram::app::run_training<cram::cuda::backend>(settings, ctx);
});

}  // namespace
