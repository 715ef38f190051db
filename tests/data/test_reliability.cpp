// The data side of "no run loses work" (issue 13): prepare checks everything before it touches --out,
// builds beside it and swaps at the end, under a lock; an empty result is an error; invalid UTF-8 in JSON
// lines becomes U+FFFD (maximal subparts); byte-order marks are dropped; summary.json records the
// vocabulary's fingerprint and wrong-typed fields are errors naming the file and the field. Expected
// values are derived by hand (the Unicode standard's worked example, byte strings written out).
#include <zstd.h>

#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "cram/data.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace cram::data;

namespace {

void write_file(const fs::path& p, std::string_view data) {
    std::ofstream out(p, std::ios::binary);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string zstd_compress(std::string_view data) {
    std::string out(ZSTD_compressBound(data.size()), '\0');
    const auto n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
    REQUIRE(!ZSTD_isError(n));
    out.resize(n);
    return out;
}

std::string repaired(std::string_view in) {
    std::string out;
    repair_utf8(in, out);
    return out;
}

std::string repaired_escapes(std::string_view in) {
    std::string out;
    repair_surrogate_escapes(in, out);
    return out;
}

std::vector<std::string> read_all(const std::vector<fs::path>& files, reader_options opt = {}, reader_stats* stats = nullptr) {
    document_reader r(files, opt);
    std::vector<std::string> docs;
    std::string d;
    while (r.next(d)) docs.push_back(d);
    if (stats) *stats = r.stats();
    return docs;
}

// Every file under `dir` (names relative to it) with its bytes: "untouched" means this map is unchanged.
// The lock file is left out: it is not data, and each locker writes its own pid into it.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.path().filename() != ".cram-lock")
            files[fs::relative(e.path(), dir).string()] = e.is_regular_file() ? read_file(e.path()) : std::string("<dir>");
    return files;
}

// Names in `parent` that start with `prefix` (sibling temporary directories).
std::vector<std::string> siblings(const fs::path& parent, const std::string& prefix) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(parent))
        if (e.path().filename().string().starts_with(prefix)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

// A corpus of `docs` JSON lines of a few repeated words (a small vocabulary covers it).
std::string word_corpus(int docs) {
    const char* words[] = {"alpha", "beta", "gamma", "delta", "kappa", "sigma"};
    std::string out;
    for (int d = 0; d < docs; ++d) {
        std::string text;
        for (int w = 0; w < 40; ++w) text += std::string(words[(d * 7 + w * 3) % 6]) + (w % 9 == 8 ? ". " : " ");
        out += nlohmann::json({{"text", text}}).dump() + "\n";
    }
    return out;
}

prepare_options small_options(const fs::path& dir) {
    prepare_options opt;
    opt.corpus = {dir / "c.jsonl"};
    opt.out = dir / "ds";
    opt.vocab_size = 128;
    opt.seq_len = 16;
    opt.val_fraction = 0.1;
    opt.threads = 2;
    opt.shard_sequences = 8;
    return opt;
}

// The pid of a process that has exited (and been reaped): a pid no live process has.
::pid_t dead_pid() {
    const ::pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    int status = 0;
    ::waitpid(child, &status, 0);
    return child;
}

}  // namespace

// ---- U+FFFD for invalid UTF-8 ------------------------------------------------------------------------------

TEST_CASE("repair_utf8: maximal subparts become one U+FFFD each (Unicode 15, Table 3-8 and hand-made cases)") {
    const std::string R = "\xEF\xBF\xBD";
    // The standard's worked example: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64
    //   -> 0061 FFFD FFFD FFFD 0062 FFFD 0063 FFFD FFFD 0064
    CHECK(repaired("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64") == "a" + R + R + R + "b" + R + "c" + R + R + "d");
    CHECK(repaired("\xED\xA0\x80") == R + R + R);      // a surrogate: ED's second byte must be 80..9F
    CHECK(repaired("\xC0\xAF") == R + R);              // overlong '/': C0 is never a lead byte
    CHECK(repaired("\xE0\x80\xAF") == R + R + R);      // overlong: E0's second byte must be A0..BF
    CHECK(repaired("\xF4\x90\x80\x80") == R + R + R + R);  // above U+10FFFF
    CHECK(repaired("\xF5\xFF\xFE") == R + R + R);      // never valid bytes
    CHECK(repaired("x\xE2\x82") == "x" + R);           // cut by the end: one replacement for the subpart
    CHECK(repaired("\xF0\x9F\x98") == R);              // a 4-byte sequence missing its last byte
    CHECK(repaired("\xF0\x9F\x98\"") == R + "\"");     // ... followed by a quote: the quote survives
    CHECK(repaired("\xE2\x82\x41") == R + "A");        // the byte that breaks a sequence starts the next
    // well-formed text of every length is copied as it is, and reported as unchanged
    const std::string good = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xEF\xBF\xBD\xF4\x8F\xBF\xBF\xED\x9F\xBF";
    std::string out = "keep:";
    CHECK_FALSE(repair_utf8(good, out));
    CHECK(out == "keep:" + good);
    out.clear();
    CHECK(repair_utf8("\x80", out));
    CHECK(out == R);
}

