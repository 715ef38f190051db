// WordPiece encoding against Hugging Face's ids (fixtures made by tests/data/hf_reference/hf_reference.js
// with tokenizers 0.23): hard Unicode cases, seeded random strings from every plane, a Wikipedia sample,
// and, when the shared data is present, the vocabulary rules on real text.
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "cram/data/wordpiece.hpp"
#include "test_support.hpp"

namespace {

std::filesystem::path fixtures() { return std::filesystem::path(__FILE__).parent_path() / "fixtures"; }

std::vector<std::string> read_texts(const std::filesystem::path& jsonl) {
    std::ifstream in(jsonl);
    REQUIRE(in);
    std::vector<std::string> out;
    std::string line;
    while (std::getline(in, line)) {
        const auto j = nlohmann::json::parse(line);
        out.push_back(j.is_string() ? j.get<std::string>() : j.at("text").get<std::string>());
    }
    return out;
}

std::vector<std::vector<std::int32_t>> read_ids(const std::filesystem::path& file) {
    std::ifstream in(file);
    REQUIRE(in);
    std::vector<std::vector<std::int32_t>> out;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream s(line);
        std::vector<std::int32_t> ids;
        std::int32_t v;
        while (s >> v) ids.push_back(v);
        out.push_back(std::move(ids));
    }
    return out;
}

void check_parity(const std::string& name) {
    const auto wp = cram::data::wordpiece::load(fixtures() / "vocab_8k.txt");
    const auto texts = read_texts(fixtures() / (name + ".jsonl"));
    const auto ref = read_ids(fixtures() / (name + ".ids"));
    REQUIRE(texts.size() == ref.size());
    int mismatches = 0;
    for (std::size_t i = 0; i < texts.size(); ++i) {
        const auto got = wp.encode(texts[i]);
        if (got != ref[i]) {
            ++mismatches;
            INFO(name << " line " << i + 1 << ": " << nlohmann::json(texts[i]).dump());
            CHECK(got == ref[i]);
        }
    }
    CHECK(mismatches == 0);
    // the batch path gives the same ids
    std::vector<std::string_view> views(texts.begin(), texts.end());
    const auto batch = wp.encode_batch(views, 2);
    CHECK(batch == ref);
}

}  // namespace

TEST_CASE("wordpiece: ids equal Hugging Face's on hard Unicode cases and random strings") { check_parity("hard_cases"); }

TEST_CASE("wordpiece: ids equal Hugging Face's on a Wikipedia sample") { check_parity("wiki_sample"); }

TEST_CASE("wordpiece: normalised text equals BertNormalizer's") {
    const auto wp = cram::data::wordpiece::load(fixtures() / "vocab_8k.txt");
    const auto texts = read_texts(fixtures() / "hard_cases.jsonl");
    std::ifstream in(fixtures() / "hard_cases.normalized");
    std::string line;
    for (std::size_t i = 0; i < texts.size(); ++i) {
        REQUIRE(std::getline(in, line));
        const std::string ref = nlohmann::json::parse(line).get<std::string>();
        INFO("line " << i + 1);
        CHECK(wp.normalize(texts[i]) == ref);
    }
}

TEST_CASE("wordpiece: vocabulary rules") {
    const auto wp = cram::data::wordpiece::from_tokens({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff",
                                                        "##able", "a", "##b", "dup", "dup", "!", "x"});
    CHECK(wp.vocab_size() == 14);
    CHECK(wp.specials().mask == 4);
    CHECK(wp.specials().unk == 1);
    CHECK(wp.encode("unaffable!") == std::vector<std::int32_t>{5, 6, 7, 12});
    CHECK(wp.encode("UnAffAble") == std::vector<std::int32_t>{5, 6, 7});
    CHECK(wp.encode("unaffablez") == std::vector<std::int32_t>{1});  // a missing piece: the whole word is [UNK]
    CHECK(wp.encode("ab abb") == std::vector<std::int32_t>{8, 9, 8, 9, 9});
    CHECK(wp.token_to_id("dup") == 11);  // a repeated token keeps its last line
    CHECK(wp.id_to_token(10).empty());
    CHECK(wp.id_to_token(11) == "dup");
    CHECK(wp.token_to_id("nope") == -1);
    CHECK(wp.encode(std::string(100, 'x')).size() == 1);
    CHECK(wp.encode(std::string(101, 'x')) == std::vector<std::int32_t>{1});
    // invalid UTF-8 and NUL bytes are dropped like U+FFFD and control characters
    CHECK(wp.encode(std::string("a\xff\xfe" "b\0!", 6)) == std::vector<std::int32_t>{8, 9, 12});
    CHECK(wp.encode("").empty());
}

TEST_CASE("wordpiece: a vocabulary without [UNK] or a missing file is an error naming the file") {
    const auto dir = cram::test::scratch_dir("wordpiece_vocab");
    {
        std::ofstream(dir / "vocab.txt") << "[PAD]\nhello\n";
    }
    try {
        (void)cram::data::wordpiece::load(dir / "vocab.txt");
        FAIL("no exception");
    } catch (const cram::error& e) {
        CHECK(std::string(e.what()).find("vocab.txt") != std::string::npos);
        CHECK(std::string(e.what()).find("[UNK]") != std::string::npos);
    }
    CHECK_THROWS_WITH_AS((void)cram::data::wordpiece::load(dir / "missing.txt"), doctest::Contains("missing.txt"), cram::error);
    {
        std::ofstream(dir / "bad.txt") << "[UNK]\n\xff\xfe\n";
    }
    CHECK_THROWS_WITH_AS((void)cram::data::wordpiece::load(dir / "bad.txt"), doctest::Contains("line 2"), cram::error);
}

TEST_CASE("wordpiece: the cramming switches") {
    cram::data::normalizer_options opt;
    opt.replace_quotes = true;
    opt.drop_non_ascii = true;
    const auto wp = cram::data::wordpiece::from_tokens({"[UNK]", "\"", "a", "b", "e", "##b"}, opt);
    CHECK(wp.pretokenize("``a'' é日b") == std::vector<std::string>{"\"", "a", "\"", "e", "b"});
    CHECK(wp.encode("``a'' é日b") == std::vector<std::int32_t>{1, 2, 1, 4, 3});
}
