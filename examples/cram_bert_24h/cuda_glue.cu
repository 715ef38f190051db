// The GPU entry of `cram_bert_24h glue` (compiled only when CMake found nvcc): the same run_glue as on
// the CPU, instantiated with cram::cuda::backend and registered behind device_dispatch.hpp.
#include "app_glue.hpp"
#include "cram/cram.hpp"
#include "device_dispatch.hpp"

namespace {

const bool registered = cram::app::set_cuda_entry<cram::app::glue_settings>([](const cram::app::glue_settings& s) {
    cram::cuda::context ctx(0);
    return cram::app::run_glue<cram::cuda::backend>(s, ctx);
});

}  // namespace