TEST_CASE("repair_surrogate_escapes: lone surrogates in strings become \\uFFFD, nothing else changes") {
    CHECK(repaired_escapes(R"({"text":"a\ud800b"})") == R"({"text":"a\uFFFDb"})");
    CHECK(repaired_escapes(R"({"text":"\uDC00"})") == R"({"text":"\uFFFD"})");
    CHECK(repaired_escapes(R"({"text":"\ud83d\u0041"})") == R"({"text":"\uFFFD\u0041"})");  // high, then no low
    CHECK(repaired_escapes(R"({"text":"\ud83d\ude00 \u00e9"})") == R"({"text":"\ud83d\ude00 \u00e9"})");  // a pair
    CHECK(repaired_escapes(R"({"text":"\\ud800"})") == R"({"text":"\\ud800"})");  // an escaped backslash, then "ud800"
    CHECK(repaired_escapes(R"({"text":"\"\ud800"})") == R"({"text":"\"\uFFFD"})");  // an escaped quote stays in the string
    CHECK(repaired_escapes(R"({"t":"\u12"} "\ud800")") == R"({"t":"\u12"} "\uFFFD")");  // bad hex: left to the parser
}

TEST_CASE("readers: invalid UTF-8 and lone surrogates inside JSON strings become U+FFFD; the line is kept") {
    const auto dir = cram::test::scratch_dir("reliability_fffd");
    const std::string data =
        "{\"text\":\"caf\xE9 ok\"}\n"                 // Latin-1 é: one invalid byte
        "{\"text\":\"x\xF0\x9F\x98\"}\n"              // an emoji cut before the closing quote
        "{\"text\":\"lone \\udc80 low\"}\n"           // a lone surrogate escape (Python's surrogateescape)
        "{\"text\":\"fine \\u00e9 \xC3\xA9\"}\n"      // valid escapes and bytes: untouched
        "{\"text\": broken \xFF}\n";                  // still not JSON after repair: a bad line
    write_file(dir / "a.jsonl", data);
    reader_stats st;
    const auto docs = read_all({dir / "a.jsonl"}, {}, &st);
    REQUIRE(docs.size() == 4);
    CHECK(docs[0] == "caf\xEF\xBF\xBD ok");
    CHECK(docs[1] == "x\xEF\xBF\xBD");
    CHECK(docs[2] == "lone \xEF\xBF\xBD low");
    CHECK(docs[3] == "fine \xC3\xA9 \xC3\xA9");
    CHECK(st.bad_lines == 1);
    CHECK(st.first_bad_line.find("a.jsonl:5") != std::string::npos);
}

// ---- byte-order marks --------------------------------------------------------------------------------------

