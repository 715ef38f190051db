// `cram_bert_24h export` and `import`: a cram run to a Hugging Face from_pretrained directory and back
// (cram/interop/hf.hpp does the mapping; docs/interop.md lists it). Export picks the layout from the
// preset (bert_base: BertForMaskedLM; crammed ones: the original cramming code's crammedBERT) and refuses a
// preset that neither layout expresses exactly. Import picks the preset from config.json and writes a
// checkpoint (zero AdamW moments) that `glue --checkpoint RUN` fine-tunes.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app_presets.hpp"
#include "commands.hpp"
#include "cram/core/error.hpp"
#include "cram/core/file_io.hpp"
#include "cram/eval/glue.hpp"
#include "cram/interop/hf.hpp"
#include "cram/train/checkpoint.hpp"
#include "cram/train/json_fields.hpp"

namespace cram::app {

namespace {

namespace fs = std::filesystem;

interop::hf_layout layout_for(const bert_config& c) {
    return c.norm == norm_placement::post ? interop::hf_layout::bert : interop::hf_layout::crammed;
}

std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The last "summary" event of RUN/metrics.jsonl (the trainer's final line), or null.
nlohmann::json final_summary(const fs::path& run_dir) {
    std::ifstream in(run_dir / "metrics.jsonl");
    nlohmann::json last;
    for (std::string line; std::getline(in, line);) {
        const auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.is_object() && j.value("event", std::string()) == "summary") last = j;
    }
    return last;
}

std::string number_text(const nlohmann::json& j, const char* key, int digits = 4) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return "not recorded";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, j[key].get<double>());
    return buf;
}

std::string model_card(const std::string& preset, interop::hf_layout layout, const fs::path& ckpt, const nlohmann::json& state,
                       const fs::path& run_dir, const fs::path& data_dir, const fs::path& glue_report) {
    const nlohmann::json summary = final_summary(run_dir);
    const nlohmann::json run = state.value("run", nlohmann::json::object());
    std::string s = "---\nlibrary_name: transformers\ntags:\n- fill-mask\n- cram\n---\n\n";
    s += "# " + preset + " trained with cram\n\n";
    s += "A BERT-style masked language model pretrained from scratch by cram (`cram_bert_24h`), the \"cramming\" recipe: "
         "one model, one device, a fixed wall-clock budget.\n\n";
    if (layout == interop::hf_layout::bert)
        s += "Layout: `BertForMaskedLM` (`model_type: bert`), loadable with `transformers` alone:\n\n"
             "```python\nfrom transformers import AutoModelForMaskedLM, AutoTokenizer\n"
             "model = AutoModelForMaskedLM.from_pretrained(\"DIR\")\ntokenizer = AutoTokenizer.from_pretrained(\"DIR\")\n```\n\n";
    else
        s += "Layout: the original cramming code's (`model_type: crammedBERT`, github.com/JonasGeiping/cramming); "
             "`import cramming` registers its classes with `transformers`, then:\n\n"
             "```python\nimport cramming  # registers crammedBERT with the Auto classes\n"
             "from transformers import AutoModelForMaskedLM, AutoTokenizer\n"
             "model = AutoModelForMaskedLM.from_pretrained(\"DIR\")\ntokenizer = AutoTokenizer.from_pretrained(\"DIR\")\n```\n\n";
    s += "| | |\n|---|---|\n";
    s += "| preset | `" + preset + "` |\n";
    s += "| checkpoint | step " + std::to_string(state.value("step", std::int64_t{0})) + " (`" + ckpt.filename().string() + "`) |\n";
    if (run.contains("imported_from"))
        s += "| imported from | `" + run.value("imported_from", std::string()) + "` |\n";
    s += "| budget | " + number_text(state, "budget_s", 0) + " s (" + number_text(state, "elapsed_s", 0) + " s used) |\n";
    s += "| tokens seen | " + (state.contains("tokens") ? state["tokens"].dump() : std::string("not recorded")) + " |\n";
    if (!data_dir.empty()) {
        s += "| dataset | `" + data_dir.string() + "`";
        std::error_code ec;
        if (fs::exists(data_dir / "summary.json", ec)) {
            const auto d = nlohmann::json::parse(read_text(data_dir / "summary.json"), nullptr, false);
            if (!d.is_discarded() && d.contains("corpus") && d["corpus"].is_array()) {
                s += " from";
                for (const auto& c : d["corpus"]) s += " `" + fs::path(c.get<std::string>()).filename().string() + "`";
            }
        }
        s += " |\n";
    }
    s += "| final training loss | " + number_text(summary.is_object() ? summary : state, summary.is_object() ? "final_loss" : "loss") + " |\n";
    s += "| validation loss | " + number_text(summary, "val_loss") + " |\n\n";
    if (!glue_report.empty()) {
        s += "## GLUE (dev sets, cram's fine-tuning)\n\n";
        std::error_code ec;
        const fs::path md = fs::is_directory(glue_report, ec) ? glue_report / "report.md" : glue_report;
        CRAM_CHECK(fs::exists(md), "--glue-report ", glue_report.string(), ": no report.md there");
        s += read_text(md) + "\n";
    } else {
        s += "GLUE: not evaluated for this card (`cram_bert_24h glue --checkpoint RUN`, then export with `--glue-report`).\n";
    }
    return s;
}

