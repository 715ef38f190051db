// cram_bert_24h entry point: adds every subcommand, in the order --help lists them, and runs the chosen
// one. Errors reach the user as one line naming what was wrong; the exit code is non-zero.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "commands.hpp"
#include "cram/core/error.hpp"
#include "cram/dist/communicator.hpp"

namespace {

// Levenshtein distance, for "did you mean" on a mistyped command.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diag = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diag = up;
        }
    }
    return row[b.size()];
}

// A first argument that is neither an option nor a command: name it, the nearest command, and the list
// (CLI11 alone would say only "A subcommand is required").
bool report_unknown_command(const CLI::App& app, int argc, char** argv) {
    if (argc < 2 || argv[1][0] == '-') return false;
    const std::string_view given = argv[1];
    std::string names, nearest;
    std::size_t best = 3;  // suggest only close matches
    for (const auto* sub : app.get_subcommands({})) {
        const std::string& name = sub->get_name();
        if (name == given) return false;
        names += (names.empty() ? "" : ", ") + name;
        if (const std::size_t d = edit_distance(given, name); d < best) best = d, nearest = name;
    }
    std::fprintf(stderr, "cram_bert_24h: error: unknown command '%s'%s; the commands are %s (see --help)\n",
                 argv[1], nearest.empty() ? "" : (" (did you mean '" + nearest + "'?)").c_str(), names.c_str());
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"cram_bert_24h: train a BERT-style model from scratch under a wall-clock budget and "
                 "evaluate it on GLUE"};
    app.require_subcommand(1);
    cram::app::add_prepare_command(app);
    cram::app::add_tokenize_command(app);
    cram::app::add_plan_command(app);
    cram::app::add_train_command(app);
    cram::app::add_glue_command(app);
    cram::app::add_run_command(app);
    cram::app::add_compare_command(app);
    cram::app::add_device_command(app);
    cram::app::add_export_command(app);
    cram::app::add_import_command(app);
    if (report_unknown_command(app, argc, argv)) return 2;
    // data parallelism is `train`'s alone: N copies of another command would race on the same files
    if (const int ranks = cram::dist::launched_ranks(); ranks > 1 && argc >= 2 && std::string_view(argv[1]) != "train") {
        std::fprintf(stderr, "cram_bert_24h: error: an MPI launcher started %d processes, but only `train` runs "
                     "data-parallel: run `%s` as one process (for `run`: prepare once, then `mpirun -np N "
                     "cram_bert_24h train`, then `glue`; docs/distributed.md)\n", ranks, argv[1]);
        return 2;
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const cram::error& e) {
        // the message is for the user; where it was raised only for whoever debugs cram
        const char* debug = std::getenv("CRAM_DEBUG");
        if (debug && *debug && std::string_view(debug) != "0")
            std::fprintf(stderr, "cram_bert_24h: error: %s [%s]\n", e.what(), e.where().c_str());
        else
            std::fprintf(stderr, "cram_bert_24h: error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cram_bert_24h: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