TEST_CASE("BOM: dropped at the start of corpus files (jsonl, text, blocks, .zst) and vocab.txt, kept elsewhere") {
    const auto dir = cram::test::scratch_dir("reliability_bom");
    const std::string bom = "\xEF\xBB\xBF";
    write_file(dir / "a.jsonl", bom + "{\"text\":\"one\"}\n{\"text\":\"two\"}\n");
    write_file(dir / "b.jsonl.zst", zstd_compress(bom + "{\"text\":\"three\"}\n"));
    write_file(dir / "c.txt", bom + "four\n" + bom + "five\n");  // only the file's first mark is a BOM
    write_file(dir / "d.txt.zst", zstd_compress(bom + "six\n"));
    reader_stats st;
    const auto docs = read_all({dir / "a.jsonl", dir / "b.jsonl.zst", dir / "c.txt", dir / "d.txt.zst"}, {}, &st);
    CHECK(docs == std::vector<std::string>{"one", "two", "three", "four", bom + "five", "six"});
    CHECK(st.bad_lines == 0);  // without the rule the first line of a.jsonl and b.jsonl.zst is not JSON
    reader_options blocks;
    blocks.format = corpus_format::text_blocks;
    write_file(dir / "e.txt", bom + "seven\neight\n\nnine\n");
    CHECK(read_all({dir / "e.txt"}, blocks) == std::vector<std::string>{"seven\neight", "nine"});
    write_file(dir / "only-bom.txt", bom);
    CHECK(read_all({dir / "only-bom.txt"}).empty());

    write_file(dir / "vocab.txt", bom + "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n");
    const auto wp = wordpiece::load(dir / "vocab.txt");
    CHECK(wp.vocab_size() == 6);
    CHECK(wp.token_to_id("[PAD]") == 0);
    CHECK(wp.specials().pad == 0);
    CHECK(wp.encode("hello") == std::vector<std::int32_t>{5});
}

// ---- prepare: check first, build beside, swap, lock -------------------------------------------------------

