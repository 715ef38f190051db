// run_glue<Backend>: `cram_bert_24h glue` written once over the backend (cpu_glue.cpp and cuda_glue.cu
// instantiate it, one translation unit each): finds the checkpoint, its preset and the pretraining
// vocabulary, then runs cram::eval::evaluate_glue (cram/eval/glue.hpp) and prints the report.
#pragma once

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "app_glue.hpp"
#include "app_presets.hpp"
#include "cram/core/error.hpp"
#include "cram/core/fp16.hpp"
#include "cram/core/signals.hpp"
#include "cram/data/wordpiece.hpp"
#include "cram/eval/glue.hpp"
#include "cram/train/checkpoint.hpp"
#include "cram/train/precision.hpp"

namespace cram::app {

namespace detail {

inline std::vector<std::string> split_list(const std::string& list) {
    std::vector<std::string> out;
    std::stringstream ss(list);
    for (std::string t; std::getline(ss, t, ',');)
        if (!t.empty()) out.push_back(t);
    return out;
}

// The vocabulary the checkpoint was pretrained with: --vocab, else the dataset directory the trainer
// recorded in the checkpoint's state ("run": {"data_dir": ...}), else RUN/vocab.txt, else `run`'s layout
// OUT/data/vocab.txt next to OUT/run.
inline std::filesystem::path find_vocab(const glue_settings& s, const std::filesystem::path& run_dir,
                                        const nlohmann::json& state) {
    namespace fs = std::filesystem;
    if (!s.vocab.empty()) return s.vocab;
    std::vector<fs::path> candidates;
    const auto run = state.value("run", nlohmann::json::object());
    if (run.is_object() && run.contains("data_dir") && run["data_dir"].is_string())
        candidates.push_back(fs::path(run["data_dir"].get<std::string>()) / "vocab.txt");
    candidates.push_back(run_dir / "vocab.txt");
    candidates.push_back(run_dir.parent_path() / "data" / "vocab.txt");
    for (const auto& c : candidates)
        if (fs::exists(c)) return c;
    std::string tried;
    for (const auto& c : candidates) {
        tried += ' ';  // appended in two steps: `" " + path` trips GCC 12's -Wrestrict false positive
        tried += c.string();
    }
    CRAM_THROW("no --vocab given and no vocab.txt found for checkpoint ", run_dir.string(), " (tried", tried,
               "): pass --vocab DATASET/vocab.txt, the dataset the checkpoint was pretrained on");
}

template <bert_config C, class Backend>
int glue_with_preset(const glue_settings& s, typename Backend::context& ctx, const std::filesystem::path& ckpt) {
    const data::wordpiece tok = data::wordpiece::load(s.vocab);
    CRAM_CHECK(tok.vocab_size() == C.vocab, "vocabulary ", s.vocab.string(), " has ", tok.vocab_size(),
               " tokens, preset ", s.preset, " has ", C.vocab, ": pass the --vocab the checkpoint was pretrained with");
    std::vector<typename Backend::param_t> params;
    std::filesystem::path used = ckpt;
    if (!s.from_scratch) {
        // verified (checksums, finite values); for a run directory the newest good checkpoint
        auto pre = eval::load_pretrained<C, typename Backend::param_t>(s.checkpoint);
        eval::check_vocab_matches(pre.state, s.vocab);
        params = std::move(pre.params);
        used = pre.dir;
    }

    eval::glue_eval_options o;
    o.glue_dir = s.glue_dir;
    o.out = s.out;
    if (!s.tasks.empty()) o.tasks = split_list(s.tasks);
    CRAM_CHECK(!o.tasks.empty(), "--tasks lists no task");
    for (const auto& t : o.tasks) (void)eval::glue_task(t);  // unknown names fail before anything runs
    o.seeds = s.seeds;
    o.first_seed = s.seed;
    o.protocol = eval::find_glue_protocol(s.protocol);
    o.finetune = eval::finetune_options_for(o.protocol);
    if (s.epochs) o.finetune.epochs = *s.epochs;
    if (s.batch) o.finetune.batch = *s.batch;
    if (s.lr) o.finetune.lr = *s.lr;
    o.finetune.clip_norm = s.clip;
    o.finetune.max_train = s.max_train;
    o.finetune.max_steps = s.max_steps;
    o.finetune.from_scratch = s.from_scratch;
    o.finetune.model = find_preset(s.preset).options;  // the preset's GLUE head width, init scale, padding id
    constexpr bool fp16 = std::is_same_v<typename Backend::act_t, cram::fp16>;
    if constexpr (fp16) o.finetune.loss_scaling = train::loss_scaler_options{};
    o.quiet = s.quiet;
    o.resume = s.resume;
    o.resume_command = s.resume_command;
    o.notes.push_back(s.from_scratch ? std::string("encoder: random initialisation (--from-scratch), the no-pretraining baseline")
                                     : "checkpoint: `" + used.string() + "`");
    o.notes.push_back("preset " + s.preset + " (" + std::to_string(bert<C, Backend>::parameter_count()) +
                      " encoder parameters), vocabulary `" + s.vocab.string() + "`, backend " + Backend::name);
    o.notes.push_back("attention: " + Backend::attention_kernels(ctx, C.max_seq, C.heads, C.head_dim()));
    // absolute paths: --resume compares them, and a relative path names the same file from another directory
    auto absolute = [](const std::filesystem::path& p) { return std::filesystem::weakly_canonical(std::filesystem::absolute(p)).string(); };
    o.settings = {{"checkpoint", s.from_scratch ? std::string() : absolute(used)},
                  {"preset", s.preset},
                  {"vocab", absolute(s.vocab)},
                  {"backend", Backend::name},
                  {"glue_dir", s.glue_dir.string()}};
    if constexpr (fp16) {  // recorded for fp16 only: bf16 and fp32 evaluations keep their fingerprints
        o.settings["precision"] = "fp16";
        o.notes.push_back("fp16 activations with dynamic loss scaling (a GPU without bf16)");
    }
    const eval::glue_report rep = eval::evaluate_glue<C, Backend>(ctx, s.from_scratch ? nullptr : &params, tok, o);
    if (rep.interrupted()) {
        const auto& i = rep.interruption;
        std::fprintf(stderr, "glue: interrupted by %s: %d of %d runs complete; partial report written to %s; continue with %s\n",
                     i.signal_name.c_str(), i.runs_done, i.runs_total, (s.out / "report.md").string().c_str(),
                     i.resume.c_str());
        return exit_code_for_signal(i.signal);
    }
    if (!s.quiet) std::printf("%s\n", eval::report_markdown(rep).c_str());
    std::fprintf(stderr, "glue: report written to %s and %s\n", (s.out / "report.md").string().c_str(),
                 (s.out / "report.json").string().c_str());
    return 0;
}

}  // namespace detail

// The evaluation behind the app's `glue` and `run` commands: resolves checkpoint, preset and vocabulary,
// then evaluates on `Backend`. A stop signal ends it with a partial report and 128 + the signal.
template <class Backend>
int run_glue(glue_settings s, typename Backend::context& ctx) {
    namespace fs = std::filesystem;
    // SIGINT, SIGTERM, SIGHUP: the evaluation stops after the current optimizer step and writes a partial report
    const stop_on_signals stop_guard;
    CRAM_CHECK(!s.glue_dir.empty() && !s.out.empty(), "glue needs --glue-dir and --out");
    (void)eval::find_glue_protocol(s.protocol);  // an unknown name fails before the checkpoint is read
    fs::path ckpt;
    if (!s.checkpoint.empty()) {
        const train::checkpoint_info info = eval::find_checkpoint(s.checkpoint);
        ckpt = info.dir;
        const nlohmann::json& state = info.state;
        const nlohmann::json config = info.config();
        const std::string saved = config.is_object() ? config.value("preset", std::string()) : std::string();
        CRAM_CHECK(s.preset.empty() || saved.empty() || s.preset == saved, "--preset ", s.preset, " but checkpoint ",
                   ckpt.string(), " was trained as ", saved);
        if (s.preset.empty()) s.preset = saved;
        // a run directory is two levels above RUN/checkpoints/step-N
        const fs::path run_dir = fs::exists(s.checkpoint / "checkpoints") ? s.checkpoint : ckpt.parent_path().parent_path();
        s.vocab = detail::find_vocab(s, run_dir, state);
    } else {
        CRAM_CHECK(s.from_scratch, "glue needs --checkpoint RUN (or --from-scratch for the no-pretraining baseline)");
    }
    CRAM_CHECK(!s.preset.empty(), "--preset is needed: the checkpoint does not record one, or there is no checkpoint");
    CRAM_CHECK(!s.vocab.empty(), "--vocab is needed with --from-scratch and no --checkpoint");
    return with_preset(s.preset, [&]<bert_config C>() { return detail::glue_with_preset<C, Backend>(s, ctx, ckpt); });
}

}  // namespace cram::app
