// The GLUE protocols by name: the table against the numbers of the sources (the released code's
// eval/GLUE_sane.yaml: batch 16, lr 4e-5, 5 epochs, cosine decay after a 10% warm-up; the paper's text:
// batch 32, lr 2e-5, 5 epochs), an unknown name, the options a protocol gives, deviations measured against
// the chosen protocol, and a report that names it.
#include <algorithm>

#include "cram/eval/glue.hpp"
#include "test_support.hpp"

using namespace cram::eval;

namespace {
bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }
}  // namespace

TEST_CASE("glue protocols: the table holds the sources' numbers") {
    const glue_protocol& released = find_glue_protocol("released");
    CHECK(released.batch == 16);
    CHECK(released.lr == 4e-5);
    CHECK(released.epochs == 5);
    CHECK(released.warmup_fraction == 0.1);
    CHECK(released.schedule == "cosine");
    CHECK(released.published_row == "crammed BERT, 24 h A6000 (released model)");

    const glue_protocol& article = find_glue_protocol("article");
    CHECK(article.batch == 32);
    CHECK(article.lr == 2e-5);
    CHECK(article.epochs == 5);
    CHECK(article.warmup_fraction == 0.1);  // not stated in the article: the released config's (docs/glue.md)
    CHECK(article.schedule == "cosine");
    CHECK(article.published_row == "crammed BERT, 24 h A6000 (paper v1)");

    CHECK(default_glue_protocol == "released");
    CHECK(all_glue_protocols.size() == 2);
    // each names a row CRAMMING.md publishes; the released row's average is 80.7, the article's 78.6
    CHECK(protocol_published_row(released).average == 80.7);
    CHECK(protocol_published_row(article).average == 78.6);
    CHECK(describe_glue_protocol(article) == "batch 32, lr 2e-05, 5 epochs, 10% linear warm-up then cosine decay to 0");
}

TEST_CASE("glue protocols: an unknown name is an error listing the names") {
    CHECK_THROWS_WITH_AS(find_glue_protocol("paper"),
                         doctest::Contains("unknown GLUE protocol 'paper': the protocols are released, article"),
                         cram::error);
    CHECK_THROWS_AS(find_glue_protocol("Released"), cram::error);  // names are exact
    CHECK(glue_protocol_names() == "released, article");
}

TEST_CASE("glue protocols: the options a protocol gives; the defaults are the released protocol's") {
    const finetune_options defaults;
    CHECK(defaults.batch == 16);
    CHECK(defaults.lr == 4e-5f);
    CHECK(defaults.epochs == 5);
    CHECK(defaults.warmup_fraction == 0.1);
    const finetune_options a = finetune_options_for(glue_protocols::article);
    CHECK(a.batch == 32);
    CHECK(a.lr == 2e-5f);
    CHECK(a.epochs == 5);
    CHECK(a.warmup_fraction == 0.1);
    // everything else is shared: dropout 0.1, no weight decay, no clipping, 128 tokens
    CHECK(a.dropout == 0.1f);
    CHECK(a.attention_dropout == 0.1f);
    CHECK(a.weight_decay == 0.0f);
    CHECK(a.clip_norm == 0.0f);
    CHECK(a.max_len == 128);
}

TEST_CASE("glue protocols: deviations are measured against the chosen protocol") {
    glue_eval_options o;
    o.protocol = glue_protocols::article;
    o.finetune = finetune_options_for(o.protocol);
    CHECK(protocol_deviations(o).empty());

    // the released values under the article protocol: two deviations, each naming the article's value
    glue_eval_options released_values = o;
    released_values.finetune = finetune_options_for(glue_protocols::released);
    const auto d = protocol_deviations(released_values);
    CHECK(d.size() == 2);
    CHECK(has(d, "batch 16 (protocol article: 32)"));
    CHECK(has(d, "learning rate 4e-05 (protocol article: 2e-05)"));

    // overrides, one at a time
    glue_eval_options epochs = o;
    epochs.finetune.epochs = 3;
    CHECK(protocol_deviations(epochs) == std::vector<std::string>{"3 epoch(s) (protocol article: 5)"});
    glue_eval_options warmup = o;
    warmup.finetune.warmup_fraction = 0.06;
    CHECK(protocol_deviations(warmup) == std::vector<std::string>{"warm-up fraction 0.06 (protocol article: 0.1)"});
    // an "override" with the protocol's own value is none
    glue_eval_options same = o;
    same.finetune.batch = 32;
    CHECK(protocol_deviations(same).empty());
    // the released protocol with its defaults: none either
    CHECK(protocol_deviations(glue_eval_options{}).empty());
}

TEST_CASE("glue protocols: a report names its protocol; the article's with its own values shows no deviation") {
    glue_eval_options o;
    o.protocol = glue_protocols::article;
    o.finetune = finetune_options_for(o.protocol);
    glue_report rep;
    rep.protocol = o.protocol;
    rep.deviations = protocol_deviations(o);
    const auto j = report_json(rep);
    CHECK(j["protocol"]["name"] == "article");
    CHECK(j["protocol"]["batch"] == 32);
    CHECK(j["protocol"]["lr"].get<double>() == 2e-5);
    CHECK(j["protocol"]["epochs"] == 5);
    CHECK(j["protocol"]["published_row"] == "crammed BERT, 24 h A6000 (paper v1)");
    CHECK(j["deviations"].empty());
    CHECK(j["protocol_followed"].get<bool>());
    const std::string md = report_markdown(rep);
    CHECK(md.find("GLUE protocol `article`: batch 32, lr 2e-05, 5 epochs") != std::string::npos);
    CHECK(md.find("Deviations") == std::string::npos);
    CHECK(md.find("crammed BERT, 24 h A6000 (paper v1) (this protocol's row)") != std::string::npos);
    CHECK(md.find("(released model) (this protocol's row)") == std::string::npos);

    // overridden batch and lr: the report lists both against the article's values
    o.finetune.batch = 8;
    o.finetune.lr = 1e-4f;
    rep.deviations = protocol_deviations(o);
    const auto jd = report_json(rep);
    CHECK(jd["protocol"]["name"] == "article");
    CHECK_FALSE(jd["protocol_followed"].get<bool>());
    CHECK(jd["deviations"].size() == 2);
    const std::string mdd = report_markdown(rep);
    CHECK(mdd.find("Deviations from the `article` GLUE protocol") != std::string::npos);
    CHECK(mdd.find("- batch 8 (protocol article: 32)") != std::string::npos);
    CHECK(mdd.find("- learning rate 0.0001 (protocol article: 2e-05)") != std::string::npos);

    // a report that never chose one is the released protocol's
    CHECK(report_json(glue_report{})["protocol"]["name"] == "released");
}

TEST_CASE("glue protocols: the resume fingerprint holds the protocol's name, not only its numbers") {
    glue_eval_options article;
    article.protocol = glue_protocols::article;
    article.finetune = finetune_options_for(article.protocol);
    glue_eval_options released_overridden;  // the released protocol overridden to the article's numbers
    released_overridden.finetune = finetune_options_for(glue_protocols::article);
    CHECK(glue_fingerprint(article)["protocol"] == "article");
    const auto diff = detail::fingerprint_differences(glue_fingerprint(released_overridden), glue_fingerprint(article));
    CHECK(diff == std::vector<std::string>{"protocol (recorded \"released\", now \"article\")"});
}
