// A training run's checkpoints as the trainer sees them: the configuration they must match to be resumed
// (and its fingerprint), whether a periodic checkpoint is due, resuming from the newest complete one with a
// message that names every setting that differs, refusing to mix a fresh run into an old one's directory,
// and writing (atomically, with retention) through checkpoint.hpp. Also the counters a checkpoint restores.
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/model/parameters.hpp"
#include "cram/train/checkpoint.hpp"

namespace cram::train {

// Where a run stands: what state.json records and a resume restores (with the parameters, moments and clock).
struct training_counters {
    std::int64_t step = 0;         // optimizer steps applied
    std::int64_t micro_steps = 0;  // micro-batches run, including those of skipped steps
    std::int64_t skipped = 0;      // optimizer steps skipped for a non-finite loss or gradient
    std::int64_t sequences = 0;    // sequences trained on
    double last_loss = NAN;        // loss of the last applied step
    int accumulation = 1;          // micro-batches per optimizer step at the last step

    static training_counters from_state(const nlohmann::json& st) {
        training_counters c;
        c.step = st.at("step").get<std::int64_t>();
        c.micro_steps = st.at("micro_steps").get<std::int64_t>();
        c.skipped = st.value("skipped_steps", std::int64_t{0});
        c.sequences = st.value("sequences", std::int64_t{0});
        c.last_loss = st.contains("loss") && st["loss"].is_number() ? st["loss"].get<double>() : NAN;
        return c;
    }
};

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

    // The newest complete checkpoint, checked to come from this configuration; throws saying what to do when
    // there is none or it was written by other settings (every differing key named).
    template <class T>
    loaded_checkpoint<T> resume(const param_layout& layout) const {
        CRAM_CHECK(enabled(), "--resume needs a run directory (--out)");
        auto loaded = load_latest_checkpoint<T>(dir_, layout);
        if (!loaded)
            CRAM_THROW("--resume: no complete checkpoint under ", dir_.string(),
                       " (start without --resume, or point --out at the run to continue)");
        const auto& st = loaded->state;
        if (st.value("config_fingerprint", std::string()) != fingerprint_) {
            const auto diffs = config_differences(st.value("config", nlohmann::json::object()), config_);
            std::string what;
            for (const auto& d : diffs) what += "\n  " + d;
            CRAM_THROW("--resume: checkpoint ", loaded->dir.string(),
                       " was written by a different training configuration; differences:",
                       diffs.empty() ? std::string("\n  (fingerprint only)") : what,
                       "\nrun with the checkpoint's settings, or start a new run in another --out directory");
        }
        return std::move(*loaded);
    }

    // A fresh run must not write its checkpoints among an earlier run's.
    void refuse_existing(const std::filesystem::path& out) const {
        if (enabled() && !list_checkpoints(dir_).empty())
            CRAM_THROW("run directory ", out.string(), " already holds checkpoints: pass --resume to continue it, "
                       "or choose a new --out");
    }

    // Periodic checkpoints: due when `every` seconds of budget passed since the last one (or the start).
    void mark(double elapsed) { last_ = elapsed; }
    bool due(double elapsed) const { return enabled() && every_ > 0 && elapsed - last_ >= every_; }

    // Writes step `step` (atomically; keeps the newest `keep`) and returns its directory; nothing without a run
    // directory.
    template <class T>
    std::filesystem::path save(std::int64_t step, const param_layout& layout, const T* params, const T* m, const T* v,
                               const nlohmann::json& state) const {
        if (!enabled()) return {};
        return save_checkpoint(dir_, step, layout, params, m, v, state, keep_, {{"cram.step", std::to_string(step)}});
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
    double last_ = 0;
};

}  // namespace cram::train