struct export_args {
    fs::path checkpoint, out, data, glue_report;
};

void run_export(const export_args& a) {
    const train::checkpoint_info info = eval::find_checkpoint(a.checkpoint);
    const nlohmann::json config = info.config();
    const std::string preset = config.value("preset", std::string());
    CRAM_CHECK(!preset.empty(), info.state_file().string(), " records no config.preset: not a cram_bert_24h checkpoint");
    const app_preset& row = find_preset(preset);
    const fs::path run_dir = fs::exists(a.checkpoint / "checkpoints") ? a.checkpoint : info.dir.parent_path().parent_path();
    const nlohmann::json run = info.state.value("run", nlohmann::json::object());

    // the tokenizer: --data, else the dataset the run trained on, else what an import stored with the run
    fs::path data_dir = a.data;
    if (data_dir.empty() && run.is_object() && run.contains("data_dir") && run["data_dir"].is_string())
        data_dir = run["data_dir"].get<std::string>();
    interop::tokenizer_settings tok;
    fs::path vocab;
    if (!data_dir.empty() && fs::exists(data_dir / "vocab.txt")) {
        vocab = data_dir / "vocab.txt";
        const nlohmann::json d = train::read_json_file(data_dir / "summary.json");
        const interop::config_reader n = interop::config_reader(d, data_dir / "summary.json").sub("normalizer");
        tok.lowercase = n.boolean_or("lowercase", true);
        tok.strip_accents = n.boolean_or("strip_accents", true);
        tok.clean_text = n.boolean_or("clean_text", true);
        tok.chinese_chars = n.boolean_or("handle_chinese_chars", true);
        CRAM_CHECK(!n.boolean_or("replace_quotes", false) && !n.boolean_or("drop_non_ascii", false),
                   (data_dir / "summary.json").string(), ": the dataset was tokenized with replace_quotes or drop_non_ascii, "
                   "which BertNormalizer cannot express: a tokenizer.json would give other ids, so nothing was exported");
    } else if (fs::exists(run_dir / "vocab.txt")) {
        vocab = run_dir / "vocab.txt";
        if (run.contains("tokenizer") && run["tokenizer"].is_object()) {
            const interop::config_reader n(run["tokenizer"], info.state_file());
            tok.lowercase = n.boolean_or("lowercase", true);
            tok.strip_accents = n.boolean_or("strip_accents", tok.lowercase);
            tok.clean_text = n.boolean_or("clean_text", true);
            tok.chinese_chars = n.boolean_or("handle_chinese_chars", true);
        }
    } else {
        CRAM_THROW("no vocabulary for ", a.checkpoint.string(), ": the run's dataset ",
                   data_dir.empty() ? std::string("is not recorded") : data_dir.string() + " has no vocab.txt",
                   " and there is no ", (run_dir / "vocab.txt").string(), "; pass --data DATASET");
    }
    if (config.contains("vocab_xxh64") && config["vocab_xxh64"].is_string())
        CRAM_CHECK(train::digest_file(vocab).xxh64 == config["vocab_xxh64"].get<std::string>(), "vocabulary ", vocab.string(),
                   " is not the one the checkpoint was trained with (its XXH64 differs from config.vocab_xxh64)");

    with_preset(preset, [&]<bert_config C>() {
        const interop::hf_layout layout = layout_for(C);
        interop::check_exportable(C, layout, "preset " + preset);
        const auto pre = eval::load_pretrained<C, float>(info.dir);
        interop::export_request r;
        r.config = C;
        r.layout = layout;
        r.options.init_std = row.options.init_std;
        r.options.pad_id = row.options.pad_id;
        r.options.classifier_hidden = row.options.classifier_hidden;
        r.params_layout = &bert_layout<C>();
        r.params = pre.params.data();
        r.vocab = vocab;
        r.tokenizer = tok;
        r.readme = model_card(preset, layout, pre.dir, pre.state, run_dir, data_dir, a.glue_report);
        interop::write_hf_directory(a.out, r);
        std::fprintf(stderr, "export: %s (preset %s, step %lld) -> %s as the %s layout (%zu tensors)\n",
                     pre.dir.string().c_str(), preset.c_str(), static_cast<long long>(pre.state.value("step", std::int64_t{0})),
                     a.out.string().c_str(), interop::to_string(layout), interop::make_mapping(C, layout).tensors.size());
        return 0;
    });
}

struct import_args {
    fs::path from, out;
    bool allow_unused = false;
};

