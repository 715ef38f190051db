// The trainer with bf16 activations and the residual stream of pre-norm blocks (and its gradient) in fp32, as the
// PyTorch original keeps it under autocast: run_training and measure_rate with cram::cuda::residual_fp32_backend,
// in its own translation unit so that it compiles in parallel with the others. cuda_train.cu calls it for
// `--residual fp32` in bf16; post-norm presets are refused before (validate_settings), and are not instantiated
// here (nor in the fp16 twin, cuda_train_fp16_residual_fp32.cu).
// Not yet run on a GPU (docs/cuda.md).
#include "app_train.hpp"
#include "app_train_run.hpp"
#include "cram/cuda/backend.hpp"
#include "cram/cuda/context.hpp"
#include "device_dispatch.hpp"

namespace cram::app {

int cuda_train_residual_fp32(const train_settings& s, cuda::context& ctx) {
    cuda::residual_fp32_backend::require_device_support(ctx);
    return run_training<cuda::residual_fp32_backend>(s, ctx);
}

measured_rate cuda_measure_residual_fp32(const train_settings& s, cuda::context& ctx, int steps) {
    cuda::residual_fp32_backend::require_device_support(ctx);
    return measure_rate<cuda::residual_fp32_backend>(s, ctx, steps);
}

}  // namespace cram::app
