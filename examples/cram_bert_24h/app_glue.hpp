// The settings of `cram_bert_24h glue` (also filled by `run --glue-dir`) and the entry points that take
// them. Light on purpose: the command files include this; only cpu_glue.cpp and cuda_glue.cu include the
// evaluation itself (app_glue_run.hpp), so each backend compiles it once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace cram::app {

struct glue_settings {
    std::filesystem::path checkpoint;  // a trainer run directory (newest checkpoint) or one checkpoint directory
    std::filesystem::path glue_dir, out, vocab;
    std::string tasks;   // comma-separated; empty: the 8 tasks of the GLUE average
    std::string preset;  // empty: the checkpoint's
    std::string device = "auto";
    std::string precision = "auto";  // the GPU's 16-bit format: auto (bf16 on sm_80+, fp16 below), bf16 or fp16
    std::string attention = "flash";  // GPU: flash (where the shape allows) or gemm, the reference path
    std::string gemm_algorithms = "timed";  // GPU: timed (fastest cuBLASLt candidate per shape) or heuristic
    std::string layernorm = "warp";         // GPU: warp (a warp per row) or block, the first kernels
    int seeds = 5;
    // the fine-tuning protocol by name (cram/eval/glue_protocol.hpp); epochs, batch and lr default to its
    // values, and one set here overrides it (the report lists it as a deviation)
    std::string protocol = "released";
    std::optional<int> epochs, batch;
    std::optional<float> lr;
    float clip = 0.0f;
    std::size_t max_train = 0;
    std::int64_t max_steps = 0;
    bool from_scratch = false;
    int threads = 0;
    std::uint64_t seed = 0;
    bool quiet = false;
    // Reuse the runs OUT/glue_metrics.jsonl records under the same settings (an interrupted evaluation
    // continues where it stopped); without it an OUT holding results is refused.
    bool resume = false;
    std::string resume_command = "`cram_bert_24h glue ... --resume` (the same options)";  // named when interrupted
};

// Evaluates on the device the settings ask for (cpu_glue.cpp). Returns the exit code: 0, or 128 + the
// signal when SIGINT, SIGTERM or SIGHUP interrupted it (a partial report is written; `resume` continues).
int glue_on_device(const glue_settings& s);

// The GPU evaluation (cuda_glue.cu; no_cuda.cpp's stand-in throws).
int cuda_glue(const glue_settings& s);

}  // namespace cram::app