TEST_CASE("prepare: a bad option or input leaves an existing dataset byte for byte as it was") {
    const auto dir = cram::test::scratch_dir("reliability_validate");
    write_file(dir / "c.jsonl", word_corpus(200));
    write_file(dir / "novocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nalpha\n");  // no [MASK]
    const auto good = small_options(dir);
    const auto first = prepare_dataset(good);
    CHECK(first.train_blocks > 0);
    const auto before = snapshot(good.out);
    REQUIRE(before.count("summary.json"));

    struct bad_case {
        const char* name;
        std::function<void(prepare_options&)> edit;
        const char* message;
    };
    const std::vector<bad_case> cases = {
        {"typo in --corpus", [&](prepare_options& o) { o.corpus = {dir / "c.jsonl", dir / "c.jsnl"}; }, "c.jsnl"},
        {"corpus is a directory", [&](prepare_options& o) { o.corpus = {dir}; }, "is not a file"},
        {"missing --vocab", [&](prepare_options& o) { o.vocab = dir / "nope.txt"; }, "nope.txt"},
        {"--vocab without [MASK]", [&](prepare_options& o) { o.vocab = dir / "novocab.txt"; }, "[MASK]"},
        {"--vocab-size 3", [](prepare_options& o) { o.vocab_size = 3; }, "--vocab-size 3"},
        {"--vocab-size 127", [](prepare_options& o) { o.vocab_size = 127; }, "--vocab-size 127"},
        {"--seq-len 1", [](prepare_options& o) { o.seq_len = 1; }, "--seq-len 1"},
        {"--seq-len 100000", [](prepare_options& o) { o.seq_len = 100000; }, "--seq-len 100000"},
        {"--val-fraction 1", [](prepare_options& o) { o.val_fraction = 1.0; }, "--val-fraction 1"},
        {"--val-fraction -0.1", [](prepare_options& o) { o.val_fraction = -0.1; }, "--val-fraction"},
        {"--val-fraction nan", [](prepare_options& o) { o.val_fraction = std::nan(""); }, "--val-fraction"},
        {"--shard-sequences 0", [](prepare_options& o) { o.shard_sequences = 0; }, "--shard-sequences 0"},
        {"--threads -1", [](prepare_options& o) { o.threads = -1; }, "--threads -1"},
        {"--threads too many", [](prepare_options& o) { o.threads = max_prepare_threads() + 1; }, "--threads"},
        {"--max-docs -5", [](prepare_options& o) { o.max_docs = -5; }, "--max-docs -5"},
        {"--max-tokens-per-char 0", [](prepare_options& o) { o.max_tokens_per_char = 0; }, "--max-tokens-per-char"},
        {"--max-line-bytes 100", [](prepare_options& o) { o.reader.max_line_bytes = 100; }, "--max-line-bytes 100"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        auto opt = good;
        c.edit(opt);
        CHECK_THROWS_WITH_AS(prepare_dataset(opt), doctest::Contains(c.message), cram::error);
        CHECK(snapshot(good.out) == before);
    }
    CHECK(max_prepare_threads() <= 1024);
    CHECK(max_prepare_threads() >= 4);
    CHECK(siblings(dir, "ds.").empty());  // no work directory left behind
    mlm_source src(good.out, "train", 16);  // still a valid dataset
    CHECK(src.num_sequences() == first.train_blocks);

    // an output directory with files that are not a dataset's is refused (the swap would delete them)
    fs::create_directories(dir / "mine");
    write_file(dir / "mine" / "notes.txt", "precious");
    auto opt = good;
    opt.out = dir / "mine";
    CHECK_THROWS_WITH_AS(prepare_dataset(opt), doctest::Contains("notes.txt"), cram::error);
    CHECK(read_file(dir / "mine" / "notes.txt") == "precious");
    write_file(dir / "plainfile", "x");
    opt.out = dir / "plainfile";
    CHECK_THROWS_WITH_AS(prepare_dataset(opt), doctest::Contains("not a directory"), cram::error);
    // a validation failure on a directory that did not exist creates nothing
    opt = good;
    opt.out = dir / "fresh";
    opt.vocab_size = 3;
    CHECK_THROWS_AS(prepare_dataset(opt), cram::error);
    CHECK_FALSE(fs::exists(dir / "fresh"));
}

TEST_CASE("prepare: an empty result is an error naming the corpus, and the old dataset stays") {
    const auto dir = cram::test::scratch_dir("reliability_empty");
    write_file(dir / "c.jsonl", word_corpus(200));
    const auto good = small_options(dir);
    prepare_dataset(good);
    const auto before = snapshot(good.out);

    write_file(dir / "blank.jsonl", "\n\n{\"text\":\"\"}\nnot json\n");
    auto opt = good;
    opt.corpus = {dir / "blank.jsonl"};
    CHECK_THROWS_WITH_AS(prepare_dataset(opt), doctest::Contains("no documents read from"), cram::error);
    CHECK_THROWS_WITH_AS(prepare_dataset(opt), doctest::Contains("blank.jsonl"), cram::error);
    CHECK(snapshot(good.out) == before);
    opt.vocab = good.out / "vocab.txt";  // with a given vocabulary the encoder finds nothing either
    CHECK_THROWS_WITH_AS(prepare_dataset(opt), doctest::Contains("no documents read from"), cram::error);
    CHECK(snapshot(good.out) == before);

    opt = good;
    opt.vocab = good.out / "vocab.txt";
    opt.max_tokens_per_char = 1e-6;  // every document has more tokens than that per character
    CHECK_THROWS_WITH_AS(prepare_dataset(opt), doctest::Contains("every one of the 200 documents"), cram::error);
    CHECK(snapshot(good.out) == before);

    opt = good;
    opt.seq_len = 512;  // 5 documents of ~45 tokens: no 512-token block
    opt.max_docs = 5;
    CHECK_THROWS_WITH_AS(prepare_dataset(opt), doctest::Contains("0 training sequences"), cram::error);
    CHECK(snapshot(good.out) == before);
    CHECK(siblings(dir, "ds.").empty());
}

TEST_CASE("prepare: built beside and swapped in; stale work directories go; the lock refuses a second writer") {
    const auto dir = cram::test::scratch_dir("reliability_swap");
    write_file(dir / "c.jsonl", word_corpus(200));
    write_file(dir / "d.jsonl", word_corpus(100));
    auto opt = small_options(dir);
    const auto first = prepare_dataset(opt);
    CHECK(fs::exists(opt.out / ".cram-lock"));
    const std::string first_summary = read_file(opt.out / "summary.json");

    // leftovers of killed prepares: a dead pid's work directory and set-aside old dataset go, a live
    // process's stays, and names that merely look similar are not touched
    const auto dead = std::to_string(dead_pid());
    const auto live = std::to_string(::getppid());
    for (const auto& name : std::vector<std::string>{"ds.tmp-" + dead, "ds.old-" + dead, "ds.tmp-" + live, "ds.tmp-backup", "dsx.tmp-" + dead}) {
        fs::create_directories(dir / name);
        write_file(dir / name / "train-00000.shard", "partial");
    }
    opt.corpus = {dir / "d.jsonl"};
    const auto second = prepare_dataset(opt);
    CHECK(second.documents == 100);
    CHECK(first.documents == 200);
    CHECK(siblings(dir, "ds.") == std::vector<std::string>{"ds.tmp-" + live, "ds.tmp-backup"});
    CHECK(fs::exists(dir / ("dsx.tmp-" + dead)));
    // the new dataset is complete and is what readers see; the old one is gone
    CHECK(read_file(opt.out / "summary.json") != first_summary);
    CHECK(read_dataset_summary(opt.out)["documents"] == 100);
    mlm_source src(opt.out, "train", 16);
    CHECK(src.num_sequences() == second.train_blocks);
    // nothing but the dataset's files (and its lock) in it
    for (const auto& e : fs::directory_iterator(opt.out)) {
        const auto n = e.path().filename().string();
        CHECK_MESSAGE((n == "vocab.txt" || n == "tokenizer_config.json" || n == "summary.json" || n == ".cram-lock" ||
                       n.ends_with(".shard")),
                      n);
    }

    // a reader holding the dataset shared makes prepare refuse, naming the holder; the dataset stays
    const auto before = snapshot(opt.out);
    {
        const auto reading = lock_dataset_for_reading(opt.out);
        CHECK(reading.held());
        const auto again = lock_dataset_for_reading(opt.out);  // readers share it
        CHECK(again.held());
        CHECK_THROWS_WITH_AS(prepare_dataset(opt), doctest::Contains(("pid " + std::to_string(::getpid())).c_str()), cram::error);
        CHECK_THROWS_WITH_AS(prepare_dataset(opt), doctest::Contains("cram_bert_24h train"), cram::error);
        CHECK(snapshot(opt.out) == before);
    }
    {
        const cram::dir_lock writer(opt.out, "dataset", "cram_bert_24h prepare");  // another prepare at work
        CHECK_THROWS_WITH_AS(prepare_dataset(opt), doctest::Contains("cram_bert_24h prepare"), cram::error);
        CHECK_THROWS_AS(lock_dataset_for_reading(opt.out), cram::error);
    }
    CHECK_THROWS_WITH_AS(lock_dataset_for_reading(dir / "nothing"), doctest::Contains("does not exist"), cram::error);
    CHECK_FALSE(fs::exists(dir / "nothing"));
    prepare_dataset(opt);  // free again
    CHECK(siblings(dir, "ds.") == std::vector<std::string>{"ds.tmp-" + live, "ds.tmp-backup"});
}

TEST_CASE("prepare into a new directory given with a trailing slash") {
    const auto dir = cram::test::scratch_dir("reliability_slash");
    write_file(dir / "c.jsonl", word_corpus(100));
    auto opt = small_options(dir);
    opt.out = (dir / "new").string() + "/";
    prepare_dataset(opt);
    CHECK(fs::exists(dir / "new" / "summary.json"));
    CHECK(siblings(dir, "new.").empty());
}

// ---- summary.json: fingerprint and typed fields ----------------------------------------------------------

TEST_CASE("vocabulary fingerprint: XXH64 of the file's bytes, recorded in summary.json and verified") {
    const auto dir = cram::test::scratch_dir("reliability_fingerprint");
    write_file(dir / "empty.txt", "");
    write_file(dir / "abc.txt", "abc");
    CHECK(vocab_fingerprint(dir / "empty.txt") == "ef46db3751d8e999");  // XXH64("") in the reference's test vectors
    CHECK(vocab_fingerprint(dir / "abc.txt") == "44bc2cf5ad770999");    // XXH64("abc")
    CHECK_THROWS_WITH_AS(vocab_fingerprint(dir / "missing.txt"), doctest::Contains("missing.txt"), cram::error);

    write_file(dir / "c.jsonl", word_corpus(100));
    const auto opt = small_options(dir);
    const auto s = prepare_dataset(opt);
    const auto fp = vocab_fingerprint(opt.out / "vocab.txt");
    CHECK(s.vocab_xxh64 == fp);
    CHECK(read_dataset_summary(opt.out)["vocab_xxh64"] == fp);
    CHECK(verify_dataset_vocab(opt.out) == fp);

    // a changed vocab.txt (one token edited) no longer matches: both files are named
    const std::string vocab = read_file(opt.out / "vocab.txt");
    std::string edited = vocab;
    edited[edited.size() - 2] = edited[edited.size() - 2] == 'a' ? 'b' : 'a';
    write_file(opt.out / "vocab.txt", edited);
    CHECK_THROWS_WITH_AS(verify_dataset_vocab(opt.out), doctest::Contains((opt.out / "vocab.txt").c_str()), cram::error);
    CHECK_THROWS_WITH_AS(verify_dataset_vocab(opt.out), doctest::Contains("summary.json"), cram::error);
    CHECK_THROWS_WITH_AS(mlm_source(opt.out, "train", 16), doctest::Contains("vocab.txt"), cram::error);

    // a summary from before the fingerprint: accepted
    auto j = read_dataset_summary(opt.out);
    j.erase("vocab_xxh64");
    write_file(opt.out / "summary.json", j.dump(2));
    CHECK(verify_dataset_vocab(opt.out) == vocab_fingerprint(opt.out / "vocab.txt"));
    write_file(opt.out / "vocab.txt", vocab);
    mlm_source src(opt.out, "train", 16);
    CHECK(src.num_sequences() == s.train_blocks);
}

TEST_CASE("summary.json: wrong-typed fields are errors naming the file and the field") {
    const auto dir = cram::test::scratch_dir("reliability_summary");
    write_file(dir / "c.jsonl", word_corpus(100));
    const auto opt = small_options(dir);
    prepare_dataset(opt);
    const auto good = read_dataset_summary(opt.out);
    const std::string where = (opt.out / "summary.json").string();
    auto expect = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& field) {
        CAPTURE(field);
        auto j = good;
        edit(j);
        write_file(opt.out / "summary.json", j.dump());
        CHECK_THROWS_WITH_AS(read_dataset_summary(opt.out), doctest::Contains(where.c_str()), cram::error);
        CHECK_THROWS_WITH_AS(read_dataset_summary(opt.out), doctest::Contains(("\"" + field + "\"").c_str()), cram::error);
        CHECK_THROWS_WITH_AS(mlm_source(opt.out, "train", 16), doctest::Contains(("\"" + field + "\"").c_str()), cram::error);
        CHECK_THROWS_WITH_AS(verify_dataset_vocab(opt.out), doctest::Contains(("\"" + field + "\"").c_str()), cram::error);
    };
    expect([](auto& j) { j["seq_len"] = "abc"; }, "seq_len");
    expect([](auto& j) { j["seq_len"] = 16.5; }, "seq_len");
    expect([](auto& j) { j["seq_len"] = -16; }, "seq_len");
    expect([](auto& j) { j.erase("seq_len"); }, "seq_len");
    expect([](auto& j) { j["splits"] = 3; }, "splits");
    expect([](auto& j) { j.erase("splits"); }, "splits");
    expect([](auto& j) { j["splits"]["train"] = "x"; }, "splits.train");
    expect([](auto& j) { j["splits"]["train"]["shards"] = "train-00000.shard"; }, "splits.train.shards");
    expect([](auto& j) { j["splits"]["val"]["shards"] = {1}; }, "splits.val.shards[0]");
    expect([](auto& j) { j["splits"]["val"]["sequences"] = "many"; }, "splits.val.sequences");
    expect([](auto& j) { j["vocab_size"] = nullptr; }, "vocab_size");
    expect([](auto& j) { j["vocab_xxh64"] = 12; }, "vocab_xxh64");
    write_file(opt.out / "summary.json", "{\"seq_len\": 16,");
    CHECK_THROWS_WITH_AS(read_dataset_summary(opt.out), doctest::Contains(where.c_str()), cram::error);
    write_file(opt.out / "summary.json", "[1, 2]");
    CHECK_THROWS_WITH_AS(read_dataset_summary(opt.out), doctest::Contains(where.c_str()), cram::error);
    write_file(opt.out / "summary.json", good.dump());
    CHECK(mlm_source(opt.out, "train", 16).num_sequences() > 0);
}

