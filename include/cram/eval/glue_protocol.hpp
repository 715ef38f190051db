// The GLUE fine-tuning protocols cram offers by name: the released cramming code's GLUE config and the
// one the paper's text (v1) describes. They differ in batch size and learning rate; a report names the
// protocol it followed, and every setting that differs from that protocol is listed as a deviation.
#pragma once

#include <array>
#include <cstdio>
#include <string>
#include <string_view>

#include "cram/core/error.hpp"
#include "cram/eval/published.hpp"

namespace cram::eval {

struct glue_protocol {
    std::string_view name;
    int batch = 16;                // sequences per optimizer step
    double lr = 4e-5;              // peak learning rate
    int epochs = 5;
    double warmup_fraction = 0.1;  // linear warm-up over ceil(fraction x steps) ...
    std::string_view schedule;     // ... then this decay to 0 ("cosine": finetune_schedule.hpp, the only one)
    std::string_view published_row;  // the row of published_rows this protocol is meant to reproduce
    std::string_view source;         // where the values come from, and which of them are inferred
};

namespace glue_protocols {

inline constexpr glue_protocol released{
    .name = "released", .batch = 16, .lr = 4e-5, .epochs = 5, .warmup_fraction = 0.1, .schedule = "cosine",
    .published_row = "crammed BERT, 24 h A6000 (released model)",
    .source = "the released cramming code's eval/GLUE_sane.yaml (batch_size 16, optim.lr 4e-5, epochs 5, "
              "scheduler cosine-decay, warmup_steps 0.1), the config its README evaluates the final recipe with"};

inline constexpr glue_protocol article{
    .name = "article", .batch = 32, .lr = 2e-5, .epochs = 5, .warmup_fraction = 0.1, .schedule = "cosine",
    .published_row = "crammed BERT, 24 h A6000 (paper v1)",
    .source = "the paper's text (v1): batch 32, learning rate 2e-5, 5 epochs; the warm-up and the schedule are not "
              "stated there, so they are the released config's (an inference)"};

}  // namespace glue_protocols

// Every protocol, the default first.
inline constexpr std::array<glue_protocol, 2> all_glue_protocols{glue_protocols::released, glue_protocols::article};
inline constexpr std::string_view default_glue_protocol = glue_protocols::released.name;

// "released, article": for help texts and error messages.
inline std::string glue_protocol_names() {
    std::string s;
    for (const auto& p : all_glue_protocols) s.append(s.empty() ? "" : ", ").append(p.name);
    return s;
}

// The protocol of that name (exact); an unknown name is an error listing the names.
inline const glue_protocol& find_glue_protocol(std::string_view name) {
    for (const auto& p : all_glue_protocols)
        if (p.name == name) return p;
    CRAM_THROW("unknown GLUE protocol '", std::string(name), "': the protocols are ", glue_protocol_names(),
               " (docs/glue.md, \"Protocols\")");
}

// "batch 32, lr 2e-05, 5 epochs, 10% linear warm-up then cosine decay to 0"
inline std::string describe_glue_protocol(const glue_protocol& p) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "batch %d, lr %g, %d epochs, %g%% linear warm-up then %.*s decay to 0", p.batch,
                  p.lr, p.epochs, 100.0 * p.warmup_fraction, int(p.schedule.size()), p.schedule.data());
    return buf;
}

// The published row a protocol is meant to reproduce.
inline const published_row& protocol_published_row(const glue_protocol& p) {
    const published_row* row = find_published_row(p.published_row);
    CRAM_CHECK(row, "GLUE protocol ", p.name, " names the published row '", p.published_row, "', which CRAMMING.md's "
               "table (published_rows) does not hold");
    return *row;
}

}  // namespace cram::eval
