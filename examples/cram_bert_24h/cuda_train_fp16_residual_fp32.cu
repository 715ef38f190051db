// The trainer with fp16 activations (sm_70/75 GPUs, --precision fp16: dynamic loss scaling) and the residual stream
// of pre-norm blocks and its gradient in fp32, so that the stream cannot overflow fp16's range: run_training and
// measure_rate with cram::cuda::fp16_residual_fp32_backend, in its own translation unit so that it compiles in
// parallel with the others. cuda_train.cu calls it for `--precision fp16 --residual fp32` (or auto on sm_70/75).
// Not yet run on a GPU (docs/cuda.md).
#include "app_train.hpp"
#include "app_train_run.hpp"
#include "cram/cuda/backend.hpp"
#include "cram/cuda/context.hpp"
#include "device_dispatch.hpp"

namespace cram::app {

int cuda_train_fp16_residual_fp32(const train_settings& s, cuda::context& ctx) {
    cuda::fp16_residual_fp32_backend::require_device_support(ctx);
    return run_training<cuda::fp16_residual_fp32_backend>(s, ctx);
}

measured_rate cuda_measure_fp16_residual_fp32(const train_settings& s, cuda::context& ctx, int steps) {
    cuda::fp16_residual_fp32_backend::require_device_support(ctx);
    return measure_rate<cuda::fp16_residual_fp32_backend>(s, ctx, steps);
}

}  // namespace cram::app
