// `cram_bert_24h compare`: the command line only. Reads each run's files and writes the comparison table
// (cram/eval/compare.hpp) as OUT/compare.md and OUT/compare.json.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"
#include "cram/core/file_io.hpp"
#include "cram/eval/compare.hpp"

namespace cram::app {

void add_compare_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("compare", "Compare finished runs (pretraining and GLUE) side by side with the "
                                              "published cramming results: OUT/compare.md and OUT/compare.json");
    struct args {
        std::string out;
        std::vector<std::string> runs;
        bool quiet = false;
    };
    auto a = std::make_shared<args>();
    cmd->add_option("--out", a->out, "Output directory: compare.md, compare.json")->required();
    cmd->add_option("runs", a->runs,
                    "Runs to compare, each [LABEL=]RUN_OUT (a `run --out` directory: run/ and glue/) or "
                    "[LABEL=]TRAIN_DIR:GLUE_DIR (a `train --out` and a `glue --out` directory)")
        ->required()->expected(1, -1);
    cmd->add_flag("--quiet", a->quiet, "Do not print the table; the files are still written");
    cmd->callback([a] {
        namespace fs = std::filesystem;
        std::vector<eval::compare_run> rows;
        // every argument is checked before any file is read: a typo in the last one fails at once
        std::vector<eval::compare_source> sources;
        for (const auto& r : a->runs) sources.push_back(eval::parse_compare_source(r));
        for (const auto& s : sources) rows.push_back(eval::load_compare_run(s));
        eval::check_unique_labels(rows);
        const fs::path out(a->out);
        fs::create_directories(out);
        const std::string md = eval::compare_markdown(rows);
        atomic_write_file(out / "compare.json", eval::compare_json(rows).dump(2) + "\n");
        atomic_write_file(out / "compare.md", md);
        if (!a->quiet) std::printf("%s", md.c_str());
        std::fprintf(stderr, "compare: %zu run(s) written to %s and %s\n", rows.size(), (out / "compare.md").string().c_str(),
                     (out / "compare.json").string().c_str());
    });
}

}  // namespace cram::app
