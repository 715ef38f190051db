// Data-parallel ranks over MPI (Open MPI from Debian's libopenmpi-dev; any MPI-3 library works): the
// session (MPI_Init_thread / MPI_Finalize) and the communicator the trainer uses for the CPU backend,
// whose gradients live in host memory. Needs <mpi.h>: link cram::mpi (cmake/cram_mpi.cmake).
//
// Every wait has a deadline: collectives are started non-blocking and polled, so a rank that died or hangs
// makes the others stop with a message naming the operation within `timeout` seconds, even under a
// launcher that does not kill the job itself (mpirun does, within a second or two).
//
// Gradient sums on a power-of-two number of ranks are recursive halving and doubling on MPI point-to-point
// messages (halving_doubling_sum): every element is the sum of one fixed binary tree over the ranks,
// (r0+r1)+(r2+r3) and so on, the same bits on all of them, and equal to the pairwise accumulation of one
// process (train/grad_accumulation.hpp); the traffic is a ring's. Other sizes use MPI_Allreduce, whose
// summation order the MPI library chooses.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "cram/core/clock.hpp"
#include "cram/core/error.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/dist/communicator.hpp"
#include "cram/ops/elementwise.hpp"

namespace cram::dist {

namespace detail {
inline void mpi_check(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    CRAM_THROW("MPI ", what, " failed: ", std::string(text, std::size_t(len)));
}
}  // namespace detail

// MPI for the lifetime of the object (one per process; the trainer's threads never call MPI).
class mpi_session {
public:
    mpi_session(int* argc, char*** argv) {
        int initialized = 0;
        MPI_Initialized(&initialized);
        if (initialized) return;
        int provided = 0;
        detail::mpi_check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "initialisation");
        owns_ = true;
    }
    ~mpi_session() {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (owns_ && !finalized) MPI_Finalize();
    }
    mpi_session(const mpi_session&) = delete;
    mpi_session& operator=(const mpi_session&) = delete;

private:
    bool owns_ = false;
};

class mpi_communicator : public communicator {
public:
    // `timeout`: seconds any rank waits for the others in one operation before ending the job.
    explicit mpi_communicator(double timeout = 600) : timeout_(timeout) {
        detail::mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "Comm_dup");
        MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
        MPI_Comm_rank(comm_, &rank_);
        MPI_Comm_size(comm_, &size_);
        detail::mpi_check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local_),
                          "Comm_split_type");
        MPI_Comm_rank(local_, &local_rank_);
        MPI_Comm_size(local_, &local_size_);
    }
    ~mpi_communicator() override {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (finalized) return;
        MPI_Comm_free(&local_);
        MPI_Comm_free(&comm_);
    }
    mpi_communicator(const mpi_communicator&) = delete;
    mpi_communicator& operator=(const mpi_communicator&) = delete;

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    int local_rank() const override { return local_rank_; }
    int local_size() const override { return local_size_; }
    const char* transport() const override { return "mpi"; }
    double timeout() const { return timeout_; }

    void sum_gradients(float* data, std::size_t n) override {
        if (size_ == 1 || n == 0) return;
        if ((size_ & (size_ - 1)) == 0)
            halving_doubling_sum(data, n);
        else
            for (std::size_t at = 0; at < n; at += chunk_floats) {
                MPI_Request r;
                const int count = int(std::min(chunk_floats, n - at));
                detail::mpi_check(MPI_Iallreduce(MPI_IN_PLACE, data + at, count, MPI_FLOAT, MPI_SUM, comm_, &r),
                                  "Iallreduce (gradients)");
                wait(r, "the gradient sum");
            }
    }
    void sum(double* data, int n) override { reduce(data, n, MPI_SUM, "a sum of step values"); }
    void max(double* data, int n) override { reduce(data, n, MPI_MAX, "the step agreement (clock, stop signal)"); }
    void broadcast(void* data, std::size_t bytes) override {
        auto* p = static_cast<char*>(data);
        for (std::size_t at = 0; at < bytes; at += chunk_bytes) {
            MPI_Request r;
            const int count = int(std::min(chunk_bytes, bytes - at));
            detail::mpi_check(MPI_Ibcast(p + at, count, MPI_BYTE, 0, comm_, &r), "Ibcast");
            wait(r, "a broadcast from rank 0");
        }
    }
    void barrier() override {
        MPI_Request r;
        detail::mpi_check(MPI_Ibarrier(comm_, &r), "Ibarrier");
        wait(r, "a barrier");
    }
    [[noreturn]] void abort(int exit_code) override {
        MPI_Abort(MPI_COMM_WORLD, exit_code);
        std::_Exit(exit_code);  // MPI_Abort does not return; this only satisfies [[noreturn]]
    }

