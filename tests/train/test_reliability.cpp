// What a run survives (docs/reliability.md): every way a checkpoint file can be damaged is found before
// it is trained on, skipped for the older good one and set aside; retention never deletes the newest
// verified checkpoint; a stop signal at any micro-step ends the run with a checkpoint from which the
// resumed run ends bit for bit where an uninterrupted one does; one process at a time per run directory.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "cram/core/checksum.hpp"
#include "cram/core/dir_lock.hpp"
#include "cram/core/signals.hpp"
#include "cram/cpu/backend.hpp"
#include "cram/model/presets.hpp"
#include "cram/train/trainer.hpp"
#include "test_support.hpp"
#include "train_fixtures.hpp"

using namespace cram;
using namespace cram::train;
namespace fs = std::filesystem;

namespace {

constexpr bert_config small = presets::test_pre_glu;  // vocab 23, seq 8
using cpu_backend = cpu::backend<float>;
using model_t = bert<small, cpu_backend>;

memory_source make_source() { return test::pattern_source(777); }

using test::step_clock;

trainer_options options(const fs::path& out, double every = 2.0, int keep = 3) {
    trainer_options o;
    o.ramp = {4, 8, 0.5};
    o.out = out;
    o.quiet = true;
    o.keep = keep;
    o.val_batches = 0;
    o.checkpoint_every = every;
    return o;
}

struct run_outcome {
    train_result result;
    std::vector<float> params;  // the final parameters, read back from the final checkpoint
};

// One trainer process: `budget` seconds of the step clock, optionally resumed, optionally with a hook
// after every micro-step (index from 0 within this process).
run_outcome run(const fs::path& out, double budget, bool resume, const std::function<void(int)>& after = {},
                double every = 2.0, int keep = 3) {
    auto data = make_source();
    step_clock sc;
    budget_clock clock(budget, sc.source());
    auto o = options(out, every, keep);
    o.resume = resume;
    trainer_observers obs;
    int micro = 0;
    obs.after_micro_step = [&] {
        sc.t += 0.25;
        if (after) after(micro);
        ++micro;
    };
    cpu_backend::context ctx;
    run_outcome r;
    r.result = train_mlm<small, cpu_backend>(ctx, data, o, clock, {}, nullptr, obs);
    r.params = load_checkpoint<float>(r.result.checkpoint, model_t::layout()).params;
    return r;
}

std::string read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}
void write_all(const fs::path& p, const std::string& s) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << s;
}

// The damage a disk, a bad copy or a person does to one file.
enum class damage { truncate, flip_header, flip_data, remove };
const char* name_of(damage d) {
    switch (d) {
    case damage::truncate: return "truncated";
    case damage::flip_header: return "a header byte flipped";
    case damage::flip_data: return "a data byte flipped";
    default: return "deleted";
    }
}
void apply_damage(const fs::path& file, damage d) {
    if (d == damage::remove) {
        fs::remove(file);
        return;
    }
    std::string s = read_all(file);
    REQUIRE(s.size() > 64);
    if (d == damage::truncate) s.resize(s.size() / 2);
    else if (d == damage::flip_header) s[s.find('"') + 1] ^= 0x01;  // inside the first JSON string
    else s[s.size() - 7] ^= 0x10;                                    // a bit deep in the tensor data / last field
    write_all(file, s);
}

std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

// Rewrites a checkpoint's state.json through `edit` and re-seals it (its own checksum), as a tool that
// knows the format would: what remains to catch is what the fields say.
void reseal_state(const fs::path& ckpt, const std::function<void(nlohmann::json&)>& edit) {
    auto st = nlohmann::json::parse(read_all(ckpt / "state.json"));
    edit(st);
    st.erase("state_xxh64");
    st["state_xxh64"] = xxh64::to_hex(xxh64::of(st.dump()));
    write_all(ckpt / "state.json", st.dump(2));
}

}  // namespace

