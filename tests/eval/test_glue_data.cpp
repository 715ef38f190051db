// GLUE readers and model inputs. Readers: row counts and label sets of the five shared tasks (../shared/data/glue, counts from its
// README), first rows checked against the files as read by eye; hand-made files in the official layouts of
// QQP (malformed rows skipped and counted), MNLI (three files), QNLI and WNLI; file:line errors.
#include <algorithm>
#include <fstream>
#include <functional>
#include <set>
#include <string>

#include "cram/data/wordpiece.hpp"
#include "cram/eval/glue_inputs.hpp"
#include "cram/eval/glue_tasks.hpp"
#include "test_support.hpp"

using namespace cram::eval;

namespace {
std::filesystem::path write_file(const std::filesystem::path& dir, const std::string& task, const std::string& split,
                                 const std::string& content) {
    std::filesystem::create_directories(dir / task);
    const auto p = dir / task / (split + ".tsv");
    std::ofstream(p, std::ios::binary) << content;
    return p;
}

using cram::test::error_of;

std::set<int> label_set(const glue_split& s) {
    std::set<int> out;
    for (const auto& e : s.examples) out.insert(e.label);
    return out;
}
}  // namespace

TEST_CASE("registry: nine tasks in GLUE order, labels, metrics, lookup by loose name") {
    std::vector<std::string> names;
    for (const auto& t : glue_tasks()) names.push_back(t.name);
    CHECK(names == std::vector<std::string>{"CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"});
    CHECK(&glue_task("sst2") == &glue_task("SST-2"));
    CHECK(glue_task("sts-b").name == "STS-B");
    CHECK(glue_task("STSB").regression);
    CHECK(glue_task("STSB").num_labels == 1);
    CHECK_FALSE(glue_task("RTE").regression);
    CHECK(glue_task("mnli").num_labels == 3);
    CHECK(glue_task("MNLI").dev_splits == std::vector<std::string>{"dev_matched", "dev_mismatched"});
    CHECK(glue_task("qnli").dev_splits == std::vector<std::string>{"dev"});
    CHECK(glue_task("CoLA").metric == "mcc");
    CHECK(glue_task("QQP").metric == "f1");
    CHECK(glue_task("MRPC").metric == "f1");
    CHECK(glue_task("STS-B").metric == "pearson");
    for (const char* t : {"SST-2", "MNLI", "QNLI", "RTE", "WNLI"}) CHECK(glue_task(t).metric == "accuracy");
    const std::string err = error_of([] { glue_task("SQuAD"); });
    CHECK(err.find("'SQuAD'") != std::string::npos);
    CHECK(err.find("CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI") != std::string::npos);
}

