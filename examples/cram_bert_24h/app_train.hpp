// The app's training settings, shared by `train`, `run` and both backends, and the entry points that
// take them. Light on purpose (no trainer, no model): the command files include this; only cpu_train.cpp
// and cuda_train.cu include the trainer itself (app_train_run.hpp), so each backend compiles it once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "app_presets.hpp"
#include "cram/core/error.hpp"
#include "cram/train/budget.hpp"
#include "cram/train/schedule.hpp"

namespace cram::app {

struct train_settings {
    std::string data, out;
    std::string budget = "24h";
    std::string preset = "crammed_bert";
    std::string device = "auto";
    std::string schedule = "budget-triangle2";
    int micro_batch = 0;          // 0: pick for the device
    int batch_target = 8192;
    double ramp_end = 0.6;
    float lr = 1e-3f;
    std::uint64_t seed = 0;
    bool resume = false;
    std::string checkpoint_every = "30m";
    int keep = 3;
    int threads = 0;
    std::int64_t max_steps = 0;
    int val_batches = 8;
    bool quiet = false;
    double peak_flops = 0;        // filled by the device side when it knows the peak
    double start_time = 0;        // steady_seconds() when the command began: start-up counts
};

// Vocabulary size of a preset by name (for messages and for `run`, which prepares a matching dataset).
inline int preset_vocab(const std::string& preset) { return find_preset(preset).config.vocab; }

// Checks the settings that do not need the dataset; throws with what to change.
inline void validate_settings(const train_settings& s) {
    namespace fs = std::filesystem;
    CRAM_CHECK(!s.data.empty(), "--data is required: a directory written by `cram_bert_24h prepare`");
    if (!fs::is_directory(s.data))
        CRAM_THROW("--data ", s.data, ": no such directory (make one with `cram_bert_24h prepare --corpus FILE... --out ",
                   s.data, "`)");
    CRAM_CHECK(!s.out.empty(), "--out is required: the run directory for checkpoints and metrics");
    find_preset(s.preset);  // throws on an unknown name
    train::lr_schedule::parse(s.schedule);
    train::parse_duration(s.budget);
    train::parse_duration(s.checkpoint_every);
    CRAM_CHECK(s.micro_batch >= 0, "--micro-batch must be positive (or 0 to pick one), got ", s.micro_batch);
    CRAM_CHECK(s.batch_target > 0, "--batch-target must be positive, got ", s.batch_target);
    CRAM_CHECK(s.ramp_end >= 0 && s.ramp_end <= 1, "--ramp-end is a budget fraction in [0, 1], got ", s.ramp_end);
    CRAM_CHECK(s.lr > 0, "--lr must be positive, got ", s.lr);
    CRAM_CHECK(s.keep >= 1, "--keep must be at least 1, got ", s.keep);
}

// Trains on the device the settings ask for (cpu_train.cpp); s.start_time must already be set. Returns
// the exit code.
int train_on_device(train_settings s);

// The GPU trainer (cuda_train.cu; no_cuda.cpp's stand-in throws). s.micro_batch is already resolved.
int cuda_train(const train_settings& s);

}  // namespace cram::app
