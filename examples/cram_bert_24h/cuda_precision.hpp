// --precision, --attention, --gemm-algorithms, --layernorm and --decoder on a GPU, shared by the trainer
// (cuda_train.cu) and GLUE (cuda_glue.cu): auto is bf16 where the tensor cores have it (sm_80+) and fp16 below;
// fp16 runs on any usable GPU (sm_70+); bf16 below sm_80 and fp32 (the CPU's) are refused, saying what to use
// instead.
#pragma once

#include <cstdio>
#include <string>

#include "cram/core/bf16.hpp"
#include "cram/core/error.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/gemm.hpp"
#include "cram/train/precision.hpp"

namespace cram::app {

inline train::precision gpu_precision(const std::string& requested, const cuda::device_probe& p) {
    if (requested == "auto") return train::auto_precision(p.major);
    const train::precision asked = train::parse_precision(requested);
    CRAM_CHECK(asked != train::precision::fp32, "--precision fp32: the GPU computes in bf16 or fp16 (fp32 is the CPU "
               "backend's: --device cpu); use --precision auto, bf16 or fp16");
    if (asked == train::precision::bf16) {
        const std::string problem = cuda::activation_type_problem<cram::bf16>(p);
        CRAM_CHECK(problem.empty(), "--precision bf16: ", problem);
    }
    return asked;
}

// --attention (flash, the default, which takes the GEMM path where the shape or the GPU does not allow it; or
// gemm), --gemm-algorithms (timed or heuristic), --layernorm (warp, the default, which takes the block kernels
// where the width does not allow it; or block) and --decoder (fused, the default, which takes the chunked path
// for vocabularies over its limit; or chunked; GLUE has no MLM decoder) on a context.
inline void configure_kernels(cuda::context& ctx, const std::string& attention, const std::string& gemm_algorithms,
                              const std::string& layernorm, const std::string& decoder = "fused") {
    CRAM_CHECK(attention == "flash" || attention == "gemm", "--attention must be flash or gemm, got '", attention, "'");
    CRAM_CHECK(gemm_algorithms == "timed" || gemm_algorithms == "heuristic",
               "--gemm-algorithms must be timed or heuristic, got '", gemm_algorithms, "'");
    CRAM_CHECK(layernorm == "warp" || layernorm == "block", "--layernorm must be warp or block, got '", layernorm, "'");
    CRAM_CHECK(decoder == "fused" || decoder == "chunked", "--decoder must be fused or chunked, got '", decoder, "'");
    ctx.decoder = decoder == "chunked" ? cuda::decoder_kernel::chunked : cuda::decoder_kernel::fused;
    ctx.layernorm = layernorm == "block" ? cuda::layernorm_kernel::block : cuda::layernorm_kernel::warp;
    ctx.attention = attention == "gemm" ? cuda::attention_kernel::gemm : cuda::attention_kernel::flash;
    ctx.gemm_choice = gemm_algorithms == "heuristic" ? cuda::gemm_algorithms::heuristic : cuda::gemm_algorithms::timed;
}

// The run's GEMM shapes after training: each one's cuBLASLt algorithm, its measured time and rate where it was
// timed (--gemm-algorithms timed), or why the heuristic's first pick was kept. Set the rates against the bf16
// GEMM ceiling of bench_cuda_kernels (docs/cuda.md).
inline void print_gemm_plans(std::FILE* out, cuda::context& ctx) {
    const auto plans = cuda::gemm_report(ctx);
    if (plans.empty()) return;
    std::fprintf(out, "train: GEMM plans (each shape's algorithm, chosen once):\n");
    for (const auto& g : plans) std::fprintf(out, "train:   %-52s %s\n", g.shape.c_str(), cuda::describe(g).c_str());
}

}  // namespace cram::app
