// The GPU trainer of `cram_bert_24h train` and `run` (compiled only when CMake found nvcc; no_cuda.cpp
// stands in otherwise): the same run_training as the CPU, instantiated with cram::cuda::backend, behind
// the plain declaration in app_train.hpp. MFU is shown when the device's peak is known by name.
#include "app_train.hpp"
#include "app_train_run.hpp"
#include "cram/cuda/backend.hpp"
#include "cram/cuda/context.hpp"
#include "cram/train/metrics.hpp"

namespace cram::app {

int cuda_train(const train_settings& s) {
    train_settings settings = s;
    const cuda::device_probe p = cuda::probe_device(0);
    settings.peak_flops = train::known_peak_flops(p.name);
    cuda::context ctx(0);
    return run_training<cuda::backend>(settings, ctx);
}

measured_rate cuda_measure(const train_settings& s, int steps) {
    cuda::context ctx(0);
    return measure_rate<cuda::backend>(s, ctx, steps);
}

}  // namespace cram::app