TEST_CASE("every damaged checkpoint file is found, skipped for the older good one, and set aside") {
    // the reference: one uninterrupted run to the end of the budget
    const double budget = 12;  // 48 micro-steps
    const auto ref = run(test::scratch_dir("rel_ref"), budget, false);
    REQUIRE(ref.result.steps > 8);

    struct file_case {
        const char* file;
        damage how;
    };
    std::vector<file_case> cases;
    for (const char* f : {"model.safetensors", "optimizer.safetensors", "state.json"})
        for (damage d : {damage::truncate, damage::flip_header, damage::flip_data, damage::remove})
            cases.push_back({f, d});
    for (const auto& c : cases) {
        INFO(c.file << " " << name_of(c.how));
        const auto dir = test::scratch_dir("rel_matrix");
        // a run stopped after a few steps, with periodic checkpoints behind it
        const auto first = run(dir, budget, false, [&](int micro) {
            if (micro == 23) request_stop(SIGTERM);
        });
        request_stop(0);
        const auto before = list_checkpoints(dir / "checkpoints");
        REQUIRE(before.size() >= 2);
        const fs::path newest = before[0];
        apply_damage(newest / c.file, c.how);
        // keep = 1, the harshest retention: the damaged newest must never be what survives
        const auto resumed = run(dir, budget, true, {}, 2.0, 1);
        CHECK(resumed.result.resumed);
        CHECK(resumed.result.resumed_from_step < first.result.steps);  // the older, good checkpoint
        CHECK(resumed.result.steps == ref.result.steps);
        CHECK(resumed.params == ref.params);  // bit for bit: the damage cost time, not correctness
        const auto after = list_checkpoints(dir / "checkpoints");
        REQUIRE(after.size() == 1);
        CHECK_NOTHROW(verify_checkpoint(after[0]));
        // set aside, except a checkpoint without state.json: incomplete, never listed, replaced when reached
        bool set_aside = false;
        for (const auto& n : names_in(dir / "checkpoints")) set_aside |= n.ends_with(".damaged");
        CHECK(set_aside == !(std::string(c.file) == "state.json" && c.how == damage::remove));
    }
}

TEST_CASE("state.json fields of the wrong type, NaN weights and a foreign file are damage, not crashes") {
    const double budget = 8;
    const auto dir = test::scratch_dir("rel_fields");
    run(dir, budget, false, [&](int micro) {
        if (micro == 17) request_stop(SIGINT);
    });
    request_stop(0);
    const auto ckpts = list_checkpoints(dir / "checkpoints");
    REQUIRE(ckpts.size() >= 2);
    const auto& layout = model_t::layout();
    struct edit_case {
        const char* what;
        std::function<void(nlohmann::json&)> edit;
        const char* message;
    };
    const std::vector<edit_case> edits{
        {"step as a string", [](nlohmann::json& s) { s["step"] = "twelve"; }, "\"step\" should be an integer"},
        {"negative data position", [](nlohmann::json& s) { s["data_position"] = -3; }, "\"data_position\" should be an integer >= 0"},
        {"elapsed as an object", [](nlohmann::json& s) { s["elapsed_s"] = nlohmann::json::object(); }, "\"elapsed_s\" should be a finite number"},
        {"micro_steps missing", [](nlohmann::json& s) { s.erase("micro_steps"); }, "\"micro_steps\" is missing"},
        {"a file checksum changed", [](nlohmann::json& s) { s["files"]["model.safetensors"]["xxh64"] = "0000000000000000"; }, "does not match its recorded checksum"},
        {"not a cram state", [](nlohmann::json& s) { s["format"] = "something-else"; }, "not a cram checkpoint state"},
    };
    for (const auto& e : edits) {
        INFO(e.what);
        const auto copy = test::scratch_dir("rel_fields_copy");
        fs::copy(dir / "checkpoints", copy, fs::copy_options::recursive);
        const fs::path newest = copy / ckpts[0].filename();
        reseal_state(newest, e.edit);
        // the newest reports what is wrong with it, naming the file ...
        try {
            (void)load_checkpoint<float>(newest, layout, checkpoint_part::model_and_optimizer, check_training_state);
            FAIL("a damaged state.json loaded");
        } catch (const checkpoint_damaged& err) {
            const std::string what = err.what();
            CHECK(what.find(e.message) != std::string::npos);
            CHECK(what.find(newest.string()) != std::string::npos);
        }
        // ... and the newest usable one is the one before it
        const auto latest = load_latest_checkpoint<float>(copy, layout, checkpoint_part::model_and_optimizer,
                                                          on_damage::skip, check_training_state);
        REQUIRE(latest.has_value());
        CHECK(latest->dir == copy / ckpts[1].filename());
    }

    SUBCASE("a checkpoint of a newer format is an error of its own, not damage to pass over") {
        const auto copy = test::scratch_dir("rel_fields_new");
        fs::copy(dir / "checkpoints", copy, fs::copy_options::recursive);
        reseal_state(copy / ckpts[0].filename(), [](nlohmann::json& s) { s["version"] = 99; });
        CHECK_THROWS_WITH_AS(load_latest_checkpoint<float>(copy, layout), doctest::Contains("written by a newer cram"),
                             checkpoint_too_new);
    }

    SUBCASE("NaN weights under a valid checksum (an older cram, a diverged run) are refused") {
        const auto copy = test::scratch_dir("rel_fields_nan");
        fs::copy(dir / "checkpoints", copy, fs::copy_options::recursive);
        const fs::path newest = copy / ckpts[0].filename();
        const fs::path model = newest / "model.safetensors";
        std::string bytes = read_all(model);
        const float nan = std::numeric_limits<float>::quiet_NaN();
        std::memcpy(bytes.data() + bytes.size() - 4, &nan, 4);  // the last element of the last tensor
        write_all(model, bytes);
        reseal_state(newest, [&](nlohmann::json& s) {
            s["files"]["model.safetensors"]["xxh64"] = xxh64::to_hex(xxh64::of(bytes));
        });
        CHECK_THROWS_WITH_AS(load_checkpoint<float>(newest, layout), doctest::Contains("holds NaN or infinite values"),
                             checkpoint_damaged);
        CHECK(load_latest_checkpoint<float>(copy, layout)->dir == copy / ckpts[1].filename());
    }

    SUBCASE("a version-1 state (no checksums) still loads; its wrong-typed field is named") {
        const auto copy = test::scratch_dir("rel_fields_v1");
        fs::copy(dir / "checkpoints", copy, fs::copy_options::recursive);
        const fs::path newest = copy / ckpts[0].filename();
        auto st = nlohmann::json::parse(read_all(newest / "state.json"));
        for (const char* k : {"version", "files", "state_xxh64"}) st.erase(k);
        write_all(newest / "state.json", st.dump(2));
        CHECK(load_checkpoint<float>(newest, layout).params.size() == layout.buffer_size());
        st["micro_steps"] = "many";
        write_all(newest / "state.json", st.dump(2));
        const auto info = read_checkpoint_info(newest);
        CHECK_THROWS_WITH_AS(training_counters::from_state(info.state, info.state_file()),
                             doctest::Contains("\"micro_steps\" should be an integer"), checkpoint_damaged);
    }
}

