// The GPU evaluation of `cram_bert_24h glue` and `run --glue-dir` (compiled only when CMake found nvcc;
// no_cuda.cpp stands in otherwise): the same run_glue as on the CPU, instantiated with cram::cuda::backend
// (bf16), behind the plain declaration in app_glue.hpp. Fine-tuning has no loss scaling (cram/eval/glue.hpp), so
// it does not run in fp16: on a GPU without bf16 (below sm_80, e.g. the RTX 2080 Ti) --device cuda is refused,
// and --device auto (what `run` passes on) fine-tunes on the CPU instead, saying so.
#include <cstdio>
#include <string>

#include "app_glue.hpp"
#include "app_glue_run.hpp"
#include "cram/cuda/backend.hpp"
#include "cram/cuda/context.hpp"

namespace cram::app {

int cuda_glue(const glue_settings& s) {
    const cuda::device_probe p = cuda::probe_device(0);
    CRAM_CHECK(p.usable, "--device cuda: ", p.reason);
    const std::string problem = cuda::activation_type_problem<cram::bf16>(p);
    if (!problem.empty()) {
        const std::string why = "GPU " + p.name + " is " + cuda::sm_name(p.major, p.minor) +
                                ": GLUE fine-tuning on the GPU computes in bf16 (sm_80 or newer) and has no loss "
                                "scaling for fp16";
        CRAM_CHECK(s.device == "auto", "glue --device cuda: ", why,
                   "; fine-tune on an sm_80+ GPU, or on the CPU with --device cpu (slower)");
        std::fprintf(stderr, "glue: %s; fine-tuning on the CPU instead (--device auto)\n", why.c_str());
        glue_settings on_cpu = s;
        on_cpu.device = "cpu";
        return glue_on_device(on_cpu);
    }
    cuda::context ctx(0);
    return run_glue<cuda::backend>(s, ctx);
}

}  // namespace cram::app
