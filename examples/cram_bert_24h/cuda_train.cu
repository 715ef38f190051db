// The GPU trainer of `cram_bert_24h train` and `run` (compiled only when CMake found nvcc; no_cuda.cpp
// stands in otherwise): the same run_training as the CPU, instantiated with the CUDA backend of the run's
// precision, behind the plain declaration in app_train.hpp. --precision auto trains in bf16 on sm_80 and newer
// and in fp16 (with dynamic loss scaling) on sm_70/sm_75, where there is no bf16; --precision fp16 takes the fp16
// path on any GPU (how an sm_80+ machine tests it). This file holds the bf16 instantiation; the fp16 one is
// cuda_train_fp16.cu, and those with an fp32 residual stream (--residual fp32) are cuda_train_residual_fp32.cu
// (bf16) and cuda_train_fp16_residual_fp32.cu, each its own translation unit, so they compile in parallel. MFU is shown when the device's
// peak is known by name. Data-parallel ranks (mpirun) take the GPU of their local rank and sum gradients with
// NCCL; a build without NCCL refuses them (not yet run on GPUs: docs/distributed.md).
#include <cstdio>
#include <memory>
#include <string>

#include "app_train.hpp"
#include "app_train_run.hpp"
#include "cram/cuda/backend.hpp"
#include "cram/cuda/context.hpp"
#include "cram/train/metrics.hpp"
#include "cram/train/precision.hpp"
#include "cuda_precision.hpp"
#include "device_dispatch.hpp"
#if CRAM_WITH_NCCL
#include "cram/dist/nccl.hpp"
#endif

namespace cram::app {

namespace {

// One line before the plan: the GPU, the precision it computes in, and the micro-batch (the planner's pick
// unless --micro-batch set it), so a log says what ran where.
void announce(const train_settings& s, const cuda::device_probe& p, train::precision precision) {
    if (!detail::speaks(s)) return;
    std::fprintf(stderr, "train: GPU %d: %s (%s, %zu MiB free of %zu MiB), %s%s, %s residual stream, micro-batch %d "
                 "sequences\n", p.device, p.name.c_str(), cuda::sm_name(p.major, p.minor).c_str(), p.free_bytes >> 20,
                 p.total_bytes >> 20, std::string(train::to_string(precision)).c_str(),
                 precision == train::precision::fp16 ? " activations with dynamic loss scaling" : " activations",
                 s.residual == "fp32" ? "fp32" : std::string(train::to_string(precision)).c_str(), s.micro_batch);
}

}  // namespace

int cuda_train(const train_settings& s) {
    train_settings settings = s;
    int device = 0;
    if (s.ranks && s.ranks->size() > 1) {
        const cuda::device_probe first = cuda::probe_device(0);
        CRAM_CHECK(first.count >= 1, "rank ", s.ranks->rank(), ": no GPU");
        device = s.ranks->local_rank() % first.count;
    }
    const cuda::device_probe p = cuda::probe_device(device);
    CRAM_CHECK(p.usable, "--device cuda: ", p.reason);
    const train::precision precision = gpu_precision(s.precision, p);
    settings.peak_flops = train::known_peak_flops(p.name);
    cuda::context ctx(device);
    configure_kernels(ctx, s.attention, s.gemm_algorithms, s.layernorm, s.decoder);
    std::unique_ptr<dist::communicator> gpu_ranks;
    if (s.ranks && s.ranks->size() > 1) {
#if CRAM_WITH_NCCL
        gpu_ranks = std::make_unique<dist::nccl_communicator>(*s.ranks, ctx.stream(), train::parse_duration(s.rank_timeout));
        settings.ranks = gpu_ranks.get();
#else
        CRAM_THROW("data-parallel training on GPUs needs NCCL, which this build did not find (nccl.h and libnccl: the "
                   "CUDA toolkit's, or Debian's libnccl-dev); rebuild, or train with --device cpu");
#endif
    }
    announce(settings, p, precision);
    const bool fp32_residual = s.residual == "fp32";
    int rc = 0;
    if (precision == train::precision::fp16) {
        rc = fp32_residual ? cuda_train_fp16_residual_fp32(settings, ctx) : cuda_train_fp16(settings, ctx);
    } else if (fp32_residual) {
        rc = cuda_train_residual_fp32(settings, ctx);
    } else {
        cuda::backend::require_device_support(ctx);
        rc = run_training<cuda::backend>(settings, ctx);
    }
    if (detail::speaks(settings)) print_gemm_plans(stderr, ctx);
    return rc;
}

measured_rate cuda_measure(const train_settings& s, int steps) {
    const cuda::device_probe p = cuda::probe_device(0);
    CRAM_CHECK(p.usable, "--device cuda: ", p.reason);
    const train::precision precision = gpu_precision(s.precision, p);
    cuda::context ctx(0);
    configure_kernels(ctx, s.attention, s.gemm_algorithms, s.layernorm, s.decoder);
    const bool fp32_residual = s.residual == "fp32";
    if (precision == train::precision::fp16)
        return fp32_residual ? cuda_measure_fp16_residual_fp32(s, ctx, steps) : cuda_measure_fp16(s, ctx, steps);
    if (fp32_residual) return cuda_measure_residual_fp32(s, ctx, steps);
    cuda::backend::require_device_support(ctx);
    return measure_rate<cuda::backend>(s, ctx, steps);
}

}  // namespace cram::app
