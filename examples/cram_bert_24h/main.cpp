// cram_bert_24h entry point: adds every subcommand, in the order --help lists them, and runs the chosen
// one. Errors reach the user as one line naming what was wrong; the exit code is non-zero.
#include <cstdio>
#include <exception>

#include "commands.hpp"

int main(int argc, char** argv) {
    CLI::App app{"cram_bert_24h: train a BERT-style model from scratch under a wall-clock budget and "
                 "evaluate it on GLUE"};
    app.require_subcommand(1);
    cram::app::add_prepare_command(app);
    cram::app::add_tokenize_command(app);
    cram::app::add_train_command(app);
    cram::app::add_glue_command(app);
    cram::app::add_run_command(app);
    cram::app::add_device_command(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cram_bert_24h: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
