// `cram_bert_24h glue`: the command line and the device choice (the work is in app_glue.hpp and
// cram/eval/glue.hpp). Also installs the GLUE step that `cram_bert_24h run --glue-dir` ends with.
#include <memory>

#include "app_glue.hpp"
#include "app_run.hpp"
#include "commands.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/cpu/backend.hpp"
#include "device_dispatch.hpp"

namespace cram::app {

inline int glue_on_device(const glue_settings& s) {
    if (resolve_device(s.device) == device_kind::cuda) {
        auto& entry = cuda_entry<glue_settings>();
        CRAM_CHECK(static_cast<bool>(entry), "--device cuda: this build has no CUDA GLUE entry (cuda_glue.cu was not "
                   "compiled); use --device cpu");
        return entry(s);
    }
    if (s.threads > 0) cram::set_cpu_threads(s.threads);
    cpu::backend<float>::context ctx{s.threads};
    return run_glue<cpu::backend<float>>(s, ctx);
}

}  // namespace cram::app

namespace {

const bool registered = cram::app::register_command(40, [](CLI::App& app) {
    auto* cmd = app.add_subcommand("glue", "Fine-tune a pretrained checkpoint on GLUE (dev sets) and write the report");
    auto s = std::make_shared<cram::app::glue_settings>();
    cmd->add_option("--checkpoint", s->checkpoint, "Trainer run directory (its newest checkpoint) or a checkpoint directory");
    cmd->add_option("--glue-dir", s->glue_dir, "GLUE data in the official layout: DIR/<task>/train.tsv, dev.tsv")->required();
    cmd->add_option("--out", s->out, "Output directory: report.md, report.json, glue_metrics.jsonl")->required();
    cmd->add_option("--tasks", s->tasks, "Comma-separated tasks (default: the 8 of the GLUE average; WNLI on request)");
    cmd->add_option("--seeds", s->seeds, "Fine-tuning seeds per task; the median is reported")->capture_default_str();
    cmd->add_option("--seed", s->seed, "First seed")->capture_default_str();
    cmd->add_option("--epochs", s->epochs, "Epochs per run (protocol: 5)")->capture_default_str();
    cmd->add_option("--batch", s->batch, "Batch size (protocol: 16)")->capture_default_str();
    cmd->add_option("--lr", s->lr, "Peak learning rate (protocol: 4e-5)")->capture_default_str();
    cmd->add_option("--clip", s->clip, "Clip the global gradient norm here (protocol: none = 0)")->capture_default_str();
    cmd->add_option("--max-train", s->max_train, "Use a fixed subset of N training examples per task (0: all; a "
                    "protocol deviation, stated in the report)")->capture_default_str();
    cmd->add_option("--max-steps", s->max_steps, "Stop each run after N optimizer steps (0: no cap; a protocol "
                    "deviation, stated in the report)")->capture_default_str();
    cmd->add_flag("--from-scratch", s->from_scratch, "Random encoder instead of the checkpoint: the no-pretraining baseline");
    cmd->add_option("--preset", s->preset, "Model preset (default: the checkpoint's)")
        ->check(CLI::IsMember({"crammed_bert", "bert_base", "crammed_mini", "crammed_tiny"}));
    cmd->add_option("--vocab", s->vocab, "vocab.txt of the pretraining dataset (default: found from the run)");
    cmd->add_option("--device", s->device, "auto, cpu or cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}))
        ->capture_default_str();
    cmd->add_option("--threads", s->threads, "CPU threads (0: all cores)")->capture_default_str();
    cmd->add_flag("--quiet", s->quiet, "No progress lines; the report is still written");
    cmd->callback([s] {
        const int rc = cram::app::glue_on_device(*s);
        if (rc != 0) throw CLI::RuntimeError(rc);
    });
});

// `run --glue-dir` ends here: the protocol's settings on every task found, the report under OUT/glue.
const bool hooked = [] {
    cram::app::run_glue_hook() = [](const cram::app::glue_request& r) {
        cram::app::glue_settings s;
        s.checkpoint = r.checkpoint.empty() ? r.run_dir : r.checkpoint;
        s.glue_dir = r.glue_dir;
        s.out = r.out;
        s.vocab = r.data_dir / "vocab.txt";
        s.preset = r.preset;
        s.device = r.device;
        s.seed = r.seed;
        if (!r.tasks.empty()) s.tasks = r.tasks;
        if (r.seeds > 0) s.seeds = r.seeds;
        if (r.epochs > 0) s.epochs = r.epochs;
        s.max_train = r.max_train;
        return cram::app::glue_on_device(s);
    };
    return true;
}();

}  // namespace
