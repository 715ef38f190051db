// The GPU evaluation of `cram_bert_24h glue` and `run --glue-dir` (compiled only when CMake found nvcc;
// no_cuda.cpp stands in otherwise): the same run_glue as on the CPU, instantiated with the CUDA backend of the
// evaluation's precision, behind the plain declaration in app_glue.hpp. --precision auto fine-tunes in bf16 on
// sm_80+ and in fp16 with dynamic loss scaling below (the RTX 2080 Ti); this file holds the bf16 instantiation,
// cuda_glue_fp16.cu the fp16 one (its own translation unit: the two compile in parallel). The fp16 path has not
// run on a GPU yet (docs/cuda.md).
#include <cstdio>
#include <string>

#include "app_glue.hpp"
#include "app_glue_run.hpp"
#include "cram/cuda/backend.hpp"
#include "cram/cuda/context.hpp"
#include "cuda_precision.hpp"
#include "device_dispatch.hpp"

namespace cram::app {

int cuda_glue(const glue_settings& s) {
    const cuda::device_probe p = cuda::probe_device(0);
    CRAM_CHECK(p.usable, "--device cuda: ", p.reason);
    const train::precision precision = gpu_precision(s.precision, p);
    if (!s.quiet)
        std::fprintf(stderr, "glue: GPU %s (%s), %s\n", p.name.c_str(), cuda::sm_name(p.major, p.minor).c_str(),
                     precision == train::precision::fp16 ? "fp16 activations with dynamic loss scaling"
                                                         : "bf16 activations");
    cuda::context ctx(0);
    configure_kernels(ctx, s.attention, s.gemm_algorithms, s.layernorm);
    if (precision == train::precision::fp16) return cuda_glue_fp16(s, ctx);
    cuda::backend::require_device_support(ctx);
    return run_glue<cuda::backend>(s, ctx);
}

}  // namespace cram::app