TEST_CASE("saving: never into an existing directory, never non-finite, never losing the newest verified") {
    const auto& layout = model_t::layout();
    const auto dir = test::scratch_dir("rel_save");
    // values in the tensors, zeros in the alignment padding between them (what a load gives back)
    const auto filled = [&](float value) {
        std::vector<float> b(layout.buffer_size(), 0.0f);
        for (const auto& t : layout.tensors()) std::fill_n(b.begin() + std::ptrdiff_t(t.offset), t.size, value);
        return b;
    };
    std::vector<float> p = filled(0.5f), m = filled(0.1f), v = filled(0.2f);
    const nlohmann::json st{{"step", 0}};
    save_checkpoint(dir, 10, layout, p.data(), m.data(), v.data(), st, 3);

    SUBCASE("a step directory without state.json (an interrupted copy) is replaced whole") {
        fs::create_directories(dir / "step-00000020");
        write_all(dir / "step-00000020" / "model.safetensors", "junk");
        write_all(dir / "step-00000020" / "stray.txt", "junk");
        p = filled(0.75f);
        const auto s = save_checkpoint(dir, 20, layout, p.data(), m.data(), v.data(), st, 3);
        CHECK(names_in(s.dir) == std::vector<std::string>{"model.safetensors", "optimizer.safetensors", "state.json"});
        CHECK(load_checkpoint<float>(s.dir, layout).params == p);
    }
    SUBCASE("a damaged checkpoint of the same step is replaced whole, not patched") {
        apply_damage(dir / "step-00000010" / "model.safetensors", damage::flip_data);
        p = filled(0.25f);
        const auto s = save_checkpoint(dir, 10, layout, p.data(), m.data(), v.data(), st, 1);
        CHECK(load_checkpoint<float>(s.dir, layout).params == p);
        CHECK(list_checkpoints(dir).size() == 1);
    }
    SUBCASE("a second save of one step lends the first one's tensor files and records a new state") {
        saved_checkpoint first = save_checkpoint(dir, 30, layout, p.data(), m.data(), v.data(), st, 3);
        const auto second = save_checkpoint(dir, 30, layout, p.data(), m.data(), v.data(),
                                            nlohmann::json{{"step", 30}, {"elapsed_s", 9.5}}, 3, {}, &first);
        CHECK(second.model == first.model);
        CHECK(load_checkpoint<float>(second.dir, layout).state["elapsed_s"] == 9.5);
    }
    SUBCASE("non-finite parameters or moments are never written") {
        p[7] = std::numeric_limits<float>::infinity();
        CHECK_THROWS_WITH_AS(save_checkpoint(dir, 40, layout, p.data(), m.data(), v.data(), st, 1),
                             doctest::Contains("non-finite"), cram::error);
        p[7] = 0.5f;
        v[3] = -1.0f;
        CHECK_THROWS_WITH_AS(save_checkpoint(dir, 40, layout, p.data(), m.data(), v.data(), st, 1),
                             doctest::Contains("second moments"), cram::error);
        CHECK(list_checkpoints(dir).size() == 1);  // step 10 untouched
        for (const auto& name : names_in(dir)) CHECK(name.find(".tmp-") == std::string::npos);
    }
    SUBCASE("retention counts only verified checkpoints and keeps the newest") {
        save_checkpoint(dir, 20, layout, p.data(), m.data(), v.data(), st, 3);
        apply_damage(dir / "step-00000020" / "optimizer.safetensors", damage::truncate);
        save_checkpoint(dir, 30, layout, p.data(), m.data(), v.data(), st, 2);
        const auto left = list_checkpoints(dir);
        REQUIRE(left.size() == 2);  // 30 (new) and 10 (the newest older one that verifies)
        CHECK(left[0].filename() == "step-00000030");
        CHECK(left[1].filename() == "step-00000010");
        CHECK(fs::exists(dir / "step-00000020.damaged"));
    }
}

