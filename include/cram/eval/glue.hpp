// The whole GLUE evaluation of one pretrained encoder: every task x every seed fine-tuned (finetune.hpp),
// progress while it runs (a redrawn line on a terminal, plain periodic lines otherwise), one JSON line per
// epoch in OUT/glue_metrics.jsonl, and OUT/report.md + OUT/report.json (report.hpp) written atomically.
// Also where a trainer checkpoint becomes encoder parameters (load_encoder).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cram/core/clock.hpp"
#include "cram/core/dir_lock.hpp"
#include "cram/core/error.hpp"
#include "cram/core/file_io.hpp"
#include "cram/core/signals.hpp"
#include "cram/core/status_line.hpp"
#include "cram/eval/checkpoint_lookup.hpp"
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
    // The protocol this evaluation follows: what the report names, and what its deviations are measured
    // against. `finetune` holds the settings actually used (finetune_options_for(protocol), then overrides).
    glue_protocol protocol = glue_protocols::released;
    finetune_options finetune;
    std::vector<std::string> notes;  // checkpoint, preset, backend: shown at the top of the report
    nlohmann::json settings = nlohmann::json::object();
    bool quiet = false;
    double plain_every = 10.0;  // seconds between plain progress lines when stderr is not a terminal
    // Take the runs OUT/glue_metrics.jsonl records under the same settings instead of re-running them (an
    // interrupted evaluation continues; a complete one just rewrites its report). Without it, an OUT that
    // holds results is refused.
    bool resume = false;
    std::string resume_command = "the same command with --resume";  // named in an interrupted report
    std::function<void(const finetune_progress&)> on_step;  // after every optimizer step (tests, embedders)
};

// What differs from the evaluation's protocol (o.protocol) and from CRAMMING.md's common settings in these
// options (empty: the protocol). Compared by value: an option set to the protocol's own value is no deviation.
inline std::vector<std::string> protocol_deviations(const glue_eval_options& o) {
    std::vector<std::string> d;
    const auto& f = o.finetune;
    const glue_protocol& p = o.protocol;
    const std::string of = " (protocol " + std::string(p.name) + ": ";
    auto num = [](double v) {
        char b[32];
        std::snprintf(b, sizeof b, "%g", v);
        return std::string(b);
    };
    if (f.max_train > 0) d.push_back("training sets capped at " + std::to_string(f.max_train) + " examples per task");
    if (f.max_steps > 0) d.push_back("at most " + std::to_string(f.max_steps) + " optimizer steps per run");
    if (f.epochs != p.epochs) d.push_back(std::to_string(f.epochs) + " epoch(s)" + of + std::to_string(p.epochs) + ")");
    if (o.seeds != 5) d.push_back(std::to_string(o.seeds) + " seed(s) (protocol: median of 5)");
    if (f.batch != p.batch) d.push_back("batch " + std::to_string(f.batch) + of + std::to_string(p.batch) + ")");
    if (f.lr != float(p.lr)) d.push_back("learning rate " + num(f.lr) + of + num(p.lr) + ")");
    if (std::abs(f.warmup_fraction - p.warmup_fraction) > 1e-12)
        d.push_back("warm-up fraction " + num(f.warmup_fraction) + of + num(p.warmup_fraction) + ")");
    if (f.clip_norm > 0) d.push_back("gradient clipping at norm " + num(f.clip_norm) + " (protocol: none)");
    if (std::abs(f.dropout - 0.1f) > 1e-9f) d.push_back("dropout " + num(f.dropout) + " (protocol: 0.1)");
    if (std::abs(f.attention_dropout - 0.1f) > 1e-9f)
        d.push_back("attention dropout " + num(f.attention_dropout) + " (protocol: 0.1)");
    if (f.max_len != 128) d.push_back("max length " + std::to_string(f.max_len) + " (protocol: 128)");
    return d;
}

