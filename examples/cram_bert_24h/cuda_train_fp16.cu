// The fp16 instantiation of the GPU trainer (run_training and measure_rate with cram::cuda::fp16_backend), in its
// own translation unit so that it compiles in parallel with the bf16 one (cuda_train.cu, which chooses between
// them by --precision and the GPU). resolve_precision (app_train_run.hpp) gives an fp16 backend the trainer's
// dynamic loss scaling (train/precision.hpp). Compiles for sm_75 (the RTX 2080 Ti of the cramming paper);
// not yet run on any GPU (docs/cuda.md).
#include "app_train.hpp"
#include "app_train_run.hpp"
#include "cram/cuda/backend.hpp"
#include "cram/cuda/context.hpp"
#include "device_dispatch.hpp"

namespace cram::app {

int cuda_train_fp16(const train_settings& s, cuda::context& ctx) {
    cuda::fp16_backend::require_device_support(ctx);
    return run_training<cuda::fp16_backend>(s, ctx);
}

measured_rate cuda_measure_fp16(const train_settings& s, cuda::context& ctx, int steps) {
    cuda::fp16_backend::require_device_support(ctx);
    return measure_rate<cuda::fp16_backend>(s, ctx, steps);
}

}  // namespace cram::app
