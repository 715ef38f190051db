// The core pieces reliability rests on: XXH64 against the specification's published digests and the
// reference tool `xxhsum` (when installed), stop signals in a real child process (first: recorded, second:
// the default action), directory replacement, and the byte-order-mark rule.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "cram/core/checksum.hpp"
#include "cram/core/file_io.hpp"
#include "cram/core/signals.hpp"
#include "cram/core/text.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

// `xxhsum -H64 FILE`'s digest, or empty when the tool is not installed.
std::string xxhsum_of(const fs::path& file) {
    const std::string cmd = "xxhsum -H64 '" + file.string() + "' 2>/dev/null";
    std::FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return {};
    char buf[256] = {};
    const bool got = std::fgets(buf, sizeof buf, p) != nullptr;
    ::pclose(p);
    if (!got) return {};
    std::string line = buf;
    return line.substr(0, line.find(' '));
}

}  // namespace

TEST_CASE("XXH64: the specification's digests, any split of the input, and the reference tool") {
    CHECK(cram::xxh64().hex() == "ef46db3751d8e999");                     // empty input, seed 0
    CHECK(cram::xxh64::to_hex(cram::xxh64::of("abc")) == "44bc2cf5ad770999");
    std::mt19937 rng(42);
    const auto dir = cram::test::scratch_dir("core_xxh64");
    bool tool = true;
    for (const std::size_t n : {1u, 3u, 4u, 7u, 8u, 31u, 32u, 33u, 63u, 64u, 100u, 1000u, 65537u}) {
        INFO(n << " bytes");
        std::string data(n, '\0');
        for (auto& c : data) c = static_cast<char>(rng());
        const std::uint64_t whole = cram::xxh64::of(data);
        // streaming in uneven pieces gives the same digest
        cram::xxh64 h;
        for (std::size_t i = 0, step = 1; i < n; i += step, step = step % 37 + 1)
            h.update(data.data() + i, std::min(step, n - i));
        CHECK(h.digest() == whole);
        if (!tool) continue;
        const fs::path f = dir / "data.bin";
        std::ofstream(f, std::ios::binary).write(data.data(), std::streamsize(n));
        const std::string ref = xxhsum_of(f);
        if (ref.empty()) {
            MESSAGE("xxhsum not installed (Debian package xxhash): compared with the published digests only");
            tool = false;
            continue;
        }
        CHECK(cram::xxh64::to_hex(whole) == ref);
    }
}

TEST_CASE("a first stop signal is recorded; a second one ends the process at once") {
    for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) {
        INFO(cram::signal_name(sig));
        int ready[2];
        REQUIRE(::pipe(ready) == 0);
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(ready[0]);
            const cram::stop_on_signals stop;
            (void)!::write(ready[1], "r", 1);
            // busy "work" that never reaches a safe point on its own: only the second signal ends it;
            // exit 3 if the first signal was not recorded (it must not end the process either)
            while (cram::stop_requested() == 0) ::usleep(1000);
            if (cram::stop_requested() != sig) ::_exit(3);
            (void)!::write(ready[1], "s", 1);
            for (;;) ::usleep(1000);
        }
        ::close(ready[1]);
        char c = 0;
        REQUIRE(::read(ready[0], &c, 1) == 1);
        ::kill(pid, sig);
        REQUIRE(::read(ready[0], &c, 1) == 1);  // the child saw the first signal and lives on
        CHECK(c == 's');
        ::kill(pid, sig);
        int status = 0;
        ::waitpid(pid, &status, 0);
        ::close(ready[0]);
        REQUIRE(WIFSIGNALED(status));
        CHECK(WTERMSIG(status) == sig);  // the default action: a shell reports 128 + sig
    }
    CHECK(cram::exit_code_for_signal(SIGTERM) == 143);
    CHECK(cram::stop_requested() == 0);  // nothing leaked into this process
}

TEST_CASE("replace_directory: the new content under the old name, nothing else left behind") {
    const auto dir = cram::test::scratch_dir("core_replace_dir");
    fs::create_directories(dir / "fresh");
    std::ofstream(dir / "fresh" / "a") << "new";
    fs::create_directories(dir / "target" / "sub");
    std::ofstream(dir / "target" / "old") << "old";
    cram::replace_directory(dir / "fresh", dir / "target");
    CHECK(fs::exists(dir / "target" / "a"));
    CHECK_FALSE(fs::exists(dir / "target" / "old"));
    CHECK_FALSE(fs::exists(dir / "fresh"));
    fs::create_directories(dir / "fresh2");
    cram::replace_directory(dir / "fresh2", dir / "absent");  // no target yet: a plain rename
    CHECK(fs::is_directory(dir / "absent"));
    int entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++entries;
    CHECK(entries == 2);
}

TEST_CASE("a byte-order mark is dropped once, only at the start") {
    CHECK(cram::strip_bom("\xEF\xBB\xBFsentence") == "sentence");
    CHECK(cram::strip_bom("sentence\xEF\xBB\xBF") == "sentence\xEF\xBB\xBF");
    CHECK(cram::strip_bom("\xEF\xBB") == "\xEF\xBB");  // a truncated mark is text (invalid UTF-8, repaired elsewhere)
    std::string s = "\xEF\xBB\xBF\xEF\xBB\xBFx";
    cram::strip_bom_in_place(s);
    CHECK(s == "\xEF\xBB\xBFx");
}
