// `cram_bert_24h run`: the whole pipeline in one command: prepare (corpus -> vocabulary + shards, not
// counted against the budget) -> train (the budget) -> GLUE report when --glue-dir is given. Files:
// OUT/data (dataset), OUT/run (checkpoints, metrics, loss.svg), OUT/glue (report). Training takes
// exactly `train`'s options (add_train_options), so the two commands cannot drift apart.
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "app_glue.hpp"
#include "app_prepare.hpp"
#include "app_train.hpp"
#include "app_train_cli.hpp"
#include "commands.hpp"
#include "cram/core/signals.hpp"
#include "cram/train/checkpoint.hpp"

namespace cram::app {

void add_run_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("run", "Prepare a corpus, train under the budget, then (with --glue-dir) evaluate on GLUE");
    struct args {
        train_settings s;
        std::vector<std::string> corpus;
        std::string out, format = "auto", glue_dir;
        int vocab_size = 0;
        std::int64_t max_docs = 0;
        std::size_t max_line_bytes = cram::data::reader_options{}.max_line_bytes;
        // the --glue-* protocol knobs (0 / empty: the `glue` command's defaults)
        std::string glue_tasks, glue_protocol = "released";
        int glue_seeds = 0, glue_epochs = 0;
        std::size_t glue_max_train = 0;
    };
    auto a = std::make_shared<args>();
    cmd->add_option("--corpus", a->corpus, "Corpus files (*.jsonl, *.jsonl.zst, *.txt, *.txt.zst)")->required()->expected(1, -1);
    cmd->add_option("--out", a->out, "Output directory: data/ (dataset), run/ (training) and glue/ (report)")->required();
    add_train_options(cmd, a->s);
    // the same flag as train's, and it also reuses the dataset: say so where the user reads it
    cmd->get_option("--resume")->description("Reuse OUT/data and continue the newest checkpoint in OUT/run (budget clock included)");
    cmd->add_option("--vocab-size", a->vocab_size, "Vocabulary to train (0: the preset's)")->capture_default_str();
    cmd->add_option("--max-docs", a->max_docs, "Read at most this many documents (0: all)")->capture_default_str();
    cmd->add_option("--format", a->format, "Corpus format: auto, jsonl, text, text-blocks")
        ->check(CLI::IsMember({"auto", "jsonl", "text", "text-blocks"}))->capture_default_str();
    cmd->add_option("--max-line-bytes", a->max_line_bytes, "Longest corpus line in bytes (as prepare's)")->capture_default_str();
    cmd->add_option("--glue-dir", a->glue_dir, "GLUE data directory: evaluate the trained model when given");
    cmd->add_option("--glue-tasks", a->glue_tasks, "GLUE tasks, comma-separated (default: the 8 of the average)");
    cmd->add_option("--glue-protocol", a->glue_protocol, "GLUE fine-tuning protocol: released or article (as glue --protocol)")
        ->check(glue_protocol_name())->capture_default_str();
    cmd->add_option("--glue-seeds", a->glue_seeds, "GLUE fine-tuning seeds per task (0: the protocol's 5)")->capture_default_str();
    cmd->add_option("--glue-epochs", a->glue_epochs, "GLUE epochs per task (0: the protocol's)")->capture_default_str();
    cmd->add_option("--glue-max-train", a->glue_max_train,
                    "Fine-tune on at most this many training examples per task (0: all; a deviation, flagged in the report)")
        ->capture_default_str();
    cmd->callback([a] {
        namespace fs = std::filesystem;
        auto& s = a->s;
        resolve_recipe(s);  // the preset (and its vocabulary) may be the recipe's
        const fs::path out(a->out);
        const fs::path data_dir = out / "data", run_dir = out / "run";
        const int vocab = a->vocab_size > 0 ? a->vocab_size : preset_vocab(s.preset);
        CRAM_CHECK(vocab == preset_vocab(s.preset), "--vocab-size ", vocab, " does not match preset ", s.preset,
                   ", which needs ", preset_vocab(s.preset), " (leave --vocab-size out to use the preset's)");
        cram::train::parse_duration(s.budget);  // fail on a bad budget before the long preparation
        // 1. prepare (preprocessing: not part of the budget); reused when a finished one is there
        if (s.resume && fs::exists(data_dir / cram::data::dataset_summary_name)) {
            std::fprintf(stderr, "run: reusing the dataset in %s\n", data_dir.string().c_str());
        } else {
            CRAM_CHECK(!fs::exists(data_dir / cram::data::dataset_summary_name), "run: ", data_dir.string(),
                       " already holds a dataset: pass --resume to continue that run, or choose a new --out");
            cram::data::prepare_options p;
            for (const auto& c : a->corpus) p.corpus.emplace_back(c);
            p.out = data_dir;
            p.vocab_size = vocab;
            p.max_docs = a->max_docs;
            p.reader.format = cram::data::parse_corpus_format(a->format);
            p.reader.max_line_bytes = a->max_line_bytes;
            std::fprintf(stderr, "run: 1/2 prepare (not counted against the budget) -> %s\n", data_dir.string().c_str());
            const auto sum = prepare_with_progress(p, s.quiet);
            std::fprintf(stderr, "prepare: %lld documents (%lld filtered) -> %lld training + %lld validation sequences in %.1f s\n",
                         static_cast<long long>(sum.documents), static_cast<long long>(sum.filtered),
                         static_cast<long long>(sum.train_blocks), static_cast<long long>(sum.val_blocks), sum.seconds);
        }
        // 2. train: the budget clock starts here. From here on a stop signal ends the run with a checkpoint
        // (during prepare it just ends the process: the old dataset, if any, is untouched).
        std::fprintf(stderr, "run: 2/2 train -> %s\n", run_dir.string().c_str());
        const cram::stop_on_signals stop;
        s.data = data_dir.string();
        s.out = run_dir.string();
        s.start_time = cram::steady_seconds();
        s.simulated_step_seconds = simulated_step_seconds_from_env();
        const int rc = train_on_device(s);
        if (rc != 0) throw CLI::RuntimeError(rc);
        // 3. GLUE, when asked for: the protocol's settings unless --glue-* says otherwise, the report in OUT/glue
        if (!a->glue_dir.empty()) {
            const auto ck = train::list_checkpoints(run_dir / "checkpoints");
            CRAM_CHECK(!ck.empty(), "run: no checkpoint in ", (run_dir / "checkpoints").string(), " to evaluate");
            glue_settings g;
            g.checkpoint = ck.front();
            g.glue_dir = a->glue_dir;
            g.out = out / "glue";
            g.vocab = data_dir / "vocab.txt";
            g.preset = s.preset;
            g.device = s.device;
            g.attention = s.attention;
            g.gemm_algorithms = s.gemm_algorithms;
            g.layernorm = s.layernorm;
            g.seed = s.seed;
            if (!a->glue_tasks.empty()) g.tasks = a->glue_tasks;
            if (a->glue_seeds > 0) g.seeds = a->glue_seeds;
            g.protocol = a->glue_protocol;
            if (a->glue_epochs > 0) g.epochs = a->glue_epochs;
            g.max_train = a->glue_max_train;
            g.quiet = s.quiet;    // --quiet: no progress and no report on stdout (it is written to OUT/glue)
            g.resume = s.resume;  // a resumed run continues its evaluation too
            g.resume_command = "`cram_bert_24h run ... --resume` (the same options)";
            const int grc = glue_on_device(g);
            if (grc != 0) throw CLI::RuntimeError(grc);
        }
    });
}

}  // namespace cram::app
