// The whole GLUE evaluation of one pretrained encoder: every task x every seed fine-tuned (finetune.hpp),
// progress while it runs (a redrawn line on a terminal, plain periodic lines otherwise), one JSON line per
// epoch in OUT/glue_metrics.jsonl, and OUT/report.md + OUT/report.json (report.hpp) written atomically.
// Also where a trainer checkpoint becomes encoder parameters (load_encoder).
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cram/core/clock.hpp"
#include "cram/core/error.hpp"
#include "cram/core/file_io.hpp"
#include "cram/core/status_line.hpp"
#include "cram/eval/finetune.hpp"
#include "cram/eval/report.hpp"
#include "cram/train/budget.hpp"
#include "cram/train/checkpoint.hpp"
#include "cram/train/safetensors.hpp"

namespace cram::eval {

// The tasks of the GLUE average, in CRAMMING.md's order (WNLI runs only when asked for).
inline std::vector<std::string> default_glue_tasks() {
    return {"MNLI", "SST-2", "STS-B", "RTE", "QNLI", "QQP", "MRPC", "CoLA"};
}

// The checkpoint a path names, its state.json checked (checkpoint.hpp): a checkpoint directory as given,
// or the newest checkpoint of a trainer run directory (RUN/checkpoints/step-*) whose state verifies (a
// damaged newer one is skipped with a warning; a reader never moves a run's files).
inline train::checkpoint_info find_checkpoint(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    if (fs::exists(path / train::checkpoint_paths::state)) return train::read_checkpoint_info(path);
    const auto list = train::list_checkpoints(path / "checkpoints");
    CRAM_CHECK(!list.empty(), "checkpoint ", path.string(), ": neither a checkpoint directory (with ",
               train::checkpoint_paths::state, ") nor a run directory with complete checkpoints under ",
               (path / "checkpoints").string());
    for (const auto& c : list) {
        try {
            return train::read_checkpoint_info(c);
        } catch (const train::checkpoint_damaged& e) {
            std::fprintf(stderr, "warning: skipping damaged checkpoint %s: %s\n", c.string().c_str(), e.what());
        }
    }
    CRAM_THROW("none of the ", list.size(), " checkpoints under ", (path / "checkpoints").string(),
               " is usable (see the warnings above)");
}

inline std::filesystem::path resolve_checkpoint(const std::filesystem::path& path) { return find_checkpoint(path).dir; }

template <class T>
struct pretrained_encoder {
    std::filesystem::path dir;  // the checkpoint actually used
    nlohmann::json state;       // its verified state.json
    std::vector<T> params;      // bert<C>::layout()
};

// The encoder parameters of a trainer checkpoint (its model.safetensors, verified against the checksum in
// state.json and checked finite; the optimizer state is not read). A checkpoint directory that fails is an
// error saying so; for a run directory the newest checkpoint that verifies is used, older ones standing in
// for damaged ones with a warning. Misshapen tensors (a checkpoint of another preset) are an error too.
template <bert_config C, class T = float>
pretrained_encoder<T> load_pretrained(const std::filesystem::path& checkpoint) {
    namespace fs = std::filesystem;
    const param_layout& layout = bert_layout<C>();
    if (fs::exists(checkpoint / train::checkpoint_paths::state)) {
        try {
            auto l = train::load_checkpoint<T>(checkpoint, layout, train::checkpoint_part::model);
            return {l.dir, std::move(l.state), std::move(l.params)};
        } catch (const train::checkpoint_damaged& e) {
            CRAM_THROW("checkpoint ", checkpoint.string(), " is damaged and cannot be evaluated: ", e.what(),
                       "\n(pass the run directory to use its newest good checkpoint, or an older step-N directory)");
        }
    }
    (void)find_checkpoint(checkpoint);  // the message for a path that holds no checkpoints
    auto l = train::load_latest_checkpoint<T>(checkpoint / "checkpoints", layout, train::checkpoint_part::model);
    CRAM_CHECK(l.has_value(), "none of the checkpoints under ", (checkpoint / "checkpoints").string(),
               " is usable (see the warnings above)");
    return {l->dir, std::move(l->state), std::move(l->params)};
}

template <bert_config C, class T = float>
std::vector<T> load_encoder(const std::filesystem::path& checkpoint) {
    return load_pretrained<C, T>(checkpoint).params;
}

// Refuses a vocabulary whose content differs from the one the checkpoint was pretrained with (its XXH64,
// recorded by the trainer as config.vocab_xxh64): the same size with other tokens means wrong ids for
// [MASK] and every word. Checkpoints that do not record it pass.
inline void check_vocab_matches(const nlohmann::json& state, const std::filesystem::path& vocab) {
    const auto config = state.contains("config") && state["config"].is_object() ? state["config"] : nlohmann::json::object();
    if (!config.contains("vocab_xxh64") || !config["vocab_xxh64"].is_string()) return;
    const std::string want = config["vocab_xxh64"].get<std::string>();
    const std::string got = train::digest_file(vocab).xxh64;
    CRAM_CHECK(got == want, "vocabulary ", vocab.string(), " is not the one the checkpoint was pretrained with (its "
               "XXH64 is ", got, ", the checkpoint recorded ", want, "): pass --vocab with the pretraining dataset's vocab.txt");
}

struct glue_eval_options {
    std::filesystem::path glue_dir;        // DIR/<task>/{train,dev}.tsv (MNLI: dev_matched, dev_mismatched)
    std::filesystem::path out;             // report.md, report.json, glue_metrics.jsonl
    std::vector<std::string> tasks = default_glue_tasks();
    int seeds = 5;
    std::uint64_t first_seed = 0;
    finetune_options finetune;
    std::vector<std::string> notes;  // checkpoint, preset, backend: shown at the top of the report
    nlohmann::json settings = nlohmann::json::object();
    bool quiet = false;
    double plain_every = 10.0;  // seconds between plain progress lines when stderr is not a terminal
};

// What differs from CRAMMING.md's GLUE protocol in these options (empty: the protocol).
inline std::vector<std::string> protocol_deviations(const glue_eval_options& o) {
    std::vector<std::string> d;
    const auto& f = o.finetune;
    auto num = [](double v) {
        char b[32];
        std::snprintf(b, sizeof b, "%g", v);
        return std::string(b);
    };
    if (f.max_train > 0) d.push_back("training sets capped at " + std::to_string(f.max_train) + " examples per task");
    if (f.max_steps > 0) d.push_back("at most " + std::to_string(f.max_steps) + " optimizer steps per run");
    if (f.epochs != 5) d.push_back(std::to_string(f.epochs) + " epoch(s) (protocol: 5)");
    if (o.seeds != 5) d.push_back(std::to_string(o.seeds) + " seed(s) (protocol: median of 5)");
    if (f.batch != 16) d.push_back("batch " + std::to_string(f.batch) + " (protocol: 16)");
    if (std::abs(f.lr - 4e-5f) > 1e-9f) d.push_back("learning rate " + num(f.lr) + " (protocol: 4e-5)");
    if (f.clip_norm > 0) d.push_back("gradient clipping at norm " + num(f.clip_norm) + " (protocol: none)");
    if (std::abs(f.dropout - 0.1f) > 1e-9f) d.push_back("dropout " + num(f.dropout) + " (protocol: 0.1)");
    if (f.max_len != 128) d.push_back("max length " + std::to_string(f.max_len) + " (protocol: 128)");
    return d;
}

namespace detail {

// Progress of the whole evaluation on cram::status_line: steps done of all runs' steps give the ETA.
class glue_progress {
public:
    glue_progress(bool quiet, double plain_every, std::int64_t total_steps)
        : line_(quiet, /*tty_every=*/0.25, plain_every), total_(total_steps) {}