TEST_CASE("readers: an over-long line names --max-line-bytes") {
    const auto dir = cram::test::scratch_dir("reliability_long_line");
    write_file(dir / "big.txt", "a\n" + std::string((2 << 20) + 5, 'x') + "\n");
    reader_options small;
    small.max_line_bytes = 1 << 20;
    CHECK_THROWS_WITH_AS(read_all({dir / "big.txt"}, small), doctest::Contains("--max-line-bytes"), cram::error);
    CHECK_THROWS_WITH_AS(read_all({dir / "big.txt"}, small), doctest::Contains("big.txt:2"), cram::error);
}

TEST_CASE("prepare: an alphabet larger than --vocab-size is an error, and nothing is written") {
    const auto dir = cram::test::scratch_dir("reliability_alphabet");
    // 200 distinct CJK ideographs (U+4E00..U+4EC7): each is a word of its own (no ## forms), so the trained
    // vocabulary would need 5 specials + 200 characters = 205 tokens
    std::string text;
    for (char32_t c = 0x4E00; c < 0x4E00 + 200; ++c) unicode::append_utf8(text, c);
    std::string corpus;
    for (int d = 0; d < 20; ++d) corpus += nlohmann::json({{"text", text}}).dump() + "\n";
    write_file(dir / "c.jsonl", corpus);
    auto opt = small_options(dir);
    opt.val_fraction = 0;
    opt.max_tokens_per_char = 2;
    CHECK_THROWS_WITH_AS(prepare_dataset(opt), doctest::Contains("205 tokens, more than --vocab-size 128"), cram::error);
    CHECK_FALSE(fs::exists(opt.out));
    CHECK(siblings(dir, "ds").empty());
    opt.vocab_size = 205;
    const auto s = prepare_dataset(opt);
    CHECK(s.vocab_size == 205);
}

