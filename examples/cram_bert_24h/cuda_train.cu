// The GPU trainer of `cram_bert_24h train` and `run` (compiled only when CMake found nvcc; no_cuda.cpp
// stands in otherwise): the same run_training as the CPU, instantiated with cram::cuda::backend, behind
// the plain declaration in app_train.hpp. MFU is shown when the device's peak is known by name.
// Data-parallel ranks (mpirun) take the GPU of their local rank and sum gradients with NCCL; a build
// without NCCL refuses them (not yet run on GPUs: docs/distributed.md).
#include <memory>

#include "app_train.hpp"
#include "app_train_run.hpp"
#include "cram/cuda/backend.hpp"
#include "cram/cuda/context.hpp"
#include "cram/train/metrics.hpp"
#if CRAM_WITH_NCCL
#include "cram/dist/nccl.hpp"
#endif

namespace cram::app {

int cuda_train(const train_settings& s) {
    train_settings settings = s;
    int device = 0;
    if (s.ranks && s.ranks->size() > 1) {
        const cuda::device_probe first = cuda::probe_device(0);
        CRAM_CHECK(first.count >= 1, "rank ", s.ranks->rank(), ": no GPU");
        device = s.ranks->local_rank() % first.count;
    }
    const cuda::device_probe p = cuda::probe_device(device);
    settings.peak_flops = train::known_peak_flops(p.name);
    cuda::context ctx(device);
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
    return run_training<cuda::backend>(settings, ctx);
}

measured_rate cuda_measure(const train_settings& s, int steps) {
    cuda::context ctx(0);
    return measure_rate<cuda::backend>(s, ctx, steps);
}

}  // namespace cram::app