TEST_CASE("shared GLUE tasks: row counts, label sets, first rows") {
    if (!cram::test::have_shared_data("glue/CoLA/train.tsv")) return;
    const auto dir = cram::test::shared_data() / "glue";
    struct expect {
        const char* task;
        std::size_t train, dev;
    };
    for (const expect& e : {expect{"CoLA", 8551, 1043}, expect{"SST-2", 67349, 872}, expect{"MRPC", 3668, 408},
                            expect{"STS-B", 5749, 1500}, expect{"RTE", 2490, 277}}) {
        CAPTURE(e.task);
        const auto& info = glue_task(e.task);
        const auto train = read_glue_split(dir, info, "train");
        const auto dev = read_glue_split(dir, info, "dev");
        CHECK(train.examples.size() == e.train);
        CHECK(dev.examples.size() == e.dev);
        CHECK(train.skipped == 0);
        CHECK(dev.skipped == 0);
        if (info.regression) {
            for (const auto* s : {&train, &dev})
                for (const auto& x : s->examples) REQUIRE((x.score >= 0.0f && x.score <= 5.0f));
        } else {
            CHECK(label_set(train) == std::set<int>{0, 1});
            CHECK(label_set(dev) == std::set<int>{0, 1});
        }
        for (const auto& x : train.examples) {
            REQUIRE_FALSE(x.a.empty());
            if (info.name == "CoLA" || info.name == "SST-2")
                REQUIRE(x.b.empty());
            else
                REQUIRE_FALSE(x.b.empty());
        }
    }
    // first rows, as they read in the files
    const auto cola = read_glue_split(dir, glue_task("CoLA"), "train");
    CHECK(cola.examples[0].a == "Our friends won't buy this analysis, let alone the next one we propose.");
    CHECK(cola.examples[0].label == 1);
    const auto mrpc = read_glue_split(dir, glue_task("MRPC"), "dev");
    CHECK(mrpc.examples[0].label == 1);
    CHECK(mrpc.examples[0].a == "He said the foodservice pie business doesn't fit the company's long-term growth strategy.");
    CHECK(mrpc.examples[0].b == "\"The foodservice pie business does not fit our long-term growth strategy.");
    CHECK(mrpc.examples[1].label == 0);
    const auto stsb = read_glue_split(dir, glue_task("STS-B"), "dev");
    CHECK(stsb.examples[0].a == "A man with a hard hat is dancing.");
    CHECK(stsb.examples[0].b == "A man wearing a hard hat is dancing.");
    CHECK(stsb.examples[0].score == doctest::Approx(5.0));
    CHECK(stsb.examples[1].score == doctest::Approx(4.75));
    const auto rte = read_glue_split(dir, glue_task("RTE"), "dev");
    CHECK(rte.examples[0].label == 1);  // not_entailment
    CHECK(rte.examples[0].b == "Christopher Reeve had an accident.");
    const auto sst = read_glue_split(dir, glue_task("SST-2"), "dev");
    CHECK(sst.examples[0].a == "it 's a charming and often affecting journey . ");
    CHECK(sst.examples[0].label == 1);
    CHECK(sst.examples[1].label == 0);
}

TEST_CASE("QQP: columns by header name, malformed rows skipped and counted") {
    const auto dir = cram::test::scratch_dir("glue_qqp");
    write_file(dir, "QQP", "train",
               "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
               "0\t1\t2\tHow do I learn C++?\tWhat is the best way to learn C++?\t1\n"
               "1\t3\t4\tWhy is the sky blue?\n"  // malformed: too few columns
               "2\t5\t6\tIs tea good?\tIs coffee good?\t0\n"
               "3\t7\t8\tA?\tB?\tmaybe\n"  // malformed: label
               "\n"
               "4\t9\t10\tWho?\tWhom?\t1\r\n");
    const auto s = read_glue_split(dir, glue_task("QQP"), "train");
    REQUIRE(s.examples.size() == 3);
    CHECK(s.skipped == 2);  // lines 3 (4 columns of 6) and 5 (label 'maybe')
    CHECK(s.name == "train");
    CHECK(s.examples[0].a == "How do I learn C++?");
    CHECK(s.examples[0].b == "What is the best way to learn C++?");
    CHECK(s.examples[0].label == 1);
    CHECK(s.examples[1].label == 0);
    CHECK(s.examples[2].b == "Whom?");
    CHECK(s.examples[2].label == 1);
    // header order differs (as in the GLUE test split's header): still found by name
    write_file(dir, "QQP", "dev", "is_duplicate\tquestion2\tquestion1\n0\tsecond\tfirst\n");
    const auto d = read_glue_split(dir, glue_task("QQP"), "dev");
    REQUIRE(d.examples.size() == 1);
    CHECK(d.examples[0].a == "first");
    CHECK(d.examples[0].b == "second");
}

