// The command-line side of training shared by `train` and `run`: the common options and the device
// choice (CPU here; the CUDA entry registered by cuda_train.cu in a GPU build).
#pragma once

#include <CLI/CLI.hpp>

#include "app_train.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/cpu/backend.hpp"
#include "device_dispatch.hpp"

namespace cram::app {

// Adds the options shared by `train` and `run` (everything but --data).
inline void add_train_options(CLI::App* cmd, train_settings& s) {
    cmd->add_option("--out", s.out, "Run directory: checkpoints/, metrics.jsonl, loss.svg")->required();
    cmd->add_option("--budget", s.budget, "Wall-clock budget, start-up included (24h, 90m, 45s, 1h30m)")->required();
    cmd->add_option("--preset", s.preset, "Model: crammed_bert, bert_base, crammed_mini, crammed_tiny")
        ->check(CLI::IsMember({"crammed_bert", "bert_base", "crammed_mini", "crammed_tiny"}))
        ->capture_default_str();
    cmd->add_option("--device", s.device, "auto, cpu or cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}))->capture_default_str();
    cmd->add_option("--micro-batch", s.micro_batch, "Sequences per forward/backward (0: fill the GPU, or a CPU default)")->capture_default_str();
    cmd->add_flag("--resume", s.resume, "Continue the newest checkpoint in --out (budget clock included)");
    cmd->add_option("--seed", s.seed, "Seed of initialisation and masking")->capture_default_str();
    cmd->add_option("--lr", s.lr, "Peak learning rate (the schedule scales it)")->capture_default_str();
    cmd->add_option("--schedule", s.schedule, "Learning-rate schedule over budget progress")
        ->check(CLI::IsMember({"budget-triangle2", "one-cycle", "linear", "cosine"}))->capture_default_str();
    cmd->add_option("--batch-target", s.batch_target, "Sequences per optimizer step at the end of the ramp")->capture_default_str();
    cmd->add_option("--ramp-end", s.ramp_end, "Budget fraction where the batch reaches --batch-target")->capture_default_str();
    cmd->add_option("--checkpoint-every", s.checkpoint_every, "Budget time between periodic checkpoints")->capture_default_str();
    cmd->add_option("--keep", s.keep, "Checkpoints to keep")->capture_default_str();
    cmd->add_option("--threads", s.threads, "CPU threads (0: all cores)")->capture_default_str();
    cmd->add_option("--max-steps", s.max_steps, "Also stop after this many optimizer steps (0: budget only)")->capture_default_str();
    cmd->add_option("--val-batches", s.val_batches, "Validation micro-batches evaluated at the end (0: none)")->capture_default_str();
    cmd->add_flag("--quiet", s.quiet, "No progress lines and no summary");
}

// Runs training on the device the settings ask for; s.start_time must already be set.
inline int train_on_device(train_settings s) {
    validate_settings(s);
    const device_kind dev = resolve_device(s.device);
    if (dev == device_kind::cuda) {
        auto& entry = cuda_entry<train_settings>();
        CRAM_CHECK(static_cast<bool>(entry), "--device cuda: this build has the CUDA device probe but no CUDA "
                   "trainer entry (cuda_train.cu was not compiled); use --device cpu");
        if (s.micro_batch == 0) s.micro_batch = cuda().pick_micro_batch(s.preset, 128);
        return entry(s);
    }
    if (s.threads > 0) cram::set_cpu_threads(s.threads);
    if (s.micro_batch == 0) s.micro_batch = default_cpu_micro_batch(s.preset);
    cpu::backend<float>::context ctx{s.threads};
    return run_training<cpu::backend<float>>(s, ctx);
}

}  // namespace cram::app
