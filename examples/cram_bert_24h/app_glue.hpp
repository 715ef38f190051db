// `cram_bert_24h glue`: fine-tunes a pretrained checkpoint on GLUE tasks (cram/eval/finetune.hpp) for
// several seeds and writes the report (cram/eval/report.hpp). Generic over the backend; the CPU entry is
// in cmd_glue.cpp, the GPU one in cuda_glue.cu (registered behind device_dispatch.hpp).
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cram/core/error.hpp"
#include "cram/data/wordpiece.hpp"
#include "cram/eval/finetune.hpp"
#include "cram/eval/report.hpp"
#include "cram/model/presets.hpp"
#include "cram/train/budget.hpp"
#include "cram/train/checkpoint.hpp"
#include "cram/train/file_io.hpp"

namespace cram::app {

struct glue_settings {
    std::filesystem::path checkpoint;  // a run directory (its newest checkpoint) or one checkpoint directory
    std::filesystem::path glue_dir, out, vocab;
    std::string tasks = "CoLA,SST-2,MRPC,STS-B,QQP,MNLI,QNLI,RTE";
    std::string preset;  // default: the checkpoint's
    std::string device = "auto";
    int seeds = 5;
    int epochs = 5;
    int batch = 16;
    float lr = 4e-5f;
    std::size_t max_train = 0;
    bool from_scratch = false;
    int threads = 0;
    std::uint64_t seed = 0;
};

namespace detail {

// The checkpoint directory to load: `path` itself when it holds state.json, else the newest under
// path/checkpoints.
inline std::filesystem::path resolve_checkpoint(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    if (fs::exists(path / "state.json")) return path;
    const auto list = cram::train::list_checkpoints(path / "checkpoints");
    CRAM_CHECK(!list.empty(), "--checkpoint ", path.string(),
               ": neither a checkpoint directory (state.json) nor a run directory with checkpoints/ inside");
    return list.front();
}

inline std::vector<std::string> split_tasks(const std::string& list) {
    std::vector<std::string> out;
    std::stringstream ss(list);
    for (std::string t; std::getline(ss, t, ',');)
        if (!t.empty()) out.push_back(t);
    CRAM_CHECK(!out.empty(), "--tasks is empty");
    return out;
}

template <bert_config C, class Backend>
int run_glue_preset(const glue_settings& s, typename Backend::context& ctx, const std::filesystem::path& ckpt) {
    namespace fs = std::filesystem;
    using param_t = typename Backend::param_t;
    const auto t_start = std::chrono::steady_clock::now();
    const cram::data::wordpiece tok = cram::data::wordpiece::load(s.vocab);
    CRAM_CHECK(tok.vocab_size() == C.vocab, "vocabulary ", s.vocab.string(), " has ", tok.vocab_size(),
               " tokens but preset ", s.preset, " needs ", C.vocab, " (pass the --vocab the checkpoint was trained with)");
    std::vector<param_t> pretrained;
    if (!s.from_scratch) {
        pretrained.resize(bert<C, Backend>::layout().buffer_size());
        const auto loaded = cram::train::load_checkpoint<param_t>(ckpt, bert<C, Backend>::layout());
        pretrained = loaded.params;
    }
    const int max_batch = std::max(s.batch, 32);
    bert<C, Backend> encoder(ctx, max_batch, C.max_seq < 128 ? C.max_seq : 128);
    fs::create_directories(s.out);
    std::ofstream metrics(s.out / "glue_metrics.jsonl", std::ios::app);

    std::vector<eval::finetune_result> results;
    std::vector<std::string> skipped;
    const auto names = split_tasks(s.tasks);
    std::vector<eval::prepared_task> prepared;
    std::size_t total_epochs = 0, done_epochs = 0;
    for (const auto& name : names) {
        const auto& info = eval::glue_task(name);
        if (!fs::exists(s.glue_dir / info.name / "train.tsv")) {
            skipped.push_back(info.name);
            std::fprintf(stderr, "glue: %s skipped: %s not found\n", info.name.c_str(),
                         (s.glue_dir / info.name / "train.tsv").string().c_str());
            continue;
        }
        prepared.push_back(eval::prepare_task(tok, s.glue_dir, info, 128));
        total_epochs += std::size_t(s.seeds) * std::size_t(s.epochs);
    }
    CRAM_CHECK(!prepared.empty(), "no GLUE task found under ", s.glue_dir.string(), " (see docs/glue.md)");
    for (const auto& task : prepared) {
        for (int k = 0; k < s.seeds; ++k) {
            eval::finetune_options o;
            o.epochs = s.epochs;
            o.batch = s.batch;
            o.lr = s.lr;
            o.max_train = s.max_train;
            o.seed = s.seed + std::uint64_t(k);
            o.from_scratch = s.from_scratch;
            results.push_back(eval::finetune(encoder, pretrained, task, o, [&](const eval::finetune_result& r,
                                                                               const eval::epoch_record& e) {
                ++done_epochs;
                const double elapsed =
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
                const double eta = elapsed / double(done_epochs) * double(total_epochs - done_epochs);
                std::string scores;
                for (const auto& [split, m] : e.dev)
                    for (const auto& [metric, v] : m) scores += " " + split + "/" + metric + "=" + eval::format_percent(100 * v);
                std::fprintf(stderr, "glue: %-5s seed %d/%d epoch %d/%d  loss %.4f %s  [%s elapsed, ETA %s]\n",
                             r.task.c_str(), k + 1, s.seeds, e.epoch, s.epochs, e.train_loss, scores.c_str(),
                             cram::train::format_duration(elapsed).c_str(), cram::train::format_duration(eta).c_str());
                metrics << nlohmann::json{{"task", r.task}, {"seed", r.seed}, {"epoch", e.epoch},
                                          {"train_loss", e.train_loss}, {"seconds", e.seconds}, {"dev", e.dev},
                                          {"elapsed_s", elapsed}}
                               .dump()
                        << '\n';
                metrics.flush();
            }));
        }
    }
    const auto summary = eval::summarize(results);
    std::ostringstream notes;
    notes << "Checkpoint `" << (s.from_scratch ? std::string("none (--from-scratch)") : ckpt.string()) << "`, preset "
          << s.preset << ", backend " << Backend::name << "; " << s.seeds << " seed(s), " << s.epochs
          << " epoch(s), batch " << s.batch << ", lr " << s.lr << ".";
    if (s.max_train > 0)
        notes << " **Protocol deviation:** at most " << s.max_train << " training examples per task.";
    if (s.epochs != 5 || s.seeds != 5) notes << " The protocol is 5 epochs and the median of 5 seeds.";
    if (!skipped.empty()) {
        notes << " Not run (no data):";
        for (const auto& t : skipped) notes << ' ' << t;
        notes << '.';
    }
    const std::string md = eval::report_markdown(summary, "GLUE report", notes.str());
    nlohmann::json settings{{"checkpoint", s.from_scratch ? std::string() : ckpt.string()},
                            {"preset", s.preset},
                            {"backend", Backend::name},
                            {"seeds", s.seeds},
                            {"epochs", s.epochs},
                            {"batch", s.batch},
                            {"lr", s.lr},
                            {"max_train", s.max_train},
                            {"from_scratch", s.from_scratch},
                            {"skipped", skipped}};
    cram::train::atomic_write_file(s.out / "report.md", md);
    cram::train::atomic_write_file(s.out / "report.json", eval::report_json(summary, results, settings).dump(2));
    std::printf("%s\nreport: %s, %s\n", md.c_str(), (s.out / "report.md").string().c_str(),
                (s.out / "report.json").string().c_str());
    return 0;
}

}  // namespace detail

// Resolves the checkpoint, preset and vocabulary, then fine-tunes on `Backend`.
template <class Backend>
int run_glue(glue_settings s, typename Backend::context& ctx) {
    namespace fs = std::filesystem;
    fs::path ckpt;
    if (!s.from_scratch || !s.checkpoint.empty()) {
        ckpt = detail::resolve_checkpoint(s.checkpoint);
        const auto state = cram::train::read_json_file(ckpt / "state.json");
        const std::string saved = state.contains("config") ? state["config"].value("preset", std::string()) : "";
        if (s.preset.empty()) s.preset = saved;
        CRAM_CHECK(saved.empty() || saved == s.preset, "--preset ", s.preset, " but checkpoint ", ckpt.string(),
                   " was trained as ", saved);
        if (s.vocab.empty()) {
            // `run` lays out OUT/data (the dataset) next to OUT/run
            const fs::path run_dir = fs::exists(s.checkpoint / "state.json") ? ckpt.parent_path().parent_path() : s.checkpoint;
            const fs::path guess = run_dir.parent_path() / "data" / "vocab.txt";
            CRAM_CHECK(fs::exists(guess), "no --vocab given and ", guess.string(),
                       " does not exist: pass --vocab DATASET/vocab.txt (the dataset the checkpoint was trained on)");
            s.vocab = guess;
        }
    }
    CRAM_CHECK(!s.preset.empty(), "--from-scratch without a checkpoint needs --preset");
    CRAM_CHECK(!s.vocab.empty(), "--vocab is required without a checkpoint");
    namespace P = cram::presets;
    if (s.preset == "crammed_bert") return detail::run_glue_preset<P::crammed_bert, Backend>(s, ctx, ckpt);
    if (s.preset == "bert_base") return detail::run_glue_preset<P::bert_base, Backend>(s, ctx, ckpt);
    if (s.preset == "crammed_mini") return detail::run_glue_preset<P::crammed_mini, Backend>(s, ctx, ckpt);
    if (s.preset == "crammed_tiny") return detail::run_glue_preset<P::crammed_tiny, Backend>(s, ctx, ckpt);
    CRAM_THROW("unknown preset '", s.preset, "' (crammed_bert, bert_base, crammed_mini, crammed_tiny)");
}

}  // namespace cram::app
