// `cram_bert_24h plan`: what a training run will do, before it runs: the throughput and where it comes from,
// the micro-batch and its memory, the batch target and learning rate the budget-scaled recipe derives, the
// optimizer steps, tokens, passes over the dataset, checkpoint times, the batch and learning-rate curve, the
// GPU-hours and, for the fitted CPU presets, the predicted final loss. On this machine's device (estimated from
// the tables in app_plan.hpp, or timed with --measure) or on a named GPU class (--gpu). --json for scripts.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "app_plan.hpp"
#include "app_train.hpp"
#include "app_train_cli.hpp"
#include "commands.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/data/mlm_source.hpp"
#include "cram/model/memory_plan.hpp"
#include "cram/train/metrics.hpp"
#include "device_dispatch.hpp"

namespace cram::app {

namespace {

struct plan_args {
    train_settings s;
    std::string gpu;
    bool measure = false, json = false;
    int measure_steps = 5;
};

// The dataset's training sequences and sequence length (0 sequences without --data).
void read_dataset(const train_settings& s, plan_context& c) {
    if (s.data.empty()) return;
    namespace fs = std::filesystem;
    const auto summary = data::read_dataset_summary(fs::path(s.data));
    c.seq_len = summary.value("seq_len", 128);
    c.dataset = s.data;
    if (summary.contains("splits") && summary["splits"].contains("train"))
        c.dataset_sequences = summary["splits"]["train"].value("sequences", std::int64_t{0});
    CRAM_CHECK(c.dataset_sequences > 0, "--data ", s.data, ": ", data::dataset_summary_name, " lists no training sequences");
}

void plan_command(plan_args& a) {
    auto& s = a.s;
    resolve_recipe(s);
    train::parse_duration(s.budget);
    find_preset(s.preset);
    batch_target_setting(s);
    lr_setting(s);
    schedule_setting(s);
    checkpoint_interval(s);
    const bool fp32_residual = residual_setting(s);
    CRAM_CHECK(a.gpu.empty() || !a.measure, "--measure times this machine; it cannot be combined with --gpu ", a.gpu);
    CRAM_CHECK(a.measure_steps >= 2 && a.measure_steps <= 1000, "--measure-steps must be 2 to 1000, got ", a.measure_steps);
    if (!s.data.empty() && !std::filesystem::is_directory(s.data))
        CRAM_THROW("--data ", s.data, ": no such directory (a dataset written by `cram_bert_24h prepare`)");
    const bert_config& config = find_preset(s.preset).config;

    plan_context c;
    read_dataset(s, c);
    throughput rate;
    if (!a.gpu.empty()) {
        const gpu_class& g = find_gpu_class(a.gpu);
        c.device = "gpu class " + std::string(g.name);
        c.gpu = true;
        rate = estimate_gpu(g, config, c.seq_len);
        // the GPU layout when this build has it; otherwise the CPU's fp32 activations bound it from above
        memory_need m;
        if (cuda_compiled()) {
            m = cuda_memory_need(s.preset, c.seq_len, fp32_residual);
            if (fp32_residual) c.memory_note = "the residual stream in fp32 (--residual fp32)";
        } else {
            m = cpu_memory_need(s.preset, c.seq_len);
            c.memory_note = "fp32 upper bound: this build has no CUDA backend to count its bf16 layout";
        }
        c.bytes_per_sequence = m.per_sequence;
        c.fixed_bytes = m.fixed;
        if (s.micro_batch == 0)
            s.micro_batch = pick_micro_batch(std::size_t(g.memory_gib * (1ull << 30)), std::size_t(g.memory_gib * (1ull << 30)),
                                             m.per_sequence, m.fixed, 8, 4096, 0.92, true)
                                .micro_batch;
    } else {
        const device_kind dev = resolve_device(s.device);
        if (dev == device_kind::cuda) {
            const auto info = cuda_probe();
            c.device = "cuda (" + info.name + ")";
            c.gpu = true;
            if (s.micro_batch == 0) s.micro_batch = cuda_pick_micro_batch(s.preset, c.seq_len, fp32_residual);
            const memory_need m = cuda_memory_need(s.preset, c.seq_len, fp32_residual);
            if (fp32_residual) c.memory_note = "the residual stream in fp32 (--residual fp32)";
            c.bytes_per_sequence = m.per_sequence;
            c.fixed_bytes = m.fixed;
            const double peak = train::known_peak_flops(info.name);
            rate = estimate_gpu(gpu_class{"this GPU", peak > 0 ? peak : find_gpu_class("a100").peak_flops, 0}, config,
                                c.seq_len);
            if (peak <= 0) rate.source += "; this GPU's peak is not known by name: an A100's assumed";
        } else {
            if (s.threads > 0) cram::set_cpu_threads(s.threads);
            c.device = "cpu";
            c.threads = cram::cpu_threads();
            if (s.micro_batch == 0) s.micro_batch = find_preset(s.preset).cpu_micro_batch;
            const memory_need m = cpu_memory_need(s.preset, c.seq_len);
            c.bytes_per_sequence = m.per_sequence;
            c.fixed_bytes = m.fixed;
            rate = estimate_cpu(s.preset, config, c.seq_len, c.threads);
        }
        if (a.measure) {
            CRAM_CHECK(c.seq_len == 128, "--measure times 128-token sequences; this dataset has ", c.seq_len);
            if (!a.json) std::fprintf(stderr, "plan: timing %d optimizer steps of %d sequences...\n", a.measure_steps, s.micro_batch);
            const measured_rate m = measure_on_device(s, a.measure_steps);
            rate.sequences_per_s = m.sequences_per_s;
            rate.startup_s = m.startup_s;
            rate.measured = true;
            char buf[160];
            std::snprintf(buf, sizeof buf, "measured here: %d optimizer steps of one micro-batch, the first untimed",
                          m.micro_steps);
            rate.source = buf;
        }
    }
    const plan_report r = make_plan(s, c, rate);
    if (a.json) {
        std::printf("%s\n", r.to_json().dump(2).c_str());
    } else {
        print_plan(stdout, r);
    }
}

}  // namespace

void add_plan_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("plan", "Say what a training run will do: throughput, steps, batch ramp, learning "
                                           "rate, passes over the data, checkpoints, memory, predicted loss");
    auto a = std::make_shared<plan_args>();
    cmd->add_option("--data", a->s.data, "Dataset directory written by `prepare` (for the passes over the data)");
    add_train_options(cmd, a->s);
    // train's options that say nothing about a plan
    for (const char* name : {"--resume", "--seed", "--keep", "--max-steps", "--val-batches", "--quiet"})
        cmd->remove_option(cmd->get_option(name));
    std::vector<std::string> classes;
    for (const auto& g : gpu_classes) classes.emplace_back(g.name);
    cmd->add_option("--gpu", a->gpu, "Plan for a GPU class instead of this machine (" + gpu_class_names() + ")")
        ->check(CLI::IsMember(classes));
    cmd->add_flag("--measure", a->measure, "Time a few optimizer steps on this machine's device instead of estimating");
    cmd->add_option("--measure-steps", a->measure_steps, "Optimizer steps --measure times")->capture_default_str();
    cmd->add_flag("--json", a->json, "Print the plan as JSON");
    cmd->callback([a] { plan_command(*a); });
}

}  // namespace cram::app