// ---- damage to a prepared dataset ------------------------------------------------------------------------

TEST_CASE("every file of a dataset: truncated, a header byte or a data byte flipped, or deleted, is an error naming it") {
    const auto dir = cram::test::scratch_dir("data_rel_damage");
    write_file(dir / "c.jsonl", word_corpus(80));
    const prepare_options opt = small_options(dir);
    prepare_dataset(opt);
    const auto pristine = snapshot(opt.out);
    // reads the whole dataset as the trainer does: both splits, every sequence
    const auto read_dataset = [&] {
        for (const char* split : {"train", "val"}) {
            mlm_source src(opt.out, split, opt.seq_len);
            cram::masking_options m = src.masking({});
            for (std::int64_t i = 0; i < src.num_sequences(); i += 4) (void)src.next_batch(4, m, 1);
        }
    };
    REQUIRE_NOTHROW(read_dataset());
    int files = 0;
    for (const auto& [name, bytes] : pristine) {
        // tokenizer_config.json is for other tools (Hugging Face); cram never reads it
        if (bytes == "<dir>" || name == "tokenizer_config.json") continue;
        ++files;
        // the byte that breaks a header: a shard's magic, JSON's opening brace, vocab.txt's first token;
        // a data byte: deep in the token ids, the value of seq_len, the last token of the vocabulary
        const std::size_t header_at = name.ends_with(".shard") ? 3 : 0;
        const std::size_t data_at = name == "summary.json" ? bytes.find("\"seq_len\"") + 11 : bytes.size() - 3;
        const std::vector<std::pair<std::string, std::function<void(const fs::path&)>>> damages{
            {"truncated", [&](const fs::path& p) { write_file(p, bytes.substr(0, bytes.size() / 2)); }},
            {"header byte flipped", [&](const fs::path& p) { std::string b = bytes; b[header_at] ^= 0x04; write_file(p, b); }},
            {"data byte flipped", [&](const fs::path& p) { std::string b = bytes; b[data_at] ^= 0x01; write_file(p, b); }},
            {"deleted", [](const fs::path& p) { fs::remove(p); }},
        };
        for (const auto& [what, damage] : damages) {
            INFO(name << ": " << what);
            damage(opt.out / name);
            try {
                read_dataset();
                FAIL("the damaged dataset was read without an error");
            } catch (const cram::error& e) {
                CHECK(std::string(e.what()).find(opt.out.string()) != std::string::npos);  // names the dataset's file
            }
            write_file(opt.out / name, bytes);
        }
    }
    CHECK(files >= 4);  // summary.json, vocab.txt, a train and a val shard at least
}
