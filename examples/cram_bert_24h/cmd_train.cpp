// `cram_bert_24h train`: budgeted MLM pretraining of a preset on a prepared dataset, on the CPU or (in a
// CUDA build with a usable GPU) the GPU. The work is in app_train.hpp and cram/train/trainer.hpp; this
// file is the command line and the device choice.
#include <memory>

#include "app_train_cli.hpp"
#include "commands.hpp"


namespace {

const bool registered = cram::app::register_command(30, [](CLI::App& app) {
    auto* cmd = app.add_subcommand("train", "Pretrain a BERT-style MLM on a prepared dataset within a wall-clock budget");
    auto s = std::make_shared<cram::app::train_settings>();
    cmd->add_option("--data", s->data, "Dataset directory written by `prepare`")->required();
    cram::app::add_train_options(cmd, *s);
    cmd->callback([s] {
        s->start_time = cram::steady_seconds();
        const int rc = cram::app::train_on_device(*s);
        if (rc != 0) throw CLI::RuntimeError(rc);
    });
});

}  // namespace
