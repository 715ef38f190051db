// Checkpoint files: safetensors bytes against the published format (by hand and through an independent
// stdlib-only Python reader), the whole checkpoint round trip, crash safety (a child killed with SIGKILL
// while writing leaves the previous checkpoint loadable) and the refusal of a foreign configuration.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cram/model/parameters.hpp"
#include "cram/model/presets.hpp"
#include "cram/train/checkpoint.hpp"
#include "cram/train/safetensors.hpp"
#include "test_support.hpp"

using namespace cram;
using namespace cram::train;
namespace fs = std::filesystem;

namespace {

std::string read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

// Runs the independent Python reader; returns its JSON, or null when python3 is not available.
nlohmann::json python_check(const fs::path& file) {
    if (std::system("python3 -c 'import json, struct' >/dev/null 2>&1") != 0) {
        MESSAGE("SKIPPED: python3 not available for the independent safetensors reader");
        return nullptr;
    }
    const fs::path script = fs::path(__FILE__).parent_path() / "safetensors_check.py";
    const std::string cmd = "python3 '" + script.string() + "' '" + file.string() + "'";
    std::FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    const int rc = ::pclose(p);
    INFO("python reader said: " << out);
    REQUIRE(rc == 0);
    return nlohmann::json::parse(out);
}

}  // namespace

TEST_CASE("safetensors bytes follow the format") {
    const auto dir = test::scratch_dir("train_safetensors");
    const std::vector<float> a{1.5f, -2.0f, 3.25f, 0.0f, 8.0f, 1e-3f};  // [2, 3]
    const std::vector<float> b{7.0f};                                     // [1]
    write_safetensors(dir / "t.safetensors", {{"a.weight", "F32", {2, 3}, a.data()}, {"b", "F32", {1}, b.data()}},
                      {{"note", "hello"}});
    const std::string bytes = read_all(dir / "t.safetensors");
    REQUIRE(bytes.size() > 8);
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[std::size_t(i)]);
    CHECK((8 + n) % 8 == 0);  // data section 8-byte aligned
    REQUIRE(8 + n + 7 * 4 == bytes.size());
    const auto h = nlohmann::json::parse(bytes.substr(8, n));
    CHECK(h["__metadata__"]["format"] == "pt");
    CHECK(h["__metadata__"]["note"] == "hello");
    CHECK(h["a.weight"]["dtype"] == "F32");
    CHECK(h["a.weight"]["shape"] == nlohmann::json::array({2, 3}));
    CHECK(h["a.weight"]["data_offsets"] == nlohmann::json::array({0, 24}));
    CHECK(h["b"]["data_offsets"] == nlohmann::json::array({24, 28}));
    float got[6];
    std::memcpy(got, bytes.data() + 8 + n, 24);  // little-endian host (x86-64, aarch64)
    for (int i = 0; i < 6; ++i) CHECK(got[i] == a[std::size_t(i)]);

    const auto py = python_check(dir / "t.safetensors");
    if (!py.is_null()) {
        CHECK(py["tensors"]["a.weight"]["shape"] == nlohmann::json::array({2, 3}));
        CHECK(py["tensors"]["a.weight"]["sum"].get<double>() == doctest::Approx(1.5 - 2 + 3.25 + 8 + 1e-3).epsilon(1e-6));
        CHECK(py["tensors"]["b"]["first"].get<double>() == 7.0);
        CHECK(py["metadata"]["format"] == "pt");
    }

    // our reader rejects what the format forbids
    {
        std::string bad = bytes;
        bad.resize(bad.size() - 4);  // truncated data
        std::ofstream(dir / "trunc.safetensors", std::ios::binary) << bad;
        CHECK_THROWS_WITH_AS(safetensors_file(dir / "trunc.safetensors"), doctest::Contains("trunc.safetensors"), cram::error);
        std::ofstream(dir / "short.safetensors", std::ios::binary) << "abc";
        CHECK_THROWS_WITH_AS(safetensors_file(dir / "short.safetensors"), doctest::Contains("shorter than the 8-byte"), cram::error);
    }
}