namespace detail {

// A float as the shortest decimal that reads back as it (4e-05, not 3.9999998989515007e-05): the value the
// user typed, in report.json and in the fingerprint's messages.
inline double decimal(float v) {
    char buf[32];
    for (int digits = 6; digits <= 9; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*g", digits, double(v));
        if (std::strtof(buf, nullptr) == v) break;
    }
    return std::strtod(buf, nullptr);
}

// The fine-tuning protocol settings, as report.json lists them and the fingerprint compares them.
inline nlohmann::json finetune_settings(const finetune_options& f) {
    nlohmann::json j{{"epochs", f.epochs},
                     {"batch", f.batch},
                     {"lr", decimal(f.lr)},
                     {"betas", {decimal(f.beta1), decimal(f.beta2)}},
                     {"eps", decimal(f.eps)},
                     {"weight_decay", decimal(f.weight_decay)},
                     {"clip_norm", decimal(f.clip_norm)},
                     {"warmup_fraction", f.warmup_fraction},
                     {"schedule", "linear warm-up, cosine to 0"},
                     {"dropout", decimal(f.dropout)},
                     {"attention_dropout", decimal(f.attention_dropout)},
                     {"max_len", f.max_len},
                     {"eval_batch", f.eval_batch},
                     {"max_train", f.max_train},
                     {"max_steps", f.max_steps},
                     {"from_scratch", f.from_scratch},
                     {"head", {{"classifier_hidden", f.model.classifier_hidden}, {"init_std", decimal(f.model.init_std)},
                               {"pad_id", f.model.pad_id}}}};
    // fp16 only (so bf16 and fp32 evaluations keep their fingerprints): dynamic loss scaling's settings
    if (f.loss_scaling)
        j["loss_scaling"] = {{"init_scale", f.loss_scaling->init_scale}, {"growth_interval", f.loss_scaling->growth_interval}};
    return j;
}

}  // namespace detail

// What makes two evaluations' runs interchangeable: what is evaluated (opts.settings: checkpoint, preset,
// vocabulary, backend; the data directory's path is left out, the data itself is checked run by run) and
// every fine-tuning setting. Seeds and tasks are not in it: each (task, seed) run stands alone. Normalised
// through text, so it compares equal to the copy read back from glue_metrics.jsonl.
inline nlohmann::json glue_fingerprint(const glue_eval_options& o) {
    nlohmann::json fp = o.settings.is_object() ? o.settings : nlohmann::json::object();
    fp.erase("glue_dir");
    fp.erase("seeds");
    fp.erase("first_seed");
    fp["finetune"] = detail::finetune_settings(o.finetune);
    // by name too: runs of one protocol are not silently taken for another's, even with equal numbers
    fp["protocol"] = std::string(o.protocol.name);
    return nlohmann::json::parse(fp.dump());
}

