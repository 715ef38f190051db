// The fp16 instantiation of the GPU evaluation (run_glue with cram::cuda::fp16_backend), in its own translation
// unit so that it compiles in parallel with the bf16 one (cuda_glue.cu, which chooses between them). run_glue
// gives an fp16 backend the fine-tuning's dynamic loss scaling (eval/finetune.hpp). Not yet run on a GPU.
#include "app_glue.hpp"
#include "app_glue_run.hpp"
#include "cram/cuda/backend.hpp"
#include "cram/cuda/context.hpp"
#include "device_dispatch.hpp"

namespace cram::app {

int cuda_glue_fp16(const glue_settings& s, cuda::context& ctx) {
    cuda::fp16_backend::require_device_support(ctx);
    return run_glue<cuda::fp16_backend>(s, ctx);
}

}  // namespace cram::app
