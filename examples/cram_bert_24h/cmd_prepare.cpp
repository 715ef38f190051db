// `cram_bert_24h prepare`: corpus files -> DIR/vocab.txt, DIR/tokenizer_config.json, token shards and
// DIR/summary.json (cram::data::prepare_dataset does the work): the command line, and the one
// compiled copy of the pipeline with its progress lines (prepare_with_progress, also used by `run`).
#include <chrono>
#include <cstdio>
#include <string>

#include "app_prepare.hpp"
#include "commands.hpp"
#include "cram/data/prepare.hpp"

namespace cram::app {

data::prepare_summary prepare_with_progress(const data::prepare_options& options, bool quiet) {
    auto last = std::chrono::steady_clock::now() - std::chrono::seconds(10);
    std::string last_phase;
    return data::prepare_dataset(options, [&](const data::prepare_progress& p) {
        const auto now = std::chrono::steady_clock::now();
        if (quiet || (p.phase == last_phase && now - last < std::chrono::seconds(2))) return;
        last = now;
        last_phase = p.phase;
        if (p.phase == "train-vocab")
            std::fprintf(stderr, "prepare: training vocabulary %.0f%%\n", 100 * p.fraction);
        else if (p.phase == "write")
            std::fprintf(stderr, "prepare: writing shards %.0f%%\n", 100 * p.fraction);
        else
            std::fprintf(stderr, "prepare: %s: %lld documents, %.1f MB\n", p.phase == "vocab" ? "counting words" : "encoding",
                         static_cast<long long>(p.documents), static_cast<double>(p.bytes) / 1e6);
    });
}

void add_prepare_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("prepare", "Corpus (JSON lines or text, plain or .zst) -> WordPiece vocabulary + packed token shards");
    struct args {
        cram::data::prepare_options opt;
        std::vector<std::string> corpus;
        std::string out, vocab, format = "auto", order = "none";
        bool no_lowercase = false, keep_accents = false, no_chinese = false, no_clean = false, no_shuffle = false, quiet = false;
    };
    auto a = std::make_shared<args>();
    cmd->add_option("--corpus", a->corpus, "Corpus files (*.jsonl, *.jsonl.zst, *.txt, *.txt.zst)")->required()->expected(1, -1);
    cmd->add_option("--out", a->out,
                    "Output dataset directory: built beside it and swapped in when complete (a failed prepare leaves "
                    "it as it was); it must be new, empty or hold a dataset")
        ->required();
    cmd->add_option("--vocab-size", a->opt.vocab_size, "Vocabulary size to train")->capture_default_str();
    cmd->add_option("--seq-len", a->opt.seq_len, "Tokens per packed sequence")->capture_default_str();
    cmd->add_option("--vocab", a->vocab, "Use this vocab.txt instead of training one");
    cmd->add_option("--threads", a->opt.threads,
                    "Worker threads (0: all cores; at most 4 per core and at most 1024, here " +
                        std::to_string(cram::data::max_prepare_threads()) + ")")
        ->capture_default_str();
    cmd->add_option("--max-docs", a->opt.max_docs, "Read at most this many documents (0: all)")->capture_default_str();
    cmd->add_option("--vocab-docs", a->opt.vocab_docs, "Train the vocabulary on at most this many documents (0: all)")->capture_default_str();
    cmd->add_option("--val-fraction", a->opt.val_fraction, "Share of documents held out for validation")->capture_default_str();
    cmd->add_option("--max-tokens-per-char", a->opt.max_tokens_per_char, "Drop documents with more tokens per character")->capture_default_str();
    cmd->add_option("--curriculum", a->order, "Block order: none (seeded shuffle), dots (most '.' first), unigram (most likely first)")
        ->check(CLI::IsMember({"none", "dots", "unigram"}))->capture_default_str();
    cmd->add_flag("--no-shuffle", a->no_shuffle, "With --curriculum none: keep corpus order");
    cmd->add_flag("--dedup", a->opt.dedup, "Drop exact duplicate documents");
    cmd->add_option("--format", a->format, "Corpus format: auto (by extension), jsonl, text (a document per line), text-blocks (blank-line separated)")
        ->check(CLI::IsMember({"auto", "jsonl", "text", "text-blocks"}))->capture_default_str();
    cmd->add_option("--seed", a->opt.seed, "Seed of the validation split and the shuffle")
        ->check(non_negative_integer())->capture_default_str();
    cmd->add_option("--shard-sequences", a->opt.shard_sequences, "Sequences per shard file")->capture_default_str();
    cmd->add_option("--max-line-bytes", a->opt.reader.max_line_bytes,
                    "Longest corpus line (one JSON line or text line) in bytes; at least 1048576")
        ->capture_default_str();
    cmd->add_flag("--replace-quotes", a->opt.normalizer.replace_quotes, "Turn `` and '' into \" (cramming recipe)");
    cmd->add_flag("--drop-non-ascii", a->opt.normalizer.drop_non_ascii, "Drop non-ASCII characters after normalisation (cramming recipe)");
    cmd->add_flag("--no-lowercase", a->no_lowercase, "Keep case (cased vocabulary)");
    cmd->add_flag("--keep-accents", a->keep_accents, "Do not strip accents");
    cmd->add_flag("--no-chinese-chars", a->no_chinese, "Do not pad CJK ideographs with spaces");
    cmd->add_flag("--no-clean-text", a->no_clean, "Keep control characters");
    cmd->add_flag("--quiet", a->quiet, "No progress lines");
    cmd->callback([a] {
        auto& o = a->opt;
        for (const auto& c : a->corpus) o.corpus.emplace_back(c);
        o.out = a->out;
        if (!a->vocab.empty()) o.vocab = a->vocab;
        o.reader.format = cram::data::parse_corpus_format(a->format);
        o.order = cram::data::parse_curriculum(a->order);
        o.shuffle = !a->no_shuffle;
        o.normalizer.lowercase = !a->no_lowercase;
        // as HF's BertNormalizer: accents are stripped when lowercasing, unless asked to keep them
        o.normalizer.strip_accents = !a->no_lowercase && !a->keep_accents;
        o.normalizer.handle_chinese_chars = !a->no_chinese;
        o.normalizer.clean_text = !a->no_clean;
        const auto summary = prepare_with_progress(o, a->quiet);
        std::printf("%s\n", summary.to_json().dump(2).c_str());
        if (summary.bad_lines)
            std::fprintf(stderr, "prepare: warning: skipped %lld malformed lines (first: %s)\n",
                         static_cast<long long>(summary.bad_lines), summary.first_bad_line.c_str());
        std::fprintf(stderr, "prepare: %lld documents -> %lld training + %lld validation sequences of %d tokens in %.1f s (%s)\n",
                     static_cast<long long>(summary.documents), static_cast<long long>(summary.train_blocks),
                     static_cast<long long>(summary.val_blocks), summary.seq_len, summary.seconds, o.out.string().c_str());
    });
}

}  // namespace cram::app
