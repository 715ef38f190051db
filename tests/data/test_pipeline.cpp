// Readers (JSON lines, text, blocks, zstd, bad input), token shards (round trip and every rejection), the
// MLM source (wrap-around, exact resume) and the prepare pipeline end to end on a generated corpus.
#include <zstd.h>

#include <fstream>
#include <numeric>

#include "cram/data.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace cram::data;

namespace {

void write_file(const fs::path& p, std::string_view data) {
    std::ofstream out(p, std::ios::binary);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string zstd_compress(std::string_view data) {
    std::string out(ZSTD_compressBound(data.size()), '\0');
    const auto n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
    REQUIRE(!ZSTD_isError(n));
    out.resize(n);
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

std::string synthetic_corpus(int docs) {
    // words from a small alphabet of syllables, sentences with dots, one document per line
    const char* syl[] = {"ka", "lo", "mi", "ne", "ru", "to", "sa", "vi", "de", "po"};
    std::uint64_t s = 7;
    std::string out;
    for (int d = 0; d < docs; ++d) {
        std::string text;
        const int words = 20 + static_cast<int>(cram::data::detail::splitmix64(s) % 60);
        for (int w = 0; w < words; ++w) {
            const int n = 1 + static_cast<int>(cram::data::detail::splitmix64(s) % 3);
            for (int k = 0; k < n; ++k) text += syl[cram::data::detail::splitmix64(s) % 10];
            text += (cram::data::detail::splitmix64(s) % 7 == 0) ? ". " : " ";
        }
        out += nlohmann::json({{"id", d}, {"text", text}}).dump() + "\n";
    }
    return out;
}

}  // namespace

TEST_CASE("readers: JSON lines, plain and zstd, other fields ignored, bad lines counted") {
    const auto dir = cram::test::scratch_dir("readers_jsonl");
    const std::string data = "{\"title\":\"A\",\"text\":\"first doc\\nline two\"}\n\n{\"text\":\"\"}\n"
                             "not json\n{\"text\": 5}\n{\"meta\":{\"x\":[1,2]},\"text\":\"caf\\u00e9 \\ud83d\\ude00\"}\r\n";
    write_file(dir / "a.jsonl", data);
    write_file(dir / "b.jsonl.zst", zstd_compress(data));
    reader_stats st;
    const auto docs = read_all({dir / "a.jsonl", dir / "b.jsonl.zst"}, {}, &st);
    REQUIRE(docs.size() == 4);
    CHECK(docs[0] == "first doc\nline two");
    CHECK(docs[1] == "caf\xC3\xA9 \xF0\x9F\x98\x80");
    CHECK(docs[2] == docs[0]);
    CHECK(st.empty == 2);
    CHECK(st.bad_lines == 4);
    CHECK(st.first_bad_line.find("a.jsonl:4") != std::string::npos);
    CHECK(st.files == 2);
}

TEST_CASE("readers: text lines and blank-line blocks; a 10 MB line") {
    const auto dir = cram::test::scratch_dir("readers_text");
    write_file(dir / "t.txt", "one\r\n\ntwo two\n  \nthree\nfour");
    CHECK(read_all({dir / "t.txt"}) == std::vector<std::string>{"one", "two two", "three", "four"});
    reader_options blocks;
    blocks.format = corpus_format::text_blocks;
    CHECK(read_all({dir / "t.txt"}, blocks) == std::vector<std::string>{"one", "two two", "three\nfour"});
    const std::string big(10 << 20, 'x');
    write_file(dir / "big.txt", "a\n" + big + "\nb\n");
    const auto docs = read_all({dir / "big.txt"});
    REQUIRE(docs.size() == 3);
    CHECK(docs[1].size() == big.size());
    reader_options small;
    small.max_line_bytes = 1 << 20;
    CHECK_THROWS_WITH_AS(read_all({dir / "big.txt"}, small), doctest::Contains("big.txt:2"), cram::error);
}

TEST_CASE("readers: missing files, truncated and corrupt zstd are errors naming the file") {
    const auto dir = cram::test::scratch_dir("readers_bad");
    CHECK_THROWS_WITH_AS(document_reader({dir / "nope.jsonl"}), doctest::Contains("nope.jsonl"), cram::error);
    std::string text;
    for (int i = 0; i < 20000; ++i) text += "{\"text\":\"document number " + std::to_string(i) + "\"}\n";
    const auto z = zstd_compress(text);
    write_file(dir / "cut.jsonl.zst", std::string_view(z).substr(0, z.size() / 2));
    CHECK_THROWS_WITH_AS(read_all({dir / "cut.jsonl.zst"}), doctest::Contains("cut.jsonl.zst"), cram::error);
    std::string bad = z;
    for (std::size_t i = 20; i < bad.size(); i += 97) bad[i] = static_cast<char>(bad[i] ^ 0x5A);
    write_file(dir / "bad.jsonl.zst", bad);
    CHECK_THROWS_WITH_AS(read_all({dir / "bad.jsonl.zst"}), doctest::Contains("bad.jsonl.zst"), cram::error);
}

TEST_CASE("shards: round trip in both token widths") {
    const auto dir = cram::test::scratch_dir("shards_roundtrip");
    for (std::int32_t vocab : {30000, 100000}) {
        const auto path = dir / ("s" + std::to_string(vocab) + ".shard");
        std::vector<std::int32_t> tokens(5 * 8);
        std::iota(tokens.begin(), tokens.end(), vocab - 40);
        {
            shard_writer w(path, vocab, 8);
            w.write(tokens.data(), 2);
            w.write(tokens.data() + 16, 3);
            w.finish();
        }
        shard_reader r(path);
        CHECK(r.num_sequences() == 5);
        CHECK(r.seq_len() == 8);
        CHECK(r.token_bytes() == (vocab <= 65536 ? 2 : 4));
        std::vector<std::int32_t> back(24);
        r.read(2, 3, back.data());
        CHECK(std::equal(back.begin(), back.end(), tokens.begin() + 16));
    }
}

TEST_CASE("shards: the reader rejects bad magic, version, size, checksum and ids, naming the file") {
    const auto dir = cram::test::scratch_dir("shards_bad");
    const auto good = dir / "good.shard";
    std::vector<std::int32_t> tokens(4 * 16, 7);
    {
        shard_writer w(good, 1000, 16);
        w.write(tokens.data(), 4);
        w.finish();
    }
    std::string bytes;
    {
        std::ifstream in(good, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    auto expect = [&](const std::string& name, std::string data, const char* what) {
        write_file(dir / name, data);
        CHECK_THROWS_WITH_AS(shard_reader(dir / name), doctest::Contains(what), cram::error);
        CHECK_THROWS_WITH_AS(shard_reader(dir / name), doctest::Contains(name.c_str()), cram::error);
    };
    std::string b = bytes;
    b[0] = 'X';
    expect("magic.shard", b, "magic");
    b = bytes;
    b[8] = 9;
    expect("version.shard", b, "version");
    expect("short.shard", bytes.substr(0, bytes.size() - 2), "truncated");
    expect("tiny.shard", bytes.substr(0, 10), "header");
    b = bytes;
    b[64 + 5] ^= 1;
    expect("flip.shard", b, "checksum");
    {  // a writer refuses ids >= vocab; a hand-made file with one is rejected on read
        shard_writer w(dir / "ids.shard", 1000, 16);
        tokens[3] = 1000;
        CHECK_THROWS_AS(w.write(tokens.data(), 4), cram::error);
    }
    CHECK_FALSE(fs::exists(dir / "ids.shard"));
    for (const auto& e : fs::directory_iterator(dir))  // an unfinished writer leaves nothing, not even a temporary file
        CHECK_FALSE(e.path().filename().string().starts_with("ids.shard"));
    b = bytes;
    const std::uint16_t big = 1500;
    std::memcpy(b.data() + 64, &big, 2);
    shard_header h;
    std::memcpy(&h, b.data(), 64);
    h.checksum = checksum_update(checksum_seed, b.data() + 64, b.size() - 64);
    std::memcpy(b.data(), &h, 64);
    expect("id.shard", b, "vocab");
}

TEST_CASE("wordpiece trainer: learns merges, specials first, and the vocabulary encodes its corpus") {
    word_counts counts;
    counts.add("lower", 5);
    counts.add("lowest", 3);
    counts.add("newer", 6);
    counts.add("wider", 2);
    trainer_options opt;
    opt.vocab_size = 40;
    const auto vocab = train_wordpiece(counts, opt);
    REQUIRE(vocab.size() <= 40);
    CHECK(vocab[0] == "[PAD]");
    CHECK(vocab[4] == "[MASK]");
    CHECK(vocab[5] == "d");  // alphabet by code point after the specials
    CHECK(std::find(vocab.begin(), vocab.end(), "##er") != vocab.end());  // the most frequent pair (e,r) x13
    const auto wp = wordpiece::from_tokens(vocab);
    for (const char* w : {"lower", "lowest", "newer", "wider"}) {
        const auto ids = wp.encode(w);
        CHECK(std::find(ids.begin(), ids.end(), wp.specials().unk) == ids.end());
    }
}

TEST_CASE("prepare + mlm_source: end to end on a generated corpus, exact resume") {
    const auto dir = cram::test::scratch_dir("prepare_e2e");
    write_file(dir / "c.jsonl.zst", zstd_compress(synthetic_corpus(600)));
    write_file(dir / "dup.jsonl", synthetic_corpus(50));
    prepare_options opt;
    opt.corpus = {dir / "c.jsonl.zst", dir / "dup.jsonl"};
    opt.out = dir / "ds";
    opt.vocab_size = 200;
    opt.seq_len = 32;
    opt.val_fraction = 0.1;
    opt.dedup = true;
    opt.order = curriculum::dots;
    opt.max_tokens_per_char = 1.0;  // a 200-token vocabulary splits these words a lot
    opt.shard_sequences = 100;
    opt.threads = 2;
    const auto s = prepare_dataset(opt);
    CHECK(s.documents == 650);
    CHECK(s.duplicates == 50);
    CHECK(s.vocab_size == 200);
    CHECK(s.train_blocks > 100);
    CHECK(s.val_blocks > 0);
    CHECK(s.train_shards.size() == static_cast<std::size_t>((s.train_blocks + 99) / 100));
    CHECK(s.train_tokens + s.val_tokens == s.tokens);
    CHECK((s.train_blocks + s.val_blocks) * 32 + s.dropped_tokens == s.tokens);
    for (const char* f : {"vocab.txt", "tokenizer_config.json", "summary.json"}) CHECK(fs::exists(opt.out / f));

    mlm_source src(opt.out, "train", 32);
    CHECK(src.num_sequences() == s.train_blocks);
    CHECK(src.vocab_size() == 200);
    // packing: [SEP] after each document, no [CLS], no [PAD]
    std::vector<std::int32_t> all(static_cast<std::size_t>(src.num_sequences()) * 32);
    src.read(0, static_cast<int>(src.num_sequences()), all.data());
    const auto sep = std::count(all.begin(), all.end(), src.specials().sep);
    CHECK(sep > 0);
    CHECK(std::count(all.begin(), all.end(), src.specials().cls) == 0);
    CHECK(std::count(all.begin(), all.end(), src.specials().pad) == 0);
    // curriculum dots: "." counts never increase along the order
    const auto dot = src.vocab().token_to_id(".");
    int prev = 1 << 30;
    bool sorted = true;
    for (std::int64_t b = 0; b < src.num_sequences(); ++b) {
        const int d = static_cast<int>(std::count(all.begin() + b * 32, all.begin() + (b + 1) * 32, dot));
        sorted &= d <= prev;
        prev = d;
    }
    CHECK(sorted);
    // wrap-around
    std::vector<std::int32_t> wrap(64);
    src.read(src.num_sequences() - 1, 2, wrap.data());
    CHECK(std::equal(wrap.begin(), wrap.begin() + 32, all.end() - 32));
    CHECK(std::equal(wrap.begin() + 32, wrap.end(), all.begin()));
    // resume: a fresh source seeked to the position reproduces the batches exactly
    cram::masking_options mo;
    src.next_batch(4, mo, 42);
    src.next_batch(4, mo, 42);
    const auto pos = src.position();
    const auto b1 = src.next_batch(4, mo, 42);
    mlm_source again(opt.out, "train", 32);
    again.seek(pos);
    const auto b2 = again.next_batch(4, mo, 42);
    CHECK(b1.ids == b2.ids);
    CHECK(b1.masked_positions == b2.masked_positions);
    CHECK(b1.masked_targets == b2.masked_targets);
    CHECK(b1.masked_positions.size() == 4 * 8);
    for (auto id : b1.ids) CHECK((id >= 0 && id < 200));

    mlm_source val(opt.out, "val", 32);
    CHECK(val.num_sequences() == s.val_blocks);
    CHECK_THROWS_WITH_AS(mlm_source(opt.out, "train", 64), doctest::Contains("32"), cram::error);

    // a re-run that fails (here: a missing corpus file) leaves the dataset as it was
    prepare_options bad = opt;
    bad.corpus = {dir / "c.jsonl.zst", dir / "missing.jsonl"};
    CHECK_THROWS_WITH_AS(prepare_dataset(bad), doctest::Contains("missing.jsonl"), cram::error);
    CHECK(mlm_source(opt.out, "train", 32).num_sequences() == s.train_blocks);
    // a directory without summary.json is not a dataset
    fs::remove(opt.out / "summary.json");
    CHECK_THROWS_WITH_AS(mlm_source(opt.out, "train", 32), doctest::Contains("summary.json"), cram::error);
}

TEST_CASE("prepare: a given vocabulary, text blocks, no shuffle, filter") {
    const auto dir = cram::test::scratch_dir("prepare_vocab");
    write_file(dir / "t.txt", "hello world.\nsecond line\n\n1 2 3 4 5 6 7 8 9\n\n\n\nhello hello world\n");
    write_file(dir / "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n.\nsecond\nline\n");
    prepare_options opt;
    opt.corpus = {dir / "t.txt"};
    opt.out = dir / "ds";
    opt.vocab = dir / "vocab.txt";
    opt.seq_len = 4;
    opt.val_fraction = 0;
    opt.shuffle = false;
    opt.reader.format = corpus_format::text_blocks;
    const auto s = prepare_dataset(opt);
    CHECK(s.documents == 3);
    CHECK(s.filtered == 1);  // "1 2 3 ...": 9 tokens (all [UNK]) for 17 characters > 0.25
    mlm_source src(opt.out, "train", 4);
    std::vector<std::int32_t> t(static_cast<std::size_t>(src.num_sequences()) * 4);
    src.read(0, static_cast<int>(src.num_sequences()), t.data());
    // hello world . second line [SEP] hello hello world [SEP] -> 10 tokens -> 2 blocks, 2 dropped
    CHECK(t == std::vector<std::int32_t>{5, 6, 7, 8, 9, 3, 5, 5});
    CHECK(s.dropped_tokens == 2);
}
