// Stand-ins for the CUDA side in a build without nvcc (CMake compiles this instead of the cuda_*.cu
// files): cuda_compiled() is false, so resolve_device never picks the GPU and the others are unreachable.
#include <string>

#include "app_glue.hpp"
#include "app_train.hpp"
#include "cram/core/error.hpp"
#include "device_dispatch.hpp"

namespace cram::app {

namespace {
[[noreturn]] void no_cuda(const char* what) {
    CRAM_THROW("internal: ", what, " called in a build without CUDA (resolve_device should have refused --device cuda)");
}
}  // namespace

bool cuda_compiled() { return false; }
cuda_device_info cuda_probe() { no_cuda("cuda_probe"); }
int cuda_pick_micro_batch(const std::string&, int, bool) { no_cuda("cuda_pick_micro_batch"); }
int cuda_train(const train_settings&) { no_cuda("cuda_train"); }
memory_need cuda_memory_need(const std::string&, int, bool) { no_cuda("cuda_memory_need"); }
measured_rate cuda_measure(const train_settings&, int) { no_cuda("cuda_measure"); }
int cuda_glue(const glue_settings&) { no_cuda("cuda_glue"); }

}  // namespace cram::app
