// A training run's checkpoints as the trainer sees them: the configuration they must match to be resumed
// (and its fingerprint), whether a periodic checkpoint is due, resuming from the newest complete one with a
// message that names every setting that differs, refusing to mix a fresh run into an old one's directory,
// and writing (atomically, with retention) through checkpoint.hpp. Also the counters a checkpoint restores.
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <set>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/model/parameters.hpp"
#include "cram/core/file_io.hpp"
#include "cram/train/checkpoint.hpp"
#include "cram/train/json_fields.hpp"

namespace cram::train {

// Where a run stands: what state.json records and a resume restores (with the parameters, moments and clock).
struct training_counters {
    std::int64_t step = 0;         // optimizer steps applied
    std::int64_t micro_steps = 0;  // micro-batches run, including those of skipped steps
    std::int64_t skipped = 0;      // optimizer steps skipped for a non-finite loss or gradient
    std::int64_t sequences = 0;    // sequences trained on
    double last_loss = NAN;        // loss of the last applied step
    int accumulation = 1;          // micro-batches per optimizer step at the last step

    // The counters of a verified state.json; a missing or wrong-typed field is checkpoint damage.
    static training_counters from_state(const nlohmann::json& st, const std::filesystem::path& file) {
        return detail::as_damage([&] {
            const json_fields f(st, file);
            training_counters c;
            c.step = f.integer("step", 0);
            c.micro_steps = f.integer("micro_steps", 0);
            c.skipped = f.integer_or("skipped_steps", 0, 0);
            c.sequences = f.integer_or("sequences", 0, 0);
            c.last_loss = f.number_or_nan("loss");
            c.accumulation = int(f.integer_or("accumulation", 1, 1));
            return c;
        });
    }
};

// Every field a resume reads from state.json, checked before any tensor is: a missing or wrong-typed one
// is checkpoint damage (so an older checkpoint is tried), reported with the file and the field.
inline void check_training_state(const checkpoint_info& info) {
    (void)training_counters::from_state(info.state, info.state_file());
    const json_fields f(info.state, info.state_file());
    detail::as_damage([&] {
        (void)f.integer("data_position", 0);
        (void)f.number("elapsed_s");
        (void)f.string_or("config_fingerprint", "");
    });
}

class run_checkpoints {
public:
    // `out` empty: a run without files (no checkpoints are written or read).
    run_checkpoints(const std::filesystem::path& out, nlohmann::json config, double every_seconds, int keep)
        : dir_(out.empty() ? std::filesystem::path() : out / "checkpoints"), config_(std::move(config)),
          fingerprint_(config_fingerprint(config_)), every_(every_seconds), keep_(keep) {
        CRAM_CHECK(keep >= 1, "--keep must be at least 1, got ", keep);
    }

    bool enabled() const { return !dir_.empty(); }
    const nlohmann::json& config() const { return config_; }
    const std::string& fingerprint() const { return fingerprint_; }

    // The newest checkpoint that verifies, checked to come from this configuration before any tensor is read;
    // damaged newer ones are set aside (this process owns the run). Throws saying what to do when there is
    // none, or when the newest readable one was written by other settings (every differing key named).
    template <class T>
    loaded_checkpoint<T> resume(const param_layout& layout) {
        CRAM_CHECK(enabled(), "--resume needs a run directory (--out)");
        const auto check_config = [&](const checkpoint_info& info) {
            check_training_state(info);
            const json_fields f(info.state, info.state_file());
            const std::string saved = detail::as_damage([&] { return f.string_or("config_fingerprint", ""); });
            if (saved == fingerprint_) return;
            const auto diffs = config_differences(info.config(), config_);
            std::string what;
            for (const auto& d : diffs) what += "\n  " + d;
            CRAM_THROW("--resume: checkpoint ", info.dir.string(),
                       " was written by a different training configuration; differences:",
                       diffs.empty() ? std::string("\n  (fingerprint only)") : what,
                       "\nrun with the checkpoint's settings, or start a new run in another --out directory");
        };
        auto loaded = load_latest_checkpoint<T>(dir_, layout, checkpoint_part::model_and_optimizer,
                                                on_damage::set_aside, check_config);
        if (!loaded)
            CRAM_THROW("--resume: no usable checkpoint under ", dir_.string(),
                       " (start without --resume, or point --out at the run to continue)");
        verified_.insert(loaded->dir);
        return std::move(*loaded);
    }

    // A fresh run must not write its checkpoints among an earlier run's, nor scatter its files into a
    // directory that is not a run (a typo in --out should not overwrite someone's files).
    void refuse_existing(const std::filesystem::path& out) const {
        namespace fs = std::filesystem;
        if (!enabled()) return;
        if (!list_checkpoints(dir_).empty())
            CRAM_THROW("run directory ", out.string(), " already holds checkpoints: pass --resume to continue it, "
                       "or choose a new --out");
        std::error_code ec;
        std::vector<std::string> foreign;
        for (const auto& e : fs::directory_iterator(out, ec)) {
            const std::string name = e.path().filename().string();
            if (!is_run_entry(name)) foreign.push_back(name);
        }
        if (!foreign.empty()) {
            std::string names;
            for (std::size_t i = 0; i < foreign.size() && i < 5; ++i) names += (i ? ", " : "") + foreign[i];
            if (foreign.size() > 5) names += ", ...";
            CRAM_THROW("--out ", out.string(), " is not empty and is not a cram run (it holds ", names,
                       "): choose a new or empty directory, so that no file of yours is overwritten");
        }
    }

    // The names a run directory holds (a fresh run may reuse a directory with only these).
    static bool is_run_entry(const std::string& name) {
        return name == "checkpoints" || name == "metrics.jsonl" || name == "loss.svg" || name == ".cram-lock" ||
               is_temp_name(name);
    }

    // Periodic checkpoints: due when `every` seconds of budget passed since the last one (or the start).
    void mark(double elapsed) { last_mark_ = elapsed; }
    bool due(double elapsed) const { return enabled() && every_ > 0 && elapsed - last_mark_ >= every_; }

    // Writes step `step` whole (see save_checkpoint; keeps the newest `keep` verified) and returns its
    // directory; nothing without a run directory. A second save of the same step (the final one right after
    // a periodic one) reuses the tensor files it wrote.
    template <class T>
    std::filesystem::path save(std::int64_t step, const param_layout& layout, const T* params, const T* m, const T* v,
                               const nlohmann::json& state) {
        if (!enabled()) return {};
        last_ = save_checkpoint(dir_, step, layout, params, m, v, state, keep_, {{"cram.step", std::to_string(step)}},
                                &last_, &verified_);
        return last_.dir;
    }

    std::vector<std::filesystem::path> list() const {
        return enabled() ? list_checkpoints(dir_) : std::vector<std::filesystem::path>{};
    }

private:
    std::filesystem::path dir_;
    nlohmann::json config_;
    std::string fingerprint_;
    double every_;
    int keep_;
    double last_mark_ = 0;
    saved_checkpoint last_;  // what this process wrote last (its tensor files may be lent to a same-step save)
    std::set<std::filesystem::path> verified_;  // checkpoints this process wrote or read back: retention trusts them
};

}  // namespace cram::train
