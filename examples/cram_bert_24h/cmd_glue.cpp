// `cram_bert_24h glue`: the command line only. The work is behind glue_on_device (cpu_glue.cpp, and
// cuda_glue.cu on the GPU), which `run --glue-dir` calls too.
#include <memory>

#include "app_glue.hpp"
#include "app_presets.hpp"
#include "commands.hpp"
#include "cram/core/thread_pool.hpp"

namespace cram::app {

void add_glue_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("glue", "Fine-tune a pretrained checkpoint on GLUE (dev sets) and write the report");
    auto s = std::make_shared<glue_settings>();
    cmd->add_option("--checkpoint", s->checkpoint, "Trainer run directory (its newest checkpoint) or a checkpoint directory");
    cmd->add_option("--glue-dir", s->glue_dir, "GLUE data in the official layout: DIR/<task>/train.tsv, dev.tsv")->required();
    cmd->add_option("--out", s->out, "Output directory: report.md, report.json, glue_metrics.jsonl")->required();
    cmd->add_option("--tasks", s->tasks, "Comma-separated tasks (default: the 8 of the GLUE average; WNLI on request)");
    cmd->add_option("--seeds", s->seeds, "Fine-tuning seeds per task; the median is reported")->capture_default_str();
    cmd->add_option("--seed", s->seed, "First seed")->check(non_negative_integer())->capture_default_str();
    cmd->add_option("--protocol", s->protocol, "Fine-tuning protocol: released (the released code's GLUE config: "
                    "batch 16, lr 4e-5, 5 epochs) or article (the paper's text: batch 32, lr 2e-5, 5 epochs); "
                    "docs/glue.md")->check(glue_protocol_name())->capture_default_str();
    cmd->add_option("--epochs", s->epochs, "Epochs per run (default: the protocol's; another value is a deviation)");
    cmd->add_option("--batch", s->batch, "Batch size (default: the protocol's; another value is a deviation)");
    cmd->add_option("--lr", s->lr, "Peak learning rate (default: the protocol's; another value is a deviation)");
    cmd->add_option("--clip", s->clip, "Clip the global gradient norm here (protocol: none = 0)")->capture_default_str();
    cmd->add_option("--max-train", s->max_train, "Use a fixed subset of N training examples per task (0: all; a "
                    "protocol deviation, stated in the report)")->capture_default_str();
    cmd->add_option("--max-steps", s->max_steps, "Stop each run after N optimizer steps (0: no cap; a protocol "
                    "deviation, stated in the report)")->capture_default_str();
    cmd->add_flag("--from-scratch", s->from_scratch, "Random encoder instead of the checkpoint: the no-pretraining baseline");
    cmd->add_option("--preset", s->preset, "Model preset (default: the checkpoint's)")
        ->check(CLI::IsMember(preset_names()));
    cmd->add_option("--vocab", s->vocab, "vocab.txt of the pretraining dataset (default: found from the run)");
    cmd->add_option("--device", s->device, "auto, cpu or cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}))
        ->capture_default_str();
    cmd->add_option("--precision", s->precision, "On the GPU: auto (bf16 on sm_80+, fp16 with dynamic loss scaling "
                    "below), bf16 or fp16; the CPU fine-tunes in fp32")
        ->check(CLI::IsMember({"auto", "bf16", "fp16", "fp32"}))->capture_default_str();
    cmd->add_option("--attention", s->attention, "GPU attention kernels: flash (where the shape allows, else the GEMM "
                    "path) or gemm (the reference path)")
        ->check(CLI::IsMember({"flash", "gemm"}))->capture_default_str();
    cmd->add_option("--gemm-algorithms", s->gemm_algorithms, "GPU: timed (each matmul shape's cuBLASLt candidates "
                    "timed once, the fastest kept) or heuristic (cuBLASLt's first pick)")
        ->check(CLI::IsMember({"timed", "heuristic"}))->capture_default_str();
    cmd->add_option("--layernorm", s->layernorm, "GPU LayerNorm kernels: warp (a warp per row; rows of up to 1024) "
                    "or block (the first kernels: a thread block per row)")
        ->check(CLI::IsMember({"warp", "block"}))->capture_default_str();
    cmd->add_option("--threads", s->threads, "CPU threads (0: all cores; at most 4x the hardware threads)")
        ->check(thread_count(cram::max_cpu_threads()))->capture_default_str();
    cmd->add_flag("--quiet", s->quiet, "No progress lines; the report is still written");
    cmd->add_flag("--resume", s->resume, "Continue the evaluation recorded in --out (interrupted, e.g. by Ctrl-C or "
                  "SIGTERM): runs done under the same settings are reused, not re-run");
    cmd->callback([s] {
        const int rc = glue_on_device(*s);
        if (rc != 0) throw CLI::RuntimeError(rc);
    });
}

}  // namespace cram::app
