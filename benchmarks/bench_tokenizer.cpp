// WordPiece speed, three ways:
//   bench_tokenizer                         Google Benchmark: single-thread encode of the committed Wikipedia sample
//   bench_tokenizer --encode DOCS --vocab V [--threads N]   in-memory encode_batch throughput over a file of
//                                           documents (one per line), the same measurement hf_reference.js
//                                           time-encode makes for Hugging Face
//   bench_tokenizer --train DOCS --vocab-size N --out VOCAB [--threads N]   vocabulary training from the
//                                           file (reading included), as hf_reference.js train does
// benchmarks/tokenizer/bench_hf.sh runs both sides; results are in docs/data.md.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "cram/data.hpp"

namespace {

std::filesystem::path fixtures() { return std::filesystem::path(__FILE__).parent_path().parent_path() / "tests/data/fixtures"; }

void BM_encode_wiki_sample(benchmark::State& state) {
    const auto wp = cram::data::wordpiece::load(fixtures() / "vocab_8k.txt");
    cram::data::document_reader r({fixtures() / "wiki_sample.jsonl"});
    std::vector<std::string> docs;
    std::string d;
    std::size_t bytes = 0;
    while (r.next(d)) {
        bytes += d.size();
        docs.push_back(d);
    }
    std::vector<std::int32_t> out;
    std::string scratch;
    for (auto _ : state) {
        for (const auto& doc : docs) {
            out.clear();
            wp.encode_append(doc, out, scratch);
            benchmark::DoNotOptimize(out.data());
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}
BENCHMARK(BM_encode_wiki_sample)->Unit(benchmark::kMillisecond);

double peak_rss_mb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;
}

const char* arg(int argc, char** argv, const char* name, const char* def = nullptr) {
    for (int i = 1; i + 1 < argc; ++i)
        if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
    return def;
}

}  // namespace

int main(int argc, char** argv) {
    using clock = std::chrono::steady_clock;
    const int threads = std::atoi(arg(argc, argv, "--threads", "0"));
    if (const char* docs_path = arg(argc, argv, "--encode")) {
        const auto wp = cram::data::wordpiece::load(arg(argc, argv, "--vocab"));
        std::ifstream in(docs_path);
        std::vector<std::string> docs;
        std::string line;
        std::size_t bytes = 0;
        while (std::getline(in, line)) {
            bytes += line.size();
            docs.push_back(line);
        }
        std::vector<std::string_view> views(docs.begin(), docs.end());
        double best = 1e30;
        std::size_t tokens = 0;
        for (int rep = 0; rep < 3; ++rep) {
            const auto t0 = clock::now();
            const auto ids = wp.encode_batch(views, threads);
            best = std::min(best, std::chrono::duration<double>(clock::now() - t0).count());
            tokens = 0;
            for (const auto& v : ids) tokens += v.size();
        }
        std::printf("{\"docs\": %zu, \"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.3f, \"mb_per_s\": %.2f, \"threads\": %d}\n",
                    docs.size(), bytes, tokens, best, static_cast<double>(bytes) / best / 1e6, threads);
        return 0;
    }
    if (const char* docs_path = arg(argc, argv, "--train")) {
        const auto t0 = clock::now();
        cram::data::trainer_options opt;
        opt.vocab_size = std::atoi(arg(argc, argv, "--vocab-size", "30000"));
        opt.threads = threads;
        cram::data::reader_options ro;
        ro.format = cram::data::corpus_format::text;
        cram::data::document_reader reader({docs_path}, ro);
        cram::data::word_counter counter(opt.normalizer, threads);
        std::vector<std::string> batch;
        std::string doc;
        std::size_t bytes = 0;
        while (reader.next(doc)) {
            bytes += doc.size();
            batch.push_back(std::move(doc));
            doc = std::string();
            if (batch.size() >= 2048) {
                counter.add(batch);
                batch.clear();
            }
        }
        counter.add(batch);
        const auto counts = counter.take();
        const double t_count = std::chrono::duration<double>(clock::now() - t0).count();
        const auto vocab = cram::data::train_wordpiece(counts, opt);
        cram::data::write_vocab_files(std::filesystem::path(arg(argc, argv, "--out", "vocab.txt")).parent_path().empty()
                                          ? std::filesystem::path(".")
                                          : std::filesystem::path(arg(argc, argv, "--out", "vocab.txt")).parent_path(),
                                      vocab, opt.normalizer, 128);
        const double secs = std::chrono::duration<double>(clock::now() - t0).count();
        std::printf("{\"bytes\": %zu, \"words\": %zu, \"vocab\": %zu, \"seconds_count\": %.2f, \"seconds\": %.2f, \"peak_rss_mb\": %.0f}\n",
                    bytes, counts.size(), vocab.size(), t_count, secs, peak_rss_mb());
        return 0;
    }
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
