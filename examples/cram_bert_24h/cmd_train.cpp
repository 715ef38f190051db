// `cram_bert_24h train`: budgeted MLM pretraining of a preset on a prepared dataset, on the CPU or (in a
// CUDA build with a usable GPU) the GPU. The work is behind train_on_device (cpu_train.cpp); this file is
// only the command line, so it compiles in seconds.
#include <cstdio>
#include <exception>
#include <memory>

#include "app_train.hpp"
#include "app_train_cli.hpp"
#include "commands.hpp"
#include "cram/core/signals.hpp"

namespace cram::app {

void add_train_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("train", "Pretrain a BERT-style MLM on a prepared dataset within a wall-clock budget");
    auto s = std::make_shared<train_settings>();
    cmd->add_option("--data", s->data, "Dataset directory written by `prepare`")->required();
    cmd->add_option("--out", s->out, "Run directory: checkpoints/, metrics.jsonl, loss.svg")->required();
    add_train_options(cmd, *s);
    cmd->callback([s] {
        s->start_time = cram::steady_seconds();
        const cram::stop_on_signals stop;  // SIGINT/SIGTERM/SIGHUP/SIGUSR1: checkpoint, then exit 128 + signal
        // under mpirun: this process is one rank of a data-parallel job (null: the only process)
        const auto ranks = join_ranks(train::parse_duration(s->rank_timeout));
        s->ranks = ranks.get();
        int rc = 0;
        try {
            s->simulated_step_seconds = simulated_step_seconds_from_env();
            rc = train_on_device(*s);
        } catch (const std::exception& e) {
            if (!ranks || ranks->size() == 1) throw;
            // the other ranks would wait for this one until the rank timeout: end the job now (rank 0 has
            // printed an error it shared with the others)
            if (!dynamic_cast<const dist::failed_on_root*>(&e))
                std::fprintf(stderr, "cram_bert_24h: error on rank %d of %d: %s\n", ranks->rank(), ranks->size(), e.what());
            std::fflush(stderr);
            ranks->abort(1);
        }
        if (rc != 0) throw CLI::RuntimeError(rc);
    });
}

}  // namespace cram::app
