// The GPU evaluation of `cram_bert_24h glue` and `run --glue-dir` (compiled only when CMake found nvcc;
// no_cuda.cpp stands in otherwise): the same run_glue as on the CPU, instantiated with
// cram::cuda::backend, behind the plain declaration in app_glue.hpp.
#include "app_glue.hpp"
#include "app_glue_run.hpp"
#include "cram/cuda/backend.hpp"
#include "cram/cuda/context.hpp"

namespace cram::app {

int cuda_glue(const glue_settings& s) {
    cuda::context ctx(0);
    return run_glue<cuda::backend>(s, ctx);
}

}  // namespace cram::app
