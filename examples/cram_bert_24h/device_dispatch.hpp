// How the app's plain C++ commands reach the CUDA backend, which only nvcc-compiled files can
// instantiate: cuda_device.cu (built when CMake found nvcc) fills cuda_hooks() at static initialisation;
// a CPU-only build leaves it empty and `--device cuda` fails with a message that says how to get CUDA.
//
// The trainer's GPU entry is type-safe and needs nothing from this header but a settings type:
//   cmd_train.cpp:   if (auto& f = cram::app::cuda_entry<train_settings>()) return f(settings);
//   cuda_device.cu:  static const bool r = cram::app::set_cuda_entry<train_settings>(
//                        [](const train_settings& s) { return run_training<cram::cuda::backend>(s); });
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "cram/core/error.hpp"

namespace cram::app {

struct cuda_device_info {
    bool usable = false;
    std::string name;
    int major = 0, minor = 0;
    std::size_t free_bytes = 0, total_bytes = 0;
    std::string reason;  // why not usable
};

struct cuda_hooks {
    std::function<cuda_device_info()> probe;
    // The micro-batch that fills the GPU for a preset ("crammed_bert", "crammed_mini", "crammed_tiny",
    // "bert_base") at a sequence length, a power of two (it divides the 8192-sequence batch); throws
    // cram::error when not even one sequence fits.
    std::function<int(const std::string& preset, int seq)> pick_micro_batch;
};

inline cuda_hooks& cuda() {
    static cuda_hooks hooks;
    return hooks;
}
inline bool cuda_compiled() { return static_cast<bool>(cuda().probe); }

// One entry per settings type (inline function-local static: one object across translation units).
template <class Settings>
std::function<int(const Settings&)>& cuda_entry() {
    static std::function<int(const Settings&)> entry;
    return entry;
}
template <class Settings, class F>
bool set_cuda_entry(F&& f) {
    cuda_entry<Settings>() = std::forward<F>(f);
    return true;
}

enum class device_kind { cpu, cuda };

// --device cpu | cuda | auto. auto takes the GPU when this build has CUDA and a usable device (sm_80+).
inline device_kind resolve_device(const std::string& requested) {
    if (requested == "cpu") return device_kind::cpu;
    CRAM_CHECK(requested == "cuda" || requested == "auto", "--device must be cpu, cuda or auto, got '", requested, "'");
    if (!cuda_compiled()) {
        if (requested == "auto") return device_kind::cpu;
        CRAM_THROW("--device cuda: this build of cram_bert_24h has no CUDA backend; configure with -DCRAM_CUDA=ON on "
                   "a machine with nvcc (CUDA 12+), or use --device cpu");
    }
    const cuda_device_info info = cuda().probe();
    if (info.usable) return device_kind::cuda;
    if (requested == "auto") return device_kind::cpu;
    CRAM_THROW("--device cuda: ", info.reason);
}

}  // namespace cram::app