void run_import(const import_args& a) {
    const interop::parsed_config parsed = interop::read_hf_config(a.from);
    // the preset whose configuration config.json describes; else the nearest one's differences
    std::string preset, nearest, nearest_diff;
    std::size_t best = ~std::size_t{0};
    for (const auto& p : app_presets) {
        const auto d = interop::config_differences(parsed.config, p.config);
        if (d.empty()) {
            preset = std::string(p.name);
            break;
        }
        if (d.size() < best) {
            best = d.size();
            nearest = std::string(p.name);
            nearest_diff.clear();
            for (const auto& x : d) nearest_diff += (nearest_diff.empty() ? "" : ", ") + x;
        }
    }
    CRAM_CHECK(!preset.empty(), (a.from / "config.json").string(), " matches no preset of cram_bert_24h (",
               preset_names_text(), "); nearest is ", nearest, ", which differs in: ", nearest_diff);
    const app_preset& row = find_preset(preset);
    CRAM_CHECK(parsed.pad_id == row.options.pad_id, (a.from / "config.json").string(), ": pad_token_id ", parsed.pad_id,
               ", preset ", preset, " pads with id ", row.options.pad_id);
    const fs::path vocab = a.from / "vocab.txt";
    CRAM_CHECK(fs::exists(vocab), a.from.string(), " has no vocab.txt: cram needs the WordPiece vocabulary to fine-tune");
    const auto tokens = interop::read_vocab_lines(vocab);
    CRAM_CHECK(static_cast<int>(tokens.size()) == row.config.vocab, vocab.string(), " has ", tokens.size(),
               " tokens, config.json's vocab_size is ", row.config.vocab);
    CRAM_CHECK(train::list_checkpoints(a.out / "checkpoints").empty(), a.out.string(),
               " already holds checkpoints: import into a new run directory");
    with_preset(preset, [&]<bert_config C>() {
        const param_layout& layout = bert_layout<C>();
        const interop::imported_model m = interop::read_hf_directory(a.from, C, layout, a.allow_unused);
        for (const auto& u : m.unused) std::fprintf(stderr, "import: dropped tensor '%s' (--allow-unused)\n", u.c_str());
        fs::create_directories(a.out);
        std::string lines;
        for (const auto& t : tokens) lines.append(t).push_back('\n');
        atomic_write_file(a.out / "vocab.txt", lines);
        const std::string vocab_hash = train::digest_file(a.out / "vocab.txt").xxh64;
        const std::vector<float> zeros(layout.buffer_size(), 0.0f);
        const nlohmann::json state = {
            {"config", {{"preset", preset}, {"vocab_xxh64", vocab_hash}}},
            {"run",
             {{"imported_from", fs::absolute(a.from).lexically_normal().string()},
              {"hf_layout", interop::to_string(m.parsed.layout)},
              {"tokenizer", interop::to_json(m.tokenizer)}}},
            {"tokens", nullptr},
            {"loss", nullptr},
            {"seed", 0},
            {"backend", "import"}};
        const auto saved = train::save_checkpoint(a.out / "checkpoints", 0, layout, m.params.data(), zeros.data(), zeros.data(),
                                                  state, 1, {{"source", "hf-import"}});
        std::fprintf(stderr, "import: %s (%s layout) -> %s as preset %s; fine-tune with: cram_bert_24h glue --checkpoint %s ...\n",
                     a.from.string().c_str(), interop::to_string(m.parsed.layout), saved.dir.string().c_str(), preset.c_str(),
                     a.out.string().c_str());
        return 0;
    });
}

}  // namespace

void add_export_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("export", "A checkpoint -> a Hugging Face from_pretrained directory (model, config, tokenizer, card)");
    auto a = std::make_shared<export_args>();
    cmd->add_option("--checkpoint", a->checkpoint, "Run directory (its newest good checkpoint) or a step-N checkpoint")->required();
    cmd->add_option("--out", a->out, "Directory to create (must not exist, or be empty)")->required();
    cmd->add_option("--data", a->data, "Dataset directory (vocab.txt, summary.json); default: the one the run trained on");
    cmd->add_option("--glue-report", a->glue_report, "A glue --out directory or its report.md, for the model card");
    cmd->add_option("--format", "Output format (only hf)")->check(CLI::IsMember({"hf"}))->default_val("hf");
    cmd->callback([a] { run_export(*a); });
}

void add_import_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("import", "A Hugging Face directory (BertForMaskedLM or crammedBERT) -> a cram run");
    auto a = std::make_shared<import_args>();
    cmd->add_option("--from", a->from, "Directory with config.json, model.safetensors (or its sharded index), vocab.txt")->required();
    cmd->add_option("--out", a->out, "Run directory to write (RUN/checkpoints/step-00000000, RUN/vocab.txt)")->required();
    cmd->add_flag("--allow-unused", a->allow_unused, "Drop tensors the preset has no place for (BERT's pooler, NSP head) instead of refusing");
    cmd->callback([a] { run_import(*a); });
}

}  // namespace cram::app
