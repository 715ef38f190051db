// How the app's plain C++ commands reach the CUDA backend, which only nvcc-compiled files can
// instantiate: plain functions declared here (and cuda_train / cuda_glue in app_train.hpp, app_glue.hpp),
// defined by the cuda_*.cu files in a CUDA build and by no_cuda.cpp otherwise. CMake compiles exactly
// one of the two sets, so the choice is made at link time, with no registration at static initialisation.
#pragma once

#include <cstddef>
#include <string>

#include "cram/core/error.hpp"

namespace cram::cuda {
class context;
}

namespace cram::app {

struct cuda_device_info {
    bool usable = false;
    std::string name;
    int major = 0, minor = 0;
    std::size_t free_bytes = 0, total_bytes = 0;
    std::string reason;  // why not usable
};

// Whether this build has the CUDA backend (false: no_cuda.cpp was linked, and nothing below may run).
bool cuda_compiled();
// The first GPU, or why it cannot train (no device, older than sm_70, no code for it in this build, driver
// missing). major/minor say which precision it trains in: bf16 from sm_80, fp16 on sm_70/sm_75.
cuda_device_info cuda_probe();
// The micro-batch that fills the GPU for a preset (a name of app_presets.hpp) at a sequence length, a
// power of two (it divides the 8192-sequence batch); throws cram::error when not even one sequence fits.
// bf16 and fp16 activations take the same bytes, so the pick holds for both; fp32_residual counts the fp32
// residual stream (train --residual fp32; pre-norm presets only).
int cuda_pick_micro_batch(const std::string& preset, int seq, bool fp32_residual = false);

struct train_settings;
struct measured_rate;
// The fp16 trainer (cuda_train_fp16.cu: run_training / measure_rate with cuda::fp16_backend, its own translation
// unit), which cuda_train / cuda_measure (cuda_train.cu) call once they chose fp16 for the run. CUDA builds only.
int cuda_train_fp16(const train_settings& s, cuda::context& ctx);
measured_rate cuda_measure_fp16(const train_settings& s, cuda::context& ctx, int steps);
// The trainers with an fp32 residual stream (run_training / measure_rate with cuda::residual_fp32_backend, bf16
// activations, in cuda_train_residual_fp32.cu; with cuda::fp16_residual_fp32_backend in
// cuda_train_fp16_residual_fp32.cu), which cuda_train / cuda_measure call for --residual fp32.
int cuda_train_residual_fp32(const train_settings& s, cuda::context& ctx);
measured_rate cuda_measure_residual_fp32(const train_settings& s, cuda::context& ctx, int steps);
int cuda_train_fp16_residual_fp32(const train_settings& s, cuda::context& ctx);
measured_rate cuda_measure_fp16_residual_fp32(const train_settings& s, cuda::context& ctx, int steps);
struct glue_settings;
// The fp16 GLUE evaluation (cuda_glue_fp16.cu: run_glue with cuda::fp16_backend and loss scaling), which cuda_glue
// (cuda_glue.cu) calls once it chose fp16. CUDA builds only.
int cuda_glue_fp16(const glue_settings& s, cuda::context& ctx);

// The memory a micro-batch takes (cram/model/memory_plan.hpp): bytes per sequence, and the bytes that do not
// depend on the batch. The CPU's (cpu_train.cpp) and the GPU's (cuda_device.cu, host arithmetic only).
struct memory_need {
    std::size_t per_sequence = 0, fixed = 0;
};
memory_need cpu_memory_need(const std::string& preset, int seq);
memory_need cuda_memory_need(const std::string& preset, int seq, bool fp32_residual = false);

enum class device_kind { cpu, cuda };

// --device cpu | cuda | auto. auto takes the GPU when this build has CUDA and a usable device (sm_70+; the
// precision is chosen afterwards: bf16 from sm_80, fp16 below).
inline device_kind resolve_device(const std::string& requested) {
    if (requested == "cpu") return device_kind::cpu;
    CRAM_CHECK(requested == "cuda" || requested == "auto", "--device must be cpu, cuda or auto, got '", requested, "'");
    if (!cuda_compiled()) {
        if (requested == "auto") return device_kind::cpu;
        CRAM_THROW("--device cuda: this build of cram_bert_24h has no CUDA backend; configure with -DCRAM_CUDA=ON on "
                   "a machine with nvcc (CUDA 12+), or use --device cpu");
    }
    const cuda_device_info info = cuda_probe();
    if (info.usable) return device_kind::cuda;
    if (requested == "auto") return device_kind::cpu;
    CRAM_THROW("--device cuda: ", info.reason);
}

}  // namespace cram::app
