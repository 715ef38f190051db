// cram_bert_24h entry point: collects the registered subcommands and runs the chosen one. Errors
// reach the user as one line naming what was wrong; the exit code is non-zero.
#include <algorithm>
#include <cstdio>
#include <exception>

#include "commands.hpp"

int main(int argc, char** argv) {
    CLI::App app{"cram_bert_24h: train a BERT-style model from scratch under a wall-clock budget and "
                 "evaluate it on GLUE"};
    app.require_subcommand(1);
    auto& registry = cram::app::command_registry();
    std::sort(registry.begin(), registry.end(), [](auto& a, auto& b) { return a.first < b.first; });
    for (auto& [order, install] : registry) install(app);
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