TEST_CASE("checkpoint round trip with the model layout; the Python reader sees every tensor") {
    const auto& layout = bert_layout<presets::test_pre_glu>();
    const std::size_t n = layout.buffer_size();
    std::vector<float> p(n, 0.f), m(n, 0.f), v(n, 0.f);
    for (const auto& t : layout.tensors())
        for (std::size_t i = 0; i < t.size; ++i) {
            p[t.offset + i] = 0.001f * float(i + 1) + float(t.offset);
            m[t.offset + i] = -0.5f * float(i);
            v[t.offset + i] = 0.25f * float(i % 7);
        }
    const auto dir = test::scratch_dir("train_ckpt_roundtrip");
    const nlohmann::json state{{"step", 12}, {"elapsed_s", 3.5}};
    const auto where = save_checkpoint(dir, 12, layout, p.data(), m.data(), v.data(), state, 2).dir;
    CHECK(where.filename() == "step-00000012");
    const auto back = load_checkpoint<float>(where, layout);
    CHECK(back.params == p);
    CHECK(back.m == m);
    CHECK(back.v == v);
    CHECK(back.state["elapsed_s"] == 3.5);

    const auto py = python_check(where / "model.safetensors");
    if (!py.is_null()) {
        CHECK(py["tensors"].size() == layout.tensors().size());
        for (const auto& t : layout.tensors()) {
            INFO(t.name);
            REQUIRE(py["tensors"].contains(t.name));
            CHECK(py["tensors"][t.name]["shape"] == nlohmann::json(t.shape));
            double sum = 0;
            for (std::size_t i = 0; i < t.size; ++i) sum += double(p[t.offset + i]);
            CHECK(py["tensors"][t.name]["sum"].get<double>() == doctest::Approx(sum).epsilon(1e-9));
        }
        CHECK(py["metadata"]["format"] == "pt");
        const auto pyo = python_check(where / "optimizer.safetensors");
        CHECK(pyo["tensors"].size() == 2 * layout.tensors().size());
    }

    // keep = 2: the third save retires the oldest
    save_checkpoint(dir, 20, layout, p.data(), m.data(), v.data(), state, 2);
    save_checkpoint(dir, 30, layout, p.data(), m.data(), v.data(), state, 2);
    const auto all = list_checkpoints(dir);
    REQUIRE(all.size() == 2);
    CHECK(all[0].filename() == "step-00000030");
    CHECK(all[1].filename() == "step-00000020");
}

TEST_CASE("config differences are named") {
    const nlohmann::json a{{"preset", "crammed_tiny"}, {"adamw", {{"lr", 0.001}}}, {"seed", 0}};
    nlohmann::json b = a;
    b["preset"] = "crammed_mini";
    b["adamw"]["lr"] = 0.002;
    const auto d = config_differences(a, b);
    REQUIRE(d.size() == 2);
    CHECK(d[0] == "adamw.lr: checkpoint 0.001, this run 0.002");
    CHECK(d[1] == "preset: checkpoint \"crammed_tiny\", this run \"crammed_mini\"");
    CHECK(config_fingerprint(a) != config_fingerprint(b));
    CHECK(config_fingerprint(a) == config_fingerprint(nlohmann::json::parse(a.dump())));
}

// A child writes checkpoint 1, then starts checkpoint 2 and is killed with SIGKILL at a chosen point
// (told through a pipe); the parent then loads the newest complete checkpoint.
TEST_CASE("SIGKILL during a checkpoint write leaves the previous one loadable") {
    const auto& layout = bert_layout<presets::crammed_tiny>();  // ~5.5 MB per buffer: writes take a moment
    const std::size_t n = layout.buffer_size();
    const char* stages[] = {"begin", "model", "optimizer", "state", "random"};
    for (const char* stage : stages) {
        INFO("killed at " << stage);
        const auto dir = test::scratch_dir(std::string("train_ckpt_kill_") + stage);
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(fds[0]);
            std::vector<float> p(n, 1.0f), m(n, 0.5f), v(n, 0.25f);
            save_checkpoint(dir, 1, layout, p.data(), m.data(), v.data(), nlohmann::json{{"step", 1}}, 3);
            std::fill(p.begin(), p.end(), 2.0f);
            const std::string want = stage;
            checkpoint_write_hook() = [&](const char* s) {
                if (want == s) {
                    (void)!::write(fds[1], "k", 1);
                    ::pause();  // wait for the kill right here
                }
            };
            if (want == "random") (void)!::write(fds[1], "k", 1);  // killed somewhere in the writes below
            for (int i = 2; i < 1000; ++i)
                save_checkpoint(dir, i, layout, p.data(), m.data(), v.data(), nlohmann::json{{"step", i}}, 1);
            ::_exit(0);
        }
        ::close(fds[1]);
        char c = 0;
        REQUIRE(::read(fds[0], &c, 1) == 1);
        if (std::string(stage) == "random") ::usleep(30000);
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        ::close(fds[0]);
        CHECK(WIFSIGNALED(status));
        const auto latest = load_latest_checkpoint<float>(dir, layout);
        REQUIRE(latest.has_value());
        const std::int64_t step = latest->state["step"].get<std::int64_t>();
        if (std::string(stage) != "random") CHECK(step == 1);
        CHECK(step >= 1);
        // the loaded parameters are those of the step the state names, never a mix
        const float expect = step == 1 ? 1.0f : 2.0f;
        bool all_equal = true;
        for (const auto& t : layout.tensors())
            for (std::size_t i = 0; i < t.size; ++i) all_equal &= latest->params[t.offset + i] == expect;
        CHECK(all_equal);
        // the next writer cleans the torn temporary directory up and succeeds
        std::vector<float> p(n, 3.0f), m(n, 0.f), v(n, 0.f);
        save_checkpoint(dir, 5000, layout, p.data(), m.data(), v.data(), nlohmann::json{{"step", 5000}}, 3);
        for (const auto& e : fs::directory_iterator(dir))
            CHECK(e.path().filename().string().find(".tmp-") == std::string::npos);
    }
}
