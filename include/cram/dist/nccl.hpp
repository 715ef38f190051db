// Data-parallel ranks on GPUs: gradient sums with NCCL on the CUDA backend's stream, everything else (the
// clock, the stop signal, loss sums, broadcasts, the bootstrap of NCCL's unique id) through the control
// communicator the ranks were started with (dist/mpi.hpp). One process per GPU. Needs nccl.h and the CUDA
// toolkit: link cram::nccl (cmake/cram_mpi.cmake).
//
// NOT YET RUN ON A GPU: it compiles in CI; its test needs a machine with two GPUs (docs/distributed.md).
// NCCL chooses its own summation order (ring or tree), so GPU ranks agree with one another but are not
// bitwise equal to one process.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "cram/core/clock.hpp"
#include "cram/core/error.hpp"
#include "cram/cuda/error.hpp"
#include "cram/dist/communicator.hpp"

namespace cram::dist {

namespace detail {
inline void nccl_check(ncclResult_t rc, const char* what) {
    if (rc == ncclSuccess) return;
    CRAM_THROW("NCCL ", what, " failed: ", ncclGetErrorString(rc));
}
}  // namespace detail

class nccl_communicator final : public communicator {
public:
    // `control`: the ranks' host communicator (it must outlive this one); `stream`: the backend's stream,
    // on which the gradients are written; `timeout`: seconds a gradient sum may take before the job ends.
    nccl_communicator(communicator& control, cudaStream_t stream, double timeout = 600)
        : control_(control), stream_(stream), timeout_(timeout) {
        ncclUniqueId id{};
        if (control_.root()) detail::nccl_check(ncclGetUniqueId(&id), "GetUniqueId");
        control_.broadcast(&id, sizeof id);
        detail::nccl_check(ncclCommInitRank(&comm_, control_.size(), id, control_.rank()), "CommInitRank");
    }
    ~nccl_communicator() override {
        if (comm_) ncclCommDestroy(comm_);
    }
    nccl_communicator(const nccl_communicator&) = delete;
    nccl_communicator& operator=(const nccl_communicator&) = delete;

    int rank() const override { return control_.rank(); }
    int size() const override { return control_.size(); }
    int local_rank() const override { return control_.local_rank(); }
    int local_size() const override { return control_.local_size(); }
    const char* transport() const override { return "nccl"; }

    // Device memory, on the backend's stream; returns when the sum is complete (the clip decision that
    // follows reads the norm on the host). A peer that died surfaces as NCCL's asynchronous error or as
    // the timeout: the communicator is aborted and the job ended.
    void sum_gradients(float* data, std::size_t n) override {
        if (size() == 1 || n == 0) return;
        detail::nccl_check(ncclAllReduce(data, data, n, ncclFloat, ncclSum, comm_, stream_), "AllReduce (gradients)");
        const double start = cram::steady_seconds();
        for (;;) {
            const cudaError_t q = cudaStreamQuery(stream_);
            if (q == cudaSuccess) return;
            if (q != cudaErrorNotReady) CRAM_CUDA_CHECK(q);
            ncclResult_t async = ncclSuccess;
            ncclCommGetAsyncError(comm_, &async);
            const double waited = cram::steady_seconds() - start;
            if ((async != ncclSuccess && async != ncclInProgress) || waited > timeout_) {
                std::fprintf(stderr, "cram: rank %d: the NCCL gradient sum %s after %.0f s: a rank died or hangs. "
                             "Ending the job; continue it with --resume from the last checkpoint\n", rank(),
                             async != ncclSuccess ? ncclGetErrorString(async) : "did not finish", waited);
                ncclCommAbort(comm_);
                comm_ = nullptr;
                control_.abort(1);
            }
        }
    }
    void sum(double* data, int n) override { control_.sum(data, n); }
    void max(double* data, int n) override { control_.max(data, n); }
    void broadcast(void* data, std::size_t bytes) override { control_.broadcast(data, bytes); }
    void barrier() override { control_.barrier(); }
    [[noreturn]] void abort(int exit_code) override {
        control_.abort(exit_code);
        std::_Exit(exit_code);  // not reached; a virtual call does not carry [[noreturn]]
    }

private:
    communicator& control_;
    cudaStream_t stream_;
    double timeout_;
    ncclComm_t comm_ = nullptr;
};

}  // namespace cram::dist