TEST_CASE("MNLI: train, dev_matched, dev_mismatched; texts columns 8, 9, gold_label last") {
    const auto dir = cram::test::scratch_dir("glue_mnli");
    const std::string train_header =
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
        "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n";
    const std::string dev_header =
        "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
        "sentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n";
    auto row = [](const std::string& a, const std::string& b, const std::string& labels) {
        return "0\t1\t1e\tgov\t( x )\t( y )\t(ROOT x)\t(ROOT y)\t" + a + "\t" + b + "\t" + labels + "\n";
    };
    write_file(dir, "MNLI", "train",
               train_header + row("P1", "H1", "neutral\tneutral") + row("P2", "H2", "contradiction\tcontradiction") +
                   row("P3", "H3", "entailment\tentailment"));
    write_file(dir, "MNLI", "dev_matched",
               dev_header + row("M1", "h1", "entailment\tentailment\tneutral\tentailment\tentailment\tentailment") +
                   row("M2", "h2", "neutral\tcontradiction\tneutral\tneutral\tcontradiction\tneutral"));
    write_file(dir, "MNLI", "dev_mismatched",
               dev_header + row("X1", "x1", "contradiction\tcontradiction\tcontradiction\tneutral\tneutral\tcontradiction"));
    const auto& info = glue_task("MNLI");
    const auto train = read_glue_split(dir, info, "train");
    REQUIRE(train.examples.size() == 3);
    CHECK(train.examples[0].a == "P1");
    CHECK(train.examples[0].b == "H1");
    CHECK(train.examples[0].label == 1);  // HF GLUE: entailment 0, neutral 1, contradiction 2
    CHECK(train.examples[1].label == 2);
    CHECK(train.examples[2].label == 0);
    const auto m = read_glue_split(dir, info, "dev_matched");
    REQUIRE(m.examples.size() == 2);
    CHECK(m.name == "dev_matched");
    CHECK(m.skipped == 0);
    CHECK(m.examples[0].a == "M1");
    CHECK(m.examples[0].label == 0);
    CHECK(m.examples[1].label == 1);  // gold_label (last column), not label1
    const auto mm = read_glue_split(dir, info, "dev_mismatched");
    REQUIRE(mm.examples.size() == 1);
    CHECK(mm.examples[0].a == "X1");
    CHECK(mm.examples[0].label == 2);
    // an unknown gold label is an error naming the file and line
    write_file(dir, "MNLI", "dev_matched", dev_header + row("a", "b", "x\tx\tx\tx\tx\tcontradicts"));
    const std::string err = error_of([&] { read_glue_split(dir, info, "dev_matched"); });
    CHECK(err.find("dev_matched.tsv:2:") != std::string::npos);
    CHECK(err.find("contradicts") != std::string::npos);
    // a "-" gold label (no annotator consensus; the GLUE files have none) is an unknown label too
    write_file(dir, "MNLI", "dev_mismatched", dev_header + row("a", "b", "x\tx\tx\tx\tx\t-"));
    CHECK(error_of([&] { read_glue_split(dir, info, "dev_mismatched"); }).find("dev_mismatched.tsv:2:") !=
          std::string::npos);
}

TEST_CASE("QNLI and WNLI layouts") {
    const auto dir = cram::test::scratch_dir("glue_qnli_wnli");
    write_file(dir, "QNLI", "dev",
               "index\tquestion\tsentence\tlabel\n"
               "0\tWhat came into force after the new constitution was herald?\tAs of that day, the new constitution "
               "heralding the Second Republic came into force.\tentailment\n"
               "1\tWhat is the first major city in the stream of the Rhine?\tThe most important tributaries in this "
               "area are the Ill below of Strasbourg.\tnot_entailment\n");
    const auto q = read_glue_split(dir, glue_task("QNLI"), "dev");
    REQUIRE(q.examples.size() == 2);
    CHECK(q.examples[0].a == "What came into force after the new constitution was herald?");
    CHECK(q.examples[0].label == 0);
    CHECK(q.examples[1].label == 1);
    write_file(dir, "WNLI", "train",
               "index\tsentence1\tsentence2\tlabel\n"
               "0\tI stuck a pin through a carrot. When I pulled the pin out, it had a hole.\tThe carrot had a hole.\t1\n"
               "1\tJohn couldn't see the stage with Billy in front of him because he is so short.\tJohn is so short.\t1\n"
               "2\tThe police arrested all of the gang members.\tThe police were trying to stop the drug trade.\t0\n");
    const auto w = read_glue_split(dir, glue_task("WNLI"), "train");
    REQUIRE(w.examples.size() == 3);
    CHECK(w.examples[2].b == "The police were trying to stop the drug trade.");
    CHECK(label_set(w) == std::set<int>{0, 1});
}