    void step(const finetune_progress& p, int seed_index, int seeds) {
        ++done_;
        if (!line_.due(p.step == p.total_steps)) return;
        const double elapsed = clock_.seconds(), rate = done_ / std::max(elapsed, 1e-9);
        const double eta = double(total_ - done_) / std::max(rate, 1e-9);
        char loss[32] = "-";  // no read yet
        if (std::isfinite(p.loss)) std::snprintf(loss, sizeof loss, "%.4f", p.loss);
        char line[400];
        std::snprintf(line, sizeof line,
                      "glue: %s run %d/%d epoch %d/%d step %lld/%lld | loss %s | lr %.2e | %.1f steps/s | "
                      "%s elapsed, ETA %s (training; evaluation adds a little)",
                      p.task.c_str(), seed_index + 1, seeds, p.epoch, p.epochs, static_cast<long long>(p.step),
                      static_cast<long long>(p.total_steps), loss, p.lr, rate,
                      train::format_duration(elapsed).c_str(), train::format_duration(eta).c_str());
        line_.show(line);
    }
    void message(const std::string& s) { line_.message(s); }
    double elapsed() const { return clock_.seconds(); }

private:
    status_line line_;
    stopwatch clock_;
    std::int64_t total_, done_ = 0;
};

inline std::string scores_text(const std::map<std::string, std::map<std::string, double>>& dev) {
    std::string s;
    for (const auto& [split, metrics] : dev)
        for (const auto& [m, v] : metrics) {
            s += ' ';
            if (dev.size() > 1) s.append(split).append("/");
            s.append(m).append(" ").append(percent(100 * v));
        }
    return s;
}

}  // namespace detail

// Runs the evaluation and writes the report. `pretrained` is a host buffer in bert<C>::layout() (see
// load_encoder), or null with opts.finetune.from_scratch for the no-pretraining baseline. Tasks whose
// train.tsv is absent are named in the report as not run; an unreadable file is an error.
template <bert_config C, ops::backend Backend, class Tokenizer>
glue_report evaluate_glue(typename Backend::context& ctx, const std::vector<typename Backend::param_t>* pretrained,
                          const Tokenizer& tok, const glue_eval_options& opts) {
    namespace fs = std::filesystem;
    CRAM_CHECK(opts.seeds > 0, "seeds must be positive, got ", opts.seeds);
    CRAM_CHECK(pretrained || opts.finetune.from_scratch, "evaluate_glue needs pretrained parameters or from_scratch");
    CRAM_CHECK(fs::is_directory(opts.glue_dir), "GLUE directory ", opts.glue_dir.string(),
               " does not exist (it holds <task>/train.tsv and dev.tsv in the official layout; see docs/glue.md)");
    glue_report report;
    report.deviations = protocol_deviations(opts);
    report.notes = opts.notes;
    report.settings = opts.settings;
    const auto& f = opts.finetune;
    report.settings["seeds"] = opts.seeds;
    report.settings["first_seed"] = opts.first_seed;
    report.settings["finetune"] = {{"epochs", f.epochs}, {"batch", f.batch}, {"lr", f.lr}, {"betas", {f.beta1, f.beta2}},
                                   {"eps", f.eps}, {"weight_decay", f.weight_decay}, {"clip_norm", f.clip_norm},
                                   {"warmup_fraction", f.warmup_fraction}, {"schedule", "linear warm-up, cosine to 0"},
                                   {"dropout", f.dropout}, {"max_len", f.max_len}, {"max_train", f.max_train},
                                   {"max_steps", f.max_steps}, {"from_scratch", f.from_scratch}};
    report.title = f.from_scratch ? "GLUE dev report (no pretraining: random encoder)" : "GLUE dev report";

    // read and tokenize every task first: a bad file fails before hours of fine-tuning
    std::vector<task_data> data;
    std::int64_t total_steps = 0;
    for (const auto& name : opts.tasks) {
        const glue_task_info& info = glue_task(name);
        const fs::path train_file = opts.glue_dir / info.name / "train.tsv";
        if (!fs::exists(train_file)) {
            report.missing.emplace_back(info.name, "no " + train_file.string());
            continue;
        }
        data.push_back(load_task(tok, opts.glue_dir, info, f.max_len));
        const std::int64_t n = std::int64_t(training_subset(data.back().train.size(), f.max_train).size());
        std::int64_t steps = (n + f.batch - 1) / f.batch * f.epochs;
        if (f.max_steps > 0) steps = std::min(steps, f.max_steps);
        total_steps += steps * opts.seeds;
    }
    CRAM_CHECK(!data.empty(), "none of the GLUE tasks (", detail::join(opts.tasks), ") has data under ",
               opts.glue_dir.string(), " (see docs/glue.md for the layout)");

    fs::create_directories(opts.out);
    const fs::path metrics_path = opts.out / "glue_metrics.jsonl";
    std::ofstream metrics(metrics_path, std::ios::trunc);
    CRAM_CHECK(static_cast<bool>(metrics), "cannot write ", metrics_path.string());
    detail::glue_progress progress(opts.quiet, opts.plain_every, total_steps);
    for (const auto& [t, why] : report.missing) progress.message("glue: " + t + " not run: " + why);
    for (const auto& d : data) {
        std::size_t dev_n = 0;
        for (const auto& s : d.dev) dev_n += s.examples.size();
        progress.message("glue: " + d.info.name + ": " + std::to_string(d.train.size()) + " train, " +
                         std::to_string(dev_n) + " dev examples" +
                         (d.train_skipped_rows ? ", " + std::to_string(d.train_skipped_rows) + " train rows skipped" : ""));
    }

    for (const auto& d : data) {
        std::vector<finetune_run> runs;
        for (int k = 0; k < opts.seeds; ++k) {
            finetune_options fo = f;
            fo.seed = opts.first_seed + std::uint64_t(k);
            finetune_callbacks cb;
            cb.on_step = [&](const finetune_progress& p) { progress.step(p, k, opts.seeds); };
            cb.on_epoch = [&](const finetune_run& run, const epoch_score& e) {
                progress.message("glue: " + run.task + " run " + std::to_string(k + 1) + "/" + std::to_string(opts.seeds) +
                                 " (seed " + std::to_string(run.seed) + ") epoch " +
                                 std::to_string(e.epoch) + ": train loss " + percent(e.train_loss, 4) + ", dev" +
                                 detail::scores_text(e.dev) + " (" + train::format_duration(e.seconds) + ")");
                metrics << nlohmann::json{{"event", "epoch"},    {"task", run.task},       {"seed", run.seed},
                                          {"epoch", e.epoch},    {"steps", e.steps},       {"total_steps", run.total_steps},
                                          {"train_loss", e.train_loss}, {"seconds", e.seconds}, {"dev", e.dev},
                                          {"elapsed_s", progress.elapsed()}}
                               .dump()
                        << '\n';
                metrics.flush();
            };
            runs.push_back(finetune<C, Backend>(ctx, pretrained, d, fo, cb));
        }
        std::size_t skipped = d.train_skipped_rows;
        for (const auto& s : d.dev) skipped += s.skipped_rows;
        report.tasks.push_back(summarize_task(d.info.name, std::move(runs), skipped));
        const auto& t = report.tasks.back();
        progress.message("glue: " + t.task + " median over " + std::to_string(t.runs.size()) + " seed(s):" +
                         detail::scores_text(t.median));
        metrics << nlohmann::json{{"event", "task"}, {"task", t.task}, {"seeds", t.runs.size()}, {"median", t.median}}.dump()
                << '\n';
        metrics.flush();
    }
    report.notes.push_back("fine-tuning took " + train::format_duration(progress.elapsed()));
    const nlohmann::json j = report_json(report);
    metrics << nlohmann::json{{"event", "summary"}, {"cramming", j["cramming"]}, {"leaderboard", j["leaderboard"]}}.dump()
            << '\n';
    metrics.flush();
    atomic_write_file(opts.out / "report.json", j.dump(2) + "\n");
    atomic_write_file(opts.out / "report.md", report_markdown(report));
    return report;
}

}  // namespace cram::eval