TEST_CASE("a stop signal at any micro-step: checkpoint, then a resume that ends bit for bit as an unbroken run") {
    const double budget = 10;  // 40 micro-steps, the ramp from 1 to 2 micro-batches per step
    const auto ref = run(test::scratch_dir("rel_signal_ref"), budget, false);
    for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) {
        for (const int at : {0, 5, 18, 27, 38}) {
            INFO(signal_name(sig) << " after micro-step " << at);
            const auto dir = test::scratch_dir("rel_signal");
            const auto stopped = run(dir, budget, false, [&](int micro) {
                if (micro == at) request_stop(sig);
            });
            request_stop(0);
            CHECK(stopped.result.signal == sig);
            CHECK(stopped.result.stop_reason == signal_name(sig));
            CHECK(stopped.result.elapsed < budget);
            CHECK_NOTHROW(verify_checkpoint(stopped.result.checkpoint));
            const auto resumed = run(dir, budget, true);
            CHECK(resumed.result.resumed_from_step == stopped.result.steps);
            CHECK(resumed.result.signal == 0);
            CHECK(resumed.result.steps == ref.result.steps);
            CHECK(resumed.params == ref.params);
        }
    }
}

TEST_CASE("one process per run directory; a dead holder's lock does not block") {
    const auto dir = test::scratch_dir("rel_lock");
    {
        const dir_lock held(dir, "run directory", "test holder");
        // a second trainer on the same directory refuses before it reads or writes anything
        auto data = make_source();
        step_clock sc;
        budget_clock clock(5, sc.source());
        cpu_backend::context ctx;
        const std::string holder = "pid " + std::to_string(::getpid()) + ", test holder";
        std::string message;
        try {
            train_mlm<small, cpu_backend>(ctx, data, options(dir), clock);
        } catch (const cram::error& e) {
            message = e.what();
        }
        CHECK(message.find(holder) != std::string::npos);
        CHECK_FALSE(fs::exists(dir / "checkpoints"));
    }
    // a child takes the lock and is killed; the lock goes with it
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        const dir_lock held(dir, "run directory", "child");
        ::pause();
        ::_exit(0);
    }
    ::usleep(200000);
    CHECK_THROWS_WITH_AS(dir_lock(dir, "run directory", "parent"), doctest::Contains("child"), cram::error);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    CHECK_NOTHROW(dir_lock(dir, "run directory", "parent"));
}

TEST_CASE("a fresh run refuses a directory that is not a run") {
    const auto dir = test::scratch_dir("rel_foreign");
    write_all(dir / "thesis.tex", "years of work");
    auto data = make_source();
    step_clock sc;
    budget_clock clock(5, sc.source());
    cpu_backend::context ctx;
    std::string message;
    try {
        train_mlm<small, cpu_backend>(ctx, data, options(dir), clock);
    } catch (const cram::error& e) {
        message = e.what();
    }
    CHECK(message.find("is not a cram run (it holds thesis.tex)") != std::string::npos);
    CHECK(read_all(dir / "thesis.tex") == "years of work");
}