namespace detail {

inline void flatten_json(const nlohmann::json& j, const std::string& prefix, std::map<std::string, nlohmann::json>& out) {
    if (j.is_object() && !j.empty()) {
        for (const auto& [k, v] : j.items()) flatten_json(v, prefix.empty() ? k : prefix + "." + k, out);
    } else {
        out[prefix] = j;
    }
}

// "finetune.lr (recorded 0.001, now 4e-05)" for every key whose value differs or exists on one side only.
inline std::vector<std::string> fingerprint_differences(const nlohmann::json& recorded, const nlohmann::json& now) {
    std::map<std::string, nlohmann::json> a, b;
    flatten_json(recorded, "", a);
    flatten_json(now, "", b);
    std::vector<std::string> out;
    auto shown = [](const std::map<std::string, nlohmann::json>& m, const std::string& k) {
        const auto it = m.find(k);
        return it == m.end() ? std::string("absent") : it->second.dump();
    };
    std::map<std::string, bool> keys;
    for (const auto& [k, v] : a) keys[k] = true;
    for (const auto& [k, v] : b) keys[k] = true;
    for (const auto& [k, unused] : keys) {
        const auto x = a.find(k), y = b.find(k);
        if (x != a.end() && y != b.end() && x->second == y->second) continue;
        out.push_back(k + " (recorded " + shown(a, k) + ", now " + shown(b, k) + ")");
    }
    return out;
}

// What an earlier evaluation left in OUT/glue_metrics.jsonl.
struct glue_record {
    std::filesystem::path file;
    bool results = false;                    // any line, or a report next to the file
    bool lines = false;                      // the file holds at least one line
    bool complete = false;                   // a summary line: the evaluation finished
    std::optional<nlohmann::json> settings;  // its first `settings` line
    std::map<std::pair<std::string, std::uint64_t>, finetune_run> runs;  // (task, seed) -> the run
    std::optional<std::uintmax_t> partial_tail;  // where a trailing partial line starts
};

// Cuts a trailing partial line off the file, so that appending continues on a line boundary.
inline void drop_partial_tail(const glue_record& rec) {
    if (rec.partial_tail) std::filesystem::resize_file(rec.file, *rec.partial_tail);
}

// Reads the record (the file is not touched). A trailing partial line (a write cut short by a kill) is no
// record: `partial_tail` says where it starts, for drop_partial_tail. Any other line that is not JSON is an
// error naming file:line.
inline glue_record read_glue_record(const std::filesystem::path& file) {
    glue_record rec;
    rec.file = file;
    rec.results = std::filesystem::exists(file.parent_path() / "report.json");
    std::ifstream in(file, std::ios::binary);
    if (!in) return rec;
    std::ostringstream buf;
    buf << in.rdbuf();
    in.close();
    std::string text = buf.str();
    const std::size_t end = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    if (end < text.size()) {
        rec.partial_tail = end;
        text.resize(end);  // a partial last line is never a record
    }
    std::size_t pos = 0, line_no = 0;
    while (pos < text.size()) {
        const std::size_t nl = text.find('\n', pos);
        const std::string_view line(text.data() + pos, nl - pos);
        pos = nl + 1;
        ++line_no;
        if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
        rec.results = rec.lines = true;
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
            CRAM_THROW(file.string(), ":", line_no, ": not a JSON line (", e.what(),
                       "); the file is damaged: evaluate into another --out");
        }
        const std::string event = j.is_object() ? j.value("event", std::string()) : std::string();
        if (event == "settings" && !rec.settings) {
            rec.settings = j.value("settings", nlohmann::json::object());
            // recorded before protocols had names: the released one was the only one, so that is what ran
            if (rec.settings->is_object() && !rec.settings->contains("protocol"))
                (*rec.settings)["protocol"] = std::string(glue_protocols::released.name);
        } else if (event == "summary") {
            rec.complete = true;
        } else if (event == "run") {
            try {
                finetune_run r = run_from_json(j);
                auto key = std::make_pair(r.task, r.seed);
                rec.runs[std::move(key)] = std::move(r);
            } catch (const cram::error& e) {
                CRAM_THROW(file.string(), ":", line_no, ": ", e.what());
            }
        }
    }
    return rec;
}

