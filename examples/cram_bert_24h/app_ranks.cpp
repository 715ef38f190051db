// join_ranks (app_train.hpp): the app's side of data-parallel training. With MPI (cram::mpi,
// CRAM_WITH_MPI) a launch of several ranks starts an MPI session for the process's lifetime; without it
// such a launch is refused, since every process would train alone and write the same run.
#include <memory>

#include "app_train.hpp"
#include "cram/dist/communicator.hpp"
#if CRAM_WITH_MPI
#include "cram/dist/mpi.hpp"
#endif

namespace cram::app {

#if CRAM_WITH_MPI
std::unique_ptr<dist::communicator> join_ranks(double timeout) {
    if (dist::launched_ranks() <= 1) return nullptr;
    static dist::mpi_session session(nullptr, nullptr);  // finalised at exit, after every communicator
    return std::make_unique<dist::mpi_communicator>(timeout);
}
#else
std::unique_ptr<dist::communicator> join_ranks(double) {
    const int n = dist::launched_ranks();
    CRAM_CHECK(n <= 1, "an MPI launcher started ", n, " processes, but this cram_bert_24h was built without MPI: each "
               "would train alone on the same run directory. Install libopenmpi-dev and rebuild (docs/distributed.md)");
    return nullptr;
}
#endif

}  // namespace cram::app
