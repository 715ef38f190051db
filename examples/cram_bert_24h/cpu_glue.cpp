// glue_on_device, and the CPU instantiation of the app's GLUE evaluation (run_glue<cpu::backend<float>>):
// the only plain C++ translation unit that compiles the fine-tuning code, so `glue` and `run` share it
// and it builds in parallel with the command files and with the GPU side (cuda_glue.cu).
#include "app_glue.hpp"
#include "app_glue_run.hpp"
#include "cram/cpu/backend.hpp"
#include "cram/core/thread_pool.hpp"
#include "device_dispatch.hpp"

namespace cram::app {

int glue_on_device(const glue_settings& s) {
    if (resolve_device(s.device) == device_kind::cuda) return cuda_glue(s);
    CRAM_CHECK(s.precision == "auto" || s.precision == "fp32", "glue --precision ", s.precision, ": the CPU fine-tunes "
               "in fp32 (bf16 and fp16 are the GPU's: --device cuda); use --precision auto or fp32");
    if (s.threads > 0) cram::set_cpu_threads(s.threads);
    cpu::backend<float>::context ctx{s.threads};
    return run_glue<cpu::backend<float>>(s, ctx);
}

}  // namespace cram::app