private:
    static constexpr std::size_t chunk_floats = std::size_t(1) << 22;  // 16 MiB per message
    static constexpr std::size_t chunk_bytes = std::size_t(1) << 30;

    void reduce(double* data, int n, MPI_Op op, const char* what) {
        if (size_ == 1) return;
        MPI_Request r;
        detail::mpi_check(MPI_Iallreduce(MPI_IN_PLACE, data, n, MPI_DOUBLE, op, comm_, &r), "Iallreduce");
        wait(r, what);
    }

    // Reduce-scatter by recursive halving, then allgather by recursive doubling (Rabenseifner): in round
    // d = 1, 2, 4, ... each rank keeps one half of its segment and sends the other to rank ^ d, adding what
    // it receives for the half it keeps, so every element is summed once, by one rank, as the aligned
    // binary tree over ranks ((r0 + r1) + (r2 + r3) ...; float addition is commutative, so who is on which
    // side does not matter); the rounds in reverse then copy the finished segments to every rank. Each rank
    // sends 2 (N - 1) / N of the buffer, as a ring all-reduce does.
    void halving_doubling_sum(float* data, std::size_t n) {
        const std::size_t chunk = std::min(n, chunk_floats);
        incoming_.resize(chunk / 2 + 1);
        struct segment {
            std::size_t lo, hi;
        };
        std::vector<segment> held;  // this rank's segment before each round's split
        for (std::size_t at = 0; at < n; at += chunk) {
            float* mine = data + at;
            segment seg{0, std::min(chunk, n - at)};
            held.clear();
            for (int d = 1; d < size_; d <<= 1) {
                const std::size_t mid = seg.lo + (seg.hi - seg.lo) / 2;
                const bool low = (rank_ & d) == 0;
                const segment keep = low ? segment{seg.lo, mid} : segment{mid, seg.hi};
                const segment give = low ? segment{mid, seg.hi} : segment{seg.lo, mid};
                exchange(mine + give.lo, give.hi - give.lo, incoming_.data(), keep.hi - keep.lo, rank_ ^ d);
                float* out = mine + keep.lo;
                const float* in = incoming_.data();
                cram::parallel_for(std::ptrdiff_t(keep.hi - keep.lo), 1.0, [&](std::ptrdiff_t b, std::ptrdiff_t e) {
                    ops::add_inplace(out + b, in + b, index_t(e - b));
                });
                held.push_back(seg);
                seg = keep;
            }
            for (int d = size_ >> 1; d >= 1; d >>= 1) {
                const segment whole = held.back();
                held.pop_back();
                const bool low = (rank_ & d) == 0;
                const std::size_t mid = whole.lo + (whole.hi - whole.lo) / 2;
                const segment theirs = low ? segment{mid, whole.hi} : segment{whole.lo, mid};
                exchange(mine + seg.lo, seg.hi - seg.lo, mine + theirs.lo, theirs.hi - theirs.lo, rank_ ^ d);
                seg = whole;
            }
        }
    }

    // Sends `send_n` floats to `partner` while receiving `recv_n` from it.
    void exchange(const float* send, std::size_t send_n, float* recv, std::size_t recv_n, int partner) {
        MPI_Request r[2];
        detail::mpi_check(MPI_Irecv(recv, int(recv_n), MPI_FLOAT, partner, 7, comm_, &r[0]), "Irecv (gradients)");
        detail::mpi_check(MPI_Isend(send, int(send_n), MPI_FLOAT, partner, 7, comm_, &r[1]), "Isend (gradients)");
        wait(r[0], "the gradient sum");
        wait(r[1], "the gradient sum");
    }

    // Polls `r` (spinning for the first millisecond, then every 100 microseconds so that a waiting rank
    // leaves the CPU to the ones still computing) until it completes or the deadline passes.
    void wait(MPI_Request& r, const char* what) {
        const double start = cram::steady_seconds();
        for (;;) {
            int done = 0;
            detail::mpi_check(MPI_Test(&r, &done, MPI_STATUS_IGNORE), what);
            if (done) return;
            const double waited = cram::steady_seconds() - start;
            if (waited > timeout_) {
                std::fprintf(stderr,
                             "cram: rank %d: no answer from the other ranks for %.0f s during %s: one of them died "
                             "or hangs. Ending the job; continue it with --resume from the last checkpoint\n",
                             rank_, waited, what);
                std::fflush(stderr);
                MPI_Abort(MPI_COMM_WORLD, 1);
            }
            if (waited > 1e-3) std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    }

    double timeout_;
    MPI_Comm comm_ = MPI_COMM_NULL, local_ = MPI_COMM_NULL;
    int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
    std::vector<float> incoming_;
};

}  // namespace cram::dist