// Without resume, an OUT holding results is refused; with it, results of other settings are.
inline void check_earlier_results(const glue_record& rec, const nlohmann::json& fingerprint, const glue_eval_options& o) {
    if (!rec.results) return;
    const std::string dir = o.out.string();
    if (!rec.settings) {  // a report alone, or a metrics file without its settings record
        if (!o.resume)
            CRAM_THROW("GLUE output directory ", dir, " already holds the results of an evaluation (",
                       rec.lines ? rec.file.string() : (o.out / "report.json").string(),
                       "): pass --resume to reuse what it holds, or choose another --out");
        if (rec.lines)
            CRAM_THROW("--resume: ", rec.file.string(), " has no settings record (written by an older cram, or "
                       "not a glue_metrics.jsonl): its runs cannot be checked, so it cannot be continued; evaluate "
                       "into another --out");
        return;  // only a report: nothing recorded to reuse, everything runs again
    }
    const std::vector<std::string> diff = fingerprint_differences(*rec.settings, fingerprint);
    if (!diff.empty())
        CRAM_THROW(o.resume ? "--resume: " : "", "GLUE output directory ", dir,
                   " holds the results of an evaluation with other settings, so its runs cannot be reused; differing: ",
                   join(diff, "; "), ". Evaluate into another --out", o.resume ? "" : " (or rerun with the recorded settings and --resume)");
    if (!o.resume)
        CRAM_THROW("GLUE output directory ", dir, " already holds ",
                   rec.complete ? "the complete results"
                                : "the partial results (" + std::to_string(rec.runs.size()) + " run(s) recorded)",
                   " of an evaluation with these settings: pass --resume to ",
                   rec.complete ? "reuse them and rewrite the report" : "continue it where it stopped",
                   ", or choose another --out");
}

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
//
// opts.out is locked (cram::dir_lock) for the duration. Every completed (task, seed) run is appended to
// OUT/glue_metrics.jsonl as a `run` line (run_json) behind a `settings` line (glue_fingerprint). Without
// opts.resume an OUT holding results is refused; with it, recorded runs of the same settings are taken from
// the file instead of re-run (other settings: refused, naming the differing keys). cram::stop_requested()
// is polled after every optimizer step: on a stop the run in progress is discarded and a partial report
// (report.interrupted()) is written and returned; the caller exits with exit_code_for_signal().
template <bert_config C, ops::backend Backend, class Tokenizer>
glue_report evaluate_glue(typename Backend::context& ctx, const std::vector<typename Backend::param_t>* pretrained,
                          const Tokenizer& tok, const glue_eval_options& opts) {
    namespace fs = std::filesystem;
    CRAM_CHECK(opts.seeds > 0, "seeds must be positive, got ", opts.seeds);
    CRAM_CHECK(pretrained || opts.finetune.from_scratch, "evaluate_glue needs pretrained parameters or from_scratch");
    CRAM_CHECK(fs::is_directory(opts.glue_dir), "GLUE directory ", opts.glue_dir.string(),
               " does not exist (it holds <task>/train.tsv and dev.tsv in the official layout; see docs/glue.md)");
    glue_report report;
    report.protocol = opts.protocol;
    report.deviations = protocol_deviations(opts);
    report.notes = opts.notes;
    report.settings = opts.settings;
    const auto& f = opts.finetune;
    report.settings["seeds"] = opts.seeds;
    report.settings["first_seed"] = opts.first_seed;
    report.settings["finetune"] = detail::finetune_settings(f);
    report.settings["protocol"] = std::string(opts.protocol.name);
    report.title = f.from_scratch ? "GLUE dev report (no pretraining: random encoder)" : "GLUE dev report";

    // one evaluation per output directory; what an earlier one left there is reused or refused
    const dir_lock lock(opts.out, "GLUE output directory", "cram_bert_24h glue");
    const fs::path metrics_path = opts.out / "glue_metrics.jsonl";
    const nlohmann::json fingerprint = glue_fingerprint(opts);
    const detail::glue_record earlier = detail::read_glue_record(metrics_path);
    detail::check_earlier_results(earlier, fingerprint, opts);
    detail::drop_partial_tail(earlier);  // accepted: appending starts on a line boundary

    // read and tokenize every task first: a bad file fails before hours of fine-tuning
    std::vector<const glue_task_info*> present;  // tasks with a train.tsv, in the order asked
    std::vector<task_data> data;                  // data[i] is present[i]'s (fewer when stopped while loading)
    for (const auto& name : opts.tasks) {
        const glue_task_info& info = glue_task(name);
        const fs::path train_file = opts.glue_dir / info.name / "train.tsv";
        if (!fs::exists(train_file))
            report.missing.emplace_back(info.name, "no " + train_file.string());
        else
            present.push_back(&info);
    }
    CRAM_CHECK(!present.empty(), "none of the GLUE tasks (", detail::join(opts.tasks), ") has data under ",
               opts.glue_dir.string(), " (see docs/glue.md for the layout)");
    int stop_signal = 0;
    std::int64_t total_steps = 0;
    for (const glue_task_info* info : present) {
        if ((stop_signal = stop_requested())) break;
        data.push_back(load_task(tok, opts.glue_dir, *info, f.max_len));
        const std::int64_t n = std::int64_t(training_subset(data.back().train.size(), f.max_train).size());
        std::int64_t steps = (n + f.batch - 1) / f.batch * f.epochs;
        if (f.max_steps > 0) steps = std::min(steps, f.max_steps);
        for (int k = 0; k < opts.seeds; ++k) {
            const auto r = earlier.runs.find({info->name, opts.first_seed + std::uint64_t(k)});
            if (r == earlier.runs.end()) {
                total_steps += steps;
                continue;
            }
            // a recorded run of other data (the GLUE files changed since) cannot stand in for a new one
            if (r->second.train_examples != std::size_t(n) || r->second.total_steps != steps)
                CRAM_THROW("--resume: ", metrics_path.string(), " records ", info->name, " seed ", r->first.second,
                           " trained on ", r->second.train_examples, " examples for ", r->second.total_steps,
                           " steps, but the data under ", opts.glue_dir.string(), " gives ", n, " examples and ", steps,
                           " steps: the GLUE files changed; evaluate into another --out");
        }
    }

    fs::create_directories(opts.out);
    std::ofstream metrics(metrics_path, std::ios::app | std::ios::binary);
    CRAM_CHECK(static_cast<bool>(metrics), "cannot write ", metrics_path.string());
    auto log = [&](const nlohmann::json& line) {  // one line, flushed: a kill loses at most the line being written
        metrics << line.dump() << '\n';
        metrics.flush();
        CRAM_CHECK(static_cast<bool>(metrics), "cannot write ", metrics_path.string());
    };
    if (earlier.settings)
        log({{"event", "resume"}, {"runs_recorded", earlier.runs.size()}});
    else
        log({{"event", "settings"}, {"settings", fingerprint}});

    detail::glue_progress progress(opts.quiet, opts.plain_every, total_steps);
    for (const auto& [t, why] : report.missing) progress.message("glue: " + t + " not run: " + why);
    for (const auto& d : data) {
        std::size_t dev_n = 0;
        for (const auto& s : d.dev) dev_n += s.examples.size();
        progress.message("glue: " + d.info.name + ": " + std::to_string(d.train.size()) + " train, " +
                         std::to_string(dev_n) + " dev examples" +
                         (d.train_skipped_rows ? ", " + std::to_string(d.train_skipped_rows) + " train rows skipped" : ""));
    }

    const int runs_total = int(present.size()) * opts.seeds;
    int runs_done = 0, reused = 0;
    nlohmann::json discarded;  // the run a stop cut short
    for (std::size_t ti = 0; ti < present.size(); ++ti) {
        const std::string& name = present[ti]->name;
        const task_data* d = ti < data.size() ? &data[ti] : nullptr;
        std::vector<finetune_run> runs;
        bool ran_here = false;
        for (int k = 0; k < opts.seeds; ++k) {
            const std::uint64_t seed = opts.first_seed + std::uint64_t(k);
            if (const auto r = earlier.runs.find({name, seed}); r != earlier.runs.end()) {
                runs.push_back(r->second);
                ++runs_done, ++reused;
                if (!stop_signal)
                    progress.message("glue: " + name + " run " + std::to_string(k + 1) + "/" + std::to_string(opts.seeds) +
                                     " (seed " + std::to_string(seed) + "): recorded in " + metrics_path.string() + ", not re-run");
                continue;
            }
            if (!stop_signal) stop_signal = stop_requested();
            if (stop_signal || !d) continue;  // stopped: only recorded runs count from here on
            finetune_options fo = f;
            fo.seed = seed;
            finetune_callbacks cb;
            std::int64_t steps_done = 0;
            cb.on_step = [&](const finetune_progress& p) {
                steps_done = p.step;
                progress.step(p, k, opts.seeds);
                if (opts.on_step) opts.on_step(p);
            };
            cb.on_epoch = [&](const finetune_run& run, const epoch_score& e) {
                progress.message("glue: " + run.task + " run " + std::to_string(k + 1) + "/" + std::to_string(opts.seeds) +
                                 " (seed " + std::to_string(run.seed) + ") epoch " +
                                 std::to_string(e.epoch) + ": train loss " + percent(e.train_loss, 4) + ", dev" +
                                 detail::scores_text(e.dev) + " (" + train::format_duration(e.seconds) + ")");
                log({{"event", "epoch"}, {"task", run.task}, {"seed", run.seed}, {"epoch", e.epoch}, {"steps", e.steps},
                     {"total_steps", run.total_steps}, {"train_loss", e.train_loss}, {"seconds", e.seconds},
                     {"dev", e.dev}, {"elapsed_s", progress.elapsed()}});
            };
            cb.should_stop = [&] { return (stop_signal = stop_requested()) != 0; };
            finetune_run run = finetune<C, Backend>(ctx, pretrained, *d, fo, cb);
            if (run.stopped) {
                discarded = {{"task", name}, {"seed", seed}, {"steps_done", steps_done}, {"total_steps", run.total_steps}};
                continue;
            }
            nlohmann::json line = run_json(run);
            line["event"] = "run";
            log(line);
            runs.push_back(std::move(run));
            ++runs_done;
            ran_here = true;
        }
        if (int(runs.size()) < opts.seeds) {
            report.incomplete.push_back({name, std::move(runs), opts.seeds});
            continue;
        }
        std::size_t skipped = 0;
        if (d) {
            skipped = d->train_skipped_rows;
            for (const auto& s : d->dev) skipped += s.skipped_rows;
        }
        report.tasks.push_back(summarize_task(name, std::move(runs), skipped));
        const auto& t = report.tasks.back();
        if (!ran_here) continue;  // every seed recorded earlier: its task line is in the file already
        progress.message("glue: " + t.task + " median over " + std::to_string(t.runs.size()) + " seed(s):" +
                         detail::scores_text(t.median));
        log({{"event", "task"}, {"task", t.task}, {"seeds", t.runs.size()}, {"median", t.median}});
    }
    report.notes.push_back("fine-tuning took " + train::format_duration(progress.elapsed()) +
                           (reused ? " in this invocation" : ""));
    if (reused)
        report.notes.push_back(std::to_string(reused) + " of " + std::to_string(runs_total) +
                               " runs taken from glue_metrics.jsonl, recorded by an earlier invocation with the same "
                               "settings (--resume)");
    if (stop_signal) {
        report.interruption = {stop_signal, signal_name(stop_signal), runs_done, runs_total, opts.resume_command};
        nlohmann::json line{{"event", "interrupted"}, {"signal", report.interruption.signal_name},
                            {"runs_done", runs_done}, {"runs_total", runs_total}};
        if (!discarded.is_null()) line["discarded"] = discarded;
        log(line);
        if (!discarded.is_null())
            progress.message("glue: " + report.interruption.signal_name + ": the run in progress (" +
                             discarded["task"].get<std::string>() + " seed " + std::to_string(discarded["seed"].get<std::uint64_t>()) +
                             ", step " + std::to_string(discarded["steps_done"].get<std::int64_t>()) + " of " +
                             std::to_string(discarded["total_steps"].get<std::int64_t>()) + ") is discarded; " +
                             std::to_string(runs_done) + " of " + std::to_string(runs_total) + " runs are complete");
    }
    const nlohmann::json j = report_json(report);
    if (!stop_signal)
        log({{"event", "summary"}, {"cramming", j["cramming"]}, {"leaderboard", j["leaderboard"]}});
    atomic_write_file(opts.out / "report.json", j.dump(2) + "\n");
    atomic_write_file(opts.out / "report.md", report_markdown(report));
    return report;
}

}  // namespace cram::eval
