// `cram_bert_24h train`: budgeted MLM pretraining of a preset on a prepared dataset, on the CPU or (in a
// CUDA build with a usable GPU) the GPU. The work is behind train_on_device (cpu_train.cpp); this file is
// only the command line, so it compiles in seconds.
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
        s->simulated_step_seconds = simulated_step_seconds_from_env();
        const cram::stop_on_signals stop;  // SIGINT/SIGTERM/SIGHUP: checkpoint, then exit 128 + signal
        const int rc = train_on_device(*s);
        if (rc != 0) throw CLI::RuntimeError(rc);
    });
}

}  // namespace cram::app
