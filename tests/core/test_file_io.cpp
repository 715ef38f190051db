// Atomic file writes (core/file_io.hpp): the bytes that land, what is left in the directory afterwards,
// and errors that name the file. Content is read back with std::ifstream and compared with literals, not
// with anything the writer computed.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/file_io.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace

TEST_CASE("atomic_write_file: the content lands, replaces an older file and leaves no temporary file") {
    const auto dir = cram::test::scratch_dir("file_io_write");
    const auto target = dir / "report.json";
    cram::atomic_write_file(target, "first\n");
    CHECK(read_bytes(target) == "first\n");
    cram::atomic_write_file(target, std::string("sec\0ond", 7));  // binary, shorter than before
    CHECK(read_bytes(target) == std::string("sec\0ond", 7));
    cram::atomic_write_file(target, "");
    CHECK(fs::file_size(target) == 0);
    CHECK(names_in(dir) == std::vector<std::string>{"report.json"});
}

TEST_CASE("atomic_write_file: several megabytes arrive byte for byte") {
    const auto dir = cram::test::scratch_dir("file_io_large");
    std::string big(5'000'003, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
    cram::atomic_write_file(dir / "big.bin", big);
    CHECK(fs::file_size(dir / "big.bin") == 5'000'003);
    CHECK(read_bytes(dir / "big.bin") == big);
}

TEST_CASE("atomic_file: written in pieces, header patched at the end; unfinished, it leaves the old file alone") {
    const auto dir = cram::test::scratch_dir("file_io_pieces");
    const auto target = dir / "data.shard";
    {
        cram::atomic_file f(target);
        f.write("....BODY");
        f.write("+TAIL");
        f.write_at(0, "HEAD", 4);
        CHECK_FALSE(fs::exists(target));  // not visible before commit
        f.commit();
    }
    CHECK(read_bytes(target) == "HEADBODY+TAIL");
    {
        cram::atomic_file f(target);
        f.write("a replacement that never commits");
    }
    CHECK(read_bytes(target) == "HEADBODY+TAIL");
    CHECK(names_in(dir) == std::vector<std::string>{"data.shard"});
}

TEST_CASE("temporary names sit next to the target and are recognised as leftovers") {
    const fs::path target = "/some/dir/vocab.txt";
    const auto tmp = cram::temp_name_for(target);
    CHECK(tmp.parent_path() == target.parent_path());  // same file system, so the rename is atomic
    CHECK(tmp.filename().string().starts_with("vocab.txt"));
    CHECK(tmp != target);
    CHECK(cram::is_temp_name(tmp));
    CHECK_FALSE(cram::is_temp_name(target));
    CHECK_FALSE(cram::is_temp_name("/x/train-00000.shard"));
}

TEST_CASE("atomic_write_file: a missing or unusable directory is an error naming the file") {
    const auto dir = cram::test::scratch_dir("file_io_errors");
    const auto missing = dir / "no_such_dir" / "summary.json";
    CHECK_THROWS_WITH_AS(cram::atomic_write_file(missing, "x"), doctest::Contains(missing.c_str()), cram::error);
    CHECK_THROWS_WITH_AS(cram::atomic_write_file(missing, "x"), doctest::Contains("No such file or directory"),
                         cram::error);
    // A regular file where a directory should be: unwritable even for root (chmod does not stop root).
    cram::atomic_write_file(dir / "plain", "x");
    const auto under_file = dir / "plain" / "vocab.txt";
    CHECK_THROWS_WITH_AS(cram::atomic_write_file(under_file, "x"), doctest::Contains(under_file.c_str()), cram::error);
    if (::geteuid() != 0) {  // a read-only directory stops everyone else
        const auto ro = dir / "read_only";
        fs::create_directories(ro);
        fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
        CHECK_THROWS_WITH_AS(cram::atomic_write_file(ro / "a.txt", "x"), doctest::Contains((ro / "a.txt").c_str()),
                             cram::error);
        fs::permissions(ro, fs::perms::owner_all);
    }
    CHECK(names_in(dir) == std::vector<std::string>{"plain"});
}

TEST_CASE("synced_file: a full disk is reported with the file's name and what to do") {
    // /dev/full accepts open() and fails every write with ENOSPC: a full disk on demand.
    if (!fs::exists("/dev/full")) {
        MESSAGE("SKIPPED: no /dev/full on this system");
        return;
    }
    cram::synced_file f("/dev/full");
    const std::string block(1 << 16, 'x');
    CHECK_THROWS_WITH_AS(f.write_all(block), doctest::Contains("/dev/full"), cram::error);
    CHECK_THROWS_WITH_AS(f.write_all(block), doctest::Contains("disk is full"), cram::error);
}

TEST_CASE("synced_file: messages name the target, not only its temporary stand-in") {
    const auto dir = cram::test::scratch_dir("file_io_shown_as");
    const auto target = dir / "missing" / "model.safetensors";
    const auto stand_in = dir / "missing" / "part-1";
    CHECK_THROWS_WITH_AS(cram::synced_file(stand_in, target), doctest::Contains(target.c_str()), cram::error);
    CHECK_THROWS_WITH_AS(cram::synced_file(stand_in, target), doctest::Contains(stand_in.c_str()), cram::error);
}
