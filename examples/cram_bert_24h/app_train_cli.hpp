// The command-line side of training shared by `train` and `run`: one option set, so both commands
// offer every training option with the same defaults and help. The work is behind train_on_device
// (cpu_train.cpp), so including this costs a command file no trainer instantiation.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "app_presets.hpp"
#include "app_train.hpp"
#include "commands.hpp"
#include "cram/train/recipe.hpp"
#include "cram/train/schedule.hpp"

namespace cram::app {

// Adds the training options to `cmd`: everything but --data and --out, whose meaning differs between
// `train` (the dataset and the run directory) and `run` (which makes the dataset and both directories).
inline void add_train_options(CLI::App* cmd, train_settings& s) {
    const std::vector<std::string> schedules(train::lr_schedule::names.begin(), train::lr_schedule::names.end());
    std::vector<std::string> recipes;
    std::string recipe_help = "Pretraining recipe, the defaults of the options below and the source of the optimizer's "
                              "betas, eps, weight decay and clipping, the masking rate and the dropout:";
    for (const auto* r : train::recipes::all) {
        recipes.emplace_back(r->name);
        recipe_help += "\n  " + std::string(r->name) + ": " + std::string(r->source) + " (preset " +
                       std::string(r->preset) + ", small: " + std::string(r->small_preset) + ")";
    }
    cmd->add_option("--budget", s.budget, "Wall-clock budget, start-up included (24h, 90m, 45s, 1h30m)")->required();
    cmd->add_option("--recipe", s.recipe, recipe_help)->check(CLI::IsMember(recipes))->capture_default_str();
    cmd->add_option("--preset", s.preset, "Model: " + preset_names_text() + " (default: the recipe's)")
        ->check(CLI::IsMember(preset_names()));
    cmd->add_option("--device", s.device, "auto, cpu or cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}))->capture_default_str();
    cmd->add_option("--micro-batch", s.micro_batch, "Sequences per forward/backward (0: fill the GPU, or a CPU default)")->capture_default_str();
    cmd->add_flag("--resume", s.resume, "Continue the newest checkpoint in --out (budget clock included)");
    cmd->add_option("--seed", s.seed, "Seed of initialisation and masking")->check(non_negative_integer())->capture_default_str();
    cmd->add_option("--lr", s.lr, "Peak learning rate (the schedule scales it), or auto: 1e-3 scaled with the derived "
                    "batch target (default: the recipe's: crammed auto, bert-original 1e-4, izsak 2e-3)");
    cmd->add_option("--schedule", s.schedule, "Learning-rate schedule over budget progress (polynomial-decay: over "
                    "sequences; default: the recipe's)")
        ->check(CLI::IsMember(schedules));
    cmd->add_option("--batch-target", s.batch_target,
                    "Sequences per optimizer step at the end of the ramp, or auto: derived from the sequences the "
                    "budget will see at the rate measured in a short warm-up (8192 for crammed's 24 hours; default: "
                    "the recipe's: crammed auto, bert-original 512, izsak 4096)");
    cmd->add_option("--ramp-end", s.ramp_end, "Budget fraction where the batch reaches --batch-target (default: the "
                    "recipe's: crammed 0.6, the others 0, a fixed batch)");
    cmd->add_option("--checkpoint-every", s.checkpoint_every,
                    "Budget time between periodic checkpoints (0 or off: only the final one; a stop signal "
                    "always writes one)")->capture_default_str();
    cmd->add_option("--keep", s.keep, "Checkpoints to keep")->capture_default_str();
    cmd->add_option("--threads", s.threads, "CPU threads (0: all cores; at most 4x the hardware threads)")
        ->check(thread_count(cram::max_cpu_threads()))->capture_default_str();
    cmd->add_option("--max-steps", s.max_steps, "Also stop after this many optimizer steps (0: budget only)")->capture_default_str();
    cmd->add_option("--val-batches", s.val_batches, "Validation micro-batches evaluated at the end (0: none)")->capture_default_str();
    cmd->add_flag("--quiet", s.quiet, "No progress lines and no summary");
    cmd->add_option("--precision", s.precision,
                    "16-bit format of the GPU's matmuls: auto (bf16 on sm_80+, fp16 on sm_70/75, fp32 on the CPU), bf16, "
                    "fp16 (dynamic loss scaling; on the CPU emulated: gradients through fp16), or fp32")
        ->check(CLI::IsMember({"auto", "bf16", "fp16", "fp32"}))->capture_default_str();
    cmd->add_option("--loss-scale", s.loss_scale, "fp16: the dynamic loss scale's starting value (halved on overflow, "
                    "doubled after 2000 clean steps)")->capture_default_str();
    cmd->add_option("--attention", s.attention,
                    "GPU attention kernels: flash (scores kept on chip; where the shape allows, else the GEMM path) "
                    "or gemm (the reference path: batched GEMMs and softmax kernels); the CPU has one path")
        ->check(CLI::IsMember({"flash", "gemm"}))->capture_default_str();
    cmd->add_option("--gemm-algorithms", s.gemm_algorithms,
                    "GPU: timed (each matmul shape's cuBLASLt candidates timed once, the fastest kept) or heuristic "
                    "(cuBLASLt's first pick)")
        ->check(CLI::IsMember({"timed", "heuristic"}))->capture_default_str();
    cmd->add_option("--layernorm", s.layernorm,
                    "GPU LayerNorm kernels: warp (a warp per row; under dropout the residual add is fused in; rows "
                    "of up to 1024) or block (the first kernels: a thread block per row)")
        ->check(CLI::IsMember({"warp", "block"}))->capture_default_str();
    cmd->add_option("--decoder", s.decoder,
                    "GPU MLM decoder loss: fused (16-bit logits whose loss and gradient one pass computes in place, "
                    "every masked row in one chunk where memory allows; vocabularies up to 65536 when a multiple of "
                    "8) or chunked (the first path: fp32 logits, 192 MiB of rows at a time)")
        ->check(CLI::IsMember({"fused", "chunked"}))->capture_default_str();
    cmd->add_option("--residual", s.residual,
                    "GPU residual stream of pre-norm blocks and its gradient: same (the activations' 16-bit type) or "
                    "fp32 (as PyTorch's autocast keeps it; with fp16, no overflow in the stream; about 3.5 GB more at "
                    "crammed_bert's micro-batch 512). Pre-norm presets only, on every device; the CPU's stream is "
                    "fp32 either way")
        ->check(CLI::IsMember({"same", "fp32"}))->capture_default_str();
    cmd->add_option("--grad-accumulation", s.grad_accumulation,
                    "How micro-batches add up: in-place (no extra memory), pairwise (a fixed tree: what N "
                    "data-parallel ranks reproduce bit for bit), or auto (pairwise under mpirun)")
        ->check(CLI::IsMember({"auto", "in-place", "pairwise"}))->capture_default_str();
    cmd->add_option("--rank-timeout", s.rank_timeout,
                    "Data-parallel (mpirun): how long a rank waits for the others before ending the job")
        ->capture_default_str();
}

}  // namespace cram::app
