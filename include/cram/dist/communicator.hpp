// What data-parallel training needs from the processes it runs on: who this rank is, a gradient sum that
// leaves the same bits on every rank, small host-side agreements (rank 0's clock, the stop signal, loss
// sums) and broadcasts from rank 0. The trainer sees only this interface; single_process is the one-rank
// case (every operation a no-op), dist/mpi.hpp carries it over MPI (host gradients: the CPU backend) and
// dist/nccl.hpp over NCCL (device gradients: the CUDA backend). No MPI header is needed to include this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cram/core/error.hpp"

namespace cram::dist {

class communicator {
public:
    virtual ~communicator() = default;

    virtual int rank() const = 0;
    virtual int size() const = 0;
    virtual int local_rank() const = 0;  // among the ranks on this machine: picks the GPU
    virtual int local_size() const = 0;  // ranks on this machine: shares its CPU cores
    bool root() const { return rank() == 0; }

    // Sums `n` gradients over all ranks in place, in the memory the trainer's backend keeps them in; every
    // rank ends with the same bits.
    virtual void sum_gradients(float* data, std::size_t n) = 0;
    // Small host values: element-wise sum or maximum over all ranks, in place, the same on every rank.
    virtual void sum(double* data, int n) = 0;
    virtual void max(double* data, int n) = 0;
    // `bytes` bytes from rank 0 to every rank.
    virtual void broadcast(void* data, std::size_t bytes) = 0;
    // Every rank reaches this point before any leaves it.
    virtual void barrier() = 0;
    // Ends every rank of the job at once (after an error that leaves the others waiting forever).
    [[noreturn]] virtual void abort(int exit_code) = 0;
    virtual const char* transport() const = 0;  // "mpi", "nccl", or "none"
};

// One process: nothing to agree on.
class single_process final : public communicator {
public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    int local_rank() const override { return 0; }
    int local_size() const override { return 1; }
    void sum_gradients(float*, std::size_t) override {}
    void sum(double*, int) override {}
    void max(double*, int) override {}
    void broadcast(void*, std::size_t) override {}
    void barrier() override {}
    [[noreturn]] void abort(int exit_code) override { std::exit(exit_code); }
    const char* transport() const override { return "none"; }
};

// Raised on the ranks that did not fail when rank 0 reports an error in a step only it runs (reading the
// checkpoint, refusing an old run directory): rank 0 prints the message, the others exit quietly with it.
class failed_on_root : public cram::error {
public:
    explicit failed_on_root(const std::string& what) : cram::error("rank 0: " + what, __FILE__, __LINE__) {}
};

// How many ranks an MPI launcher started this process among (Open MPI's mpirun sets
// OMPI_COMM_WORLD_SIZE, MPICH's Hydra and srun with PMI set PMI_SIZE), from the environment alone: 1 when
// no launcher did. It lets a build without MPI refuse to train N copies of one run side by side.
inline int launched_ranks() {
    for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
        const char* v = std::getenv(name);
        if (v && *v) {
            const long n = std::strtol(v, nullptr, 10);
            if (n >= 1 && n < 1'000'000) return int(n);
        }
    }
    return 1;
}

// Broadcasts a std::string or std::vector from rank 0: its length, then its elements.
template <class Sequence>
void broadcast_sequence(communicator& c, Sequence& v) {
    std::uint64_t n = v.size();
    c.broadcast(&n, sizeof n);
    if (!c.root()) v.resize(n);
    if (n) c.broadcast(v.data(), n * sizeof(typename Sequence::value_type));
}

// Runs fn on rank 0 alone and tells every rank how it went, so that an error there reaches the others
// instead of leaving them in the next collective: rank 0 rethrows its exception, the others throw
// failed_on_root with its message. Every rank must call it at the same point (it is a collective).
template <class Fn>
void on_root(communicator& c, Fn&& fn) {
    std::string failure;
    if (c.root()) {
        try {
            fn();
        } catch (const std::exception& e) {
            failure = e.what();
            if (failure.empty()) failure = "unknown error";
            if (c.size() > 1) broadcast_sequence(c, failure);
            throw;
        }
    }
    if (c.size() == 1) return;
    broadcast_sequence(c, failure);
    if (!c.root() && !failure.empty()) throw failed_on_root(failure);
}

}  // namespace cram::dist
