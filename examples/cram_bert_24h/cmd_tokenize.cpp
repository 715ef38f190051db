// `cram_bert_24h tokenize --vocab FILE`: text lines on stdin -> one line of space-separated WordPiece ids
// per input line (no special tokens), ids identical to Hugging Face's BERT tokenizer. Lines are encoded
// in batches on all cores; output order is input order. A UTF-8 byte-order mark at the start of the input
// is dropped.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "cram/core/thread_pool.hpp"
#include "cram/core/text.hpp"
#include "cram/data/wordpiece.hpp"

namespace cram::app {

void add_tokenize_command(CLI::App& app) {
    auto* cmd = app.add_subcommand("tokenize", "Text lines on stdin -> space-separated WordPiece ids on stdout");
    struct args {
        std::string vocab;
        int threads = 0;
        bool no_lowercase = false, replace_quotes = false, drop_non_ascii = false;
    };
    auto a = std::make_shared<args>();
    cmd->add_option("--vocab", a->vocab, "vocab.txt (one token per line; must contain [UNK])")->required();
    cmd->add_option("--threads", a->threads, "Worker threads (0: all cores; at most 4x the hardware threads)")
        ->check(thread_count(cram::max_cpu_threads()))->capture_default_str();
    cmd->add_flag("--no-lowercase", a->no_lowercase, "Cased: no lowercasing and no accent stripping");
    cmd->add_flag("--replace-quotes", a->replace_quotes, "Turn `` and '' into \"");
    cmd->add_flag("--drop-non-ascii", a->drop_non_ascii, "Drop non-ASCII characters after normalisation");
    cmd->callback([a] {
        cram::data::normalizer_options opt;
        opt.lowercase = opt.strip_accents = !a->no_lowercase;
        opt.replace_quotes = a->replace_quotes;
        opt.drop_non_ascii = a->drop_non_ascii;
        const auto wp = cram::data::wordpiece::load(a->vocab, opt);
        std::ios::sync_with_stdio(false);
        std::vector<std::string> lines;
        std::string line, out;
        auto flush = [&] {
            std::vector<std::string_view> views(lines.begin(), lines.end());
            const auto ids = wp.encode_batch(views, a->threads);
            out.clear();
            char num[16];
            for (const auto& v : ids) {
                for (std::size_t i = 0; i < v.size(); ++i) {
                    if (i) out.push_back(' ');
                    const int n = std::snprintf(num, sizeof num, "%d", v[i]);
                    out.append(num, static_cast<std::size_t>(n));
                }
                out.push_back('\n');
            }
            std::fwrite(out.data(), 1, out.size(), stdout);
            lines.clear();
        };
        std::size_t bytes = 0;
        bool first = true;
        while (std::getline(std::cin, line)) {
            if (first) strip_bom_in_place(line);  // a byte-order mark starts the input, not its first line
            first = false;
            if (!line.empty() && line.back() == '\r') line.pop_back();
            bytes += line.size();
            lines.push_back(std::move(line));
            line.clear();
            if (bytes >= (std::size_t{4} << 20) || lines.size() >= 65536) {
                flush();
                bytes = 0;
            }
        }
        if (!lines.empty()) flush();
        std::fflush(stdout);
    });
}

}  // namespace cram::app