TEST_CASE("unreadable rows: errors name the file and the line") {
    const auto dir = cram::test::scratch_dir("glue_errors");
    const auto cola = write_file(dir, "CoLA", "train", "gj04\t1\t\tFine.\ngj04\t0\t*\tAlso fine.\ngj04\t1\n");
    std::string err = error_of([&] { read_glue_split(dir, glue_task("CoLA"), "train"); });
    CHECK(err.find(cola.string() + ":3:") != std::string::npos);
    CHECK(err.find("found 2") != std::string::npos);

    write_file(dir, "CoLA", "dev", "gj04\t2\t\tBad label.\n");
    err = error_of([&] { read_glue_split(dir, glue_task("CoLA"), "dev"); });
    CHECK(err.find("dev.tsv:1:") != std::string::npos);
    CHECK(err.find("'2'") != std::string::npos);

    write_file(dir, "RTE", "dev", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\tmaybe\n");
    err = error_of([&] { read_glue_split(dir, glue_task("RTE"), "dev"); });
    CHECK(err.find("RTE/dev.tsv:3:") != std::string::npos);
    CHECK(err.find("maybe") != std::string::npos);

    write_file(dir, "SST-2", "dev", "text\tlabel\nhello\t1\n");
    err = error_of([&] { read_glue_split(dir, glue_task("SST-2"), "dev"); });
    CHECK(err.find(":1: header has no column 'sentence'") != std::string::npos);

    write_file(dir, "STS-B", "dev",
               "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
               "0\tg\tf\t2012\t0\tnone\tnone\ta\tb\tfive\n");
    err = error_of([&] { read_glue_split(dir, glue_task("STS-B"), "dev"); });
    CHECK(err.find("STS-B/dev.tsv:2:") != std::string::npos);
    CHECK(err.find("not a number") != std::string::npos);

    write_file(dir, "MRPC", "dev", "\xEF\xBB\xBFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tx\ty\n");
    const auto mrpc = read_glue_split(dir, glue_task("MRPC"), "dev");  // the BOM is not part of the header
    REQUIRE(mrpc.examples.size() == 1);
    CHECK(mrpc.examples[0].b == "y");

    // a tab inside a text (one column too many) is a wrong column count, not a silently shifted field
    write_file(dir, "RTE", "train", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\textra\tentailment\n");
    err = error_of([&] { read_glue_split(dir, glue_task("RTE"), "train"); });
    CHECK(err.find("RTE/train.tsv:2:") != std::string::npos);
    CHECK(err.find("expected 4 tab-separated columns, found 5") != std::string::npos);

    err = error_of([&] { read_glue_split(dir, glue_task("QNLI"), "train"); });
    CHECK(err.find("cannot open GLUE file") != std::string::npos);
    CHECK(err.find((dir / "QNLI" / "train.tsv").string()) != std::string::npos);
    CHECK(err.find("docs/glue.md") != std::string::npos);
}

// ---- model inputs, with a tiny hand-written vocabulary ----

namespace {
cram::data::wordpiece tiny_vocab() {
    const auto dir = cram::test::scratch_dir("glue_inputs_vocab");
    std::ofstream v(dir / "vocab.txt");
    // ids: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, the 5, cat 6, sat 7, on 8, mat 9, dog 10, ##s 11, a 12
    for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog", "##s", "a"})
        v << t << "\n";
    v.close();
    return cram::data::wordpiece::load(dir / "vocab.txt");
}
}  // namespace

TEST_CASE("inputs: [CLS] A [SEP] B [SEP], token types, single sentence") {
    const auto tok = tiny_vocab();
    REQUIRE(tok.encode("The cats sat") == std::vector<std::int32_t>{5, 6, 11, 7});
    const auto pair = encode_example(tok, {"The cat sat", "a dog", -1, 0.f});
    CHECK(pair.ids == std::vector<std::int32_t>{2, 5, 6, 7, 3, 12, 10, 3});
    CHECK(pair.type_ids == std::vector<std::int32_t>{0, 0, 0, 0, 0, 1, 1, 1});
    const auto single = encode_example(tok, {"the mat", "", -1, 0.f});
    CHECK(single.ids == std::vector<std::int32_t>{2, 5, 9, 3});
    CHECK(single.type_ids == std::vector<std::int32_t>{0, 0, 0, 0});
}

TEST_CASE("inputs: longest-first truncation to the length limit") {
    const auto tok = tiny_vocab();
    // A: 6 tokens, B: 2 tokens, limit 8 -> 5 text tokens: A loses 3 (6>2, 5>2, 4>2 ... stops at 3+2=5)
    auto e = encode_example(tok, {"the cat sat on the mat", "a dog", -1, 0.f}, 8);
    CHECK(e.ids == std::vector<std::int32_t>{2, 5, 6, 7, 3, 12, 10, 3});
    CHECK(e.ids.size() == 8);
    // A 4, B 4, limit 9 -> 6 text tokens: equal lengths trim B first, then A: A 3, B 3
    e = encode_example(tok, {"the cat sat on", "a dog sat on", -1, 0.f}, 9);
    CHECK(e.ids == std::vector<std::int32_t>{2, 5, 6, 7, 3, 12, 10, 7, 3});
    // single sentence keeps its first max_len - 2 tokens
    e = encode_example(tok, {"the cat sat on the mat", "", -1, 0.f}, 5);
    CHECK(e.ids == std::vector<std::int32_t>{2, 5, 6, 7, 3});
    // the 128-token default on a long pair: 125 text tokens; only B, the longer, loses tokens (200 -> 75)
    std::string long_a, long_b;
    for (int i = 0; i < 50; ++i) long_a += "cat ";
    for (int i = 0; i < 200; ++i) long_b += "dog ";
    e = encode_example(tok, {long_a, long_b, -1, 0.f});
    CHECK(e.ids.size() == 128);
    CHECK(std::count(e.ids.begin(), e.ids.end(), 6) == 50);
    CHECK(std::count(e.ids.begin(), e.ids.end(), 10) == 75);
    std::vector<std::int32_t> a(70, 1), b(70, 2);
    detail::truncate_longest_first(a, b, 125);
    CHECK(a.size() == 63);  // ties trim B first: 63 + 62
    CHECK(b.size() == 62);
}

TEST_CASE("inputs: batches padded to the longest, lengths set") {
    const auto tok = tiny_vocab();
    std::vector<encoded_example> ex{encode_example(tok, {"the cat", "a dog", -1, 0.f}),
                                    encode_example(tok, {"the", "", -1, 0.f}),
                                    encode_example(tok, {"cat sat on the mat", "dogs", -1, 0.f})};
    const std::size_t idx[] = {1, 0};
    const auto b = make_token_batch(ex, idx, 2, 0);
    CHECK(b.batch == 2);
    CHECK(b.seq == 7);
    CHECK(b.lengths == std::vector<std::int32_t>{3, 7});
    CHECK(b.ids == std::vector<std::int32_t>{2, 5, 3, 0, 0, 0, 0, 2, 5, 6, 3, 12, 10, 3});
    CHECK(b.type_ids == std::vector<std::int32_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1});
    const auto v = b.view();
    CHECK(v.lengths[1] == 7);
    const std::size_t one[] = {2};
    const auto c = make_token_batch(ex, one, 1, 7);
    CHECK(c.seq == 10);  // [CLS] cat sat on the mat [SEP] dog ##s [SEP]
    CHECK(c.ids == std::vector<std::int32_t>{2, 6, 7, 8, 5, 9, 3, 10, 11, 3});
    CHECK(c.type_ids == std::vector<std::int32_t>{0, 0, 0, 0, 0, 0, 0, 1, 1, 1});
    CHECK(c.lengths == std::vector<std::int32_t>{10});
    const std::size_t bad[] = {3};
    CHECK_THROWS_AS(make_token_batch(ex, bad, 1, 0), cram::error);
}

// ---- byte-order marks: dropped the same way from every file of every task ----

namespace {
// Two rows in each task's official layout (header line first where the task has one).
std::string layout_sample(const std::string& task) {
    if (task == "CoLA") return "gj04\t1\t\tThe cat sat.\ngj04\t0\t*\tCat the sat.\n";
    if (task == "SST-2") return "sentence\tlabel\na fine movie \t1\nnot good \t0\n";
    if (task == "MRPC") return "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t11\t12\tA cat.\tThe cat.\n0\t13\t14\tB.\tC.\n";
    if (task == "STS-B")
        return "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
               "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane.\tAn air plane.\t5.000\n"
               "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\tA man.\tA dog.\t0.500\n";
    if (task == "QQP") return "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n0\t1\t2\tWhy?\tHow?\t0\n1\t3\t4\tA?\tA?\t1\n";
    if (task == "MNLI")
        return "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
               "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
               "0\t1\t1n\tgov\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tA text.\tB text.\tneutral\tneutral\n"
               "1\t2\t2e\tgov\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tC text.\tD text.\tentailment\tentailment\n";
    if (task == "QNLI") return "index\tquestion\tsentence\tlabel\n0\tWho?\tHe did.\tentailment\n1\tWhy?\tNo.\tnot_entailment\n";
    if (task == "RTE") return "index\tsentence1\tsentence2\tlabel\n0\tA b.\tB.\tnot_entailment\n1\tC.\tC d.\tentailment\n";
    if (task == "WNLI") return "index\tsentence1\tsentence2\tlabel\n0\tA b.\tB.\t1\n1\tC.\tC d.\t0\n";
    return "";
}

bool same_examples(const glue_split& a, const glue_split& b) {
    if (a.examples.size() != b.examples.size() || a.skipped != b.skipped) return false;
    for (std::size_t i = 0; i < a.examples.size(); ++i) {
        const auto &x = a.examples[i], &y = b.examples[i];
        if (x.a != y.a || x.b != y.b || x.label != y.label || x.score != y.score) return false;
    }
    return true;
}
}  // namespace

TEST_CASE("a UTF-8 byte-order mark at the start of any GLUE file of any task reads as if absent") {
    const auto plain = cram::test::scratch_dir("glue_bom_plain");
    const auto bom = cram::test::scratch_dir("glue_bom_with");
    for (const auto& info : glue_tasks()) {
        const std::string sample = layout_sample(info.name);
        REQUIRE_FALSE(sample.empty());
        std::vector<std::string> splits{"train", "test"};  // any split name is read the same way
        splits.insert(splits.end(), info.dev_splits.begin(), info.dev_splits.end());
        for (const auto& split : splits) {
            CAPTURE(info.name);
            CAPTURE(split);
            write_file(plain, info.name, split, sample);
            write_file(bom, info.name, split, "\xEF\xBB\xBF" + sample);
            const auto a = read_glue_split(plain, info, split);
            const auto b = read_glue_split(bom, info, split);
            CHECK(a.examples.size() == 2);
            CHECK(same_examples(a, b));
            // the first row's text never carries the mark (CoLA has no header: its first row is data)
            CHECK(b.examples.front().a.find("\xEF\xBB\xBF") == std::string::npos);
        }
    }
    // only at the very start: a mark elsewhere is text, and a header with one does not match
    const auto dir = cram::test::scratch_dir("glue_bom_inner");
    write_file(dir, "SST-2", "dev", "\xEF\xBB\xBF\xEF\xBB\xBFsentence\tlabel\nfine\t1\n");
    const std::string err = error_of([&] { read_glue_split(dir, glue_task("SST-2"), "dev"); });
    CHECK(err.find(":1: header has no column 'sentence'") != std::string::npos);
    // the header as read, escaped: the second mark and the tab are visible
    CHECK(err.find("\"\\xEF\\xBB\\xBFsentence\\tlabel\"") != std::string::npos);
    CHECK(err.find("2 tab-separated columns") != std::string::npos);
    // an invisible no-break space after a name
    write_file(dir, "RTE", "dev", "index\tsentence1\xC2\xA0\tsentence2\tlabel\n0\ta\tb\tentailment\n");
    CHECK(error_of([&] { read_glue_split(dir, glue_task("RTE"), "dev"); }).find("sentence1\\xC2\\xA0\\tsentence2") !=
          std::string::npos);
}
