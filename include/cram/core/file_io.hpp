// Crash-safe file writing for every file cram publishes (checkpoints, metrics, plots, token shards,
// vocabularies, dataset summaries, reports): the bytes go to a temporary name in the target's directory,
// are fsynced, renamed over the target, and the directory is fsynced, so a reader sees the old file or the
// new one, never a torn one, even after SIGKILL or power loss. Every failing system call (a full disk
// included) is a cram::error that names the file.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>  // renameat2 (glibc, _GNU_SOURCE)
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "cram/core/error.hpp"

namespace cram {

namespace detail {

// strerror(err), plus what to do about the one error users can fix themselves.
inline std::string describe_io_error(int err) {
    std::string s = std::strerror(err);
    if (err == ENOSPC || err == EDQUOT) s += " (the disk is full: free space or write elsewhere)";
    return s;
}

}  // namespace detail

// A file opened for writing through a raw descriptor, so that every write, the fsync and the close report
// their own failure (a buffered stream would defer a full disk to a close nobody checks). `shown_as`
// names the file in messages when `path` is a temporary stand-in for it.
class synced_file {
public:
    explicit synced_file(std::filesystem::path path, std::filesystem::path shown_as = {})
        : path_(std::move(path)), shown_as_(std::move(shown_as)) {
        fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd_ < 0)
            CRAM_THROW("cannot create ", name(), ": ", detail::describe_io_error(errno),
                       " (check that the directory exists and is writable)");
    }
    synced_file(const synced_file&) = delete;
    synced_file& operator=(const synced_file&) = delete;
    // An unclosed file is being abandoned (an exception is on its way): its close status no longer matters.
    ~synced_file() {
        if (fd_ >= 0) ::close(fd_);
    }

    // Appends all n bytes; write(2) may write fewer or be interrupted, so it loops.
    void write_all(const void* data, std::size_t n) {
        const char* p = static_cast<const char*>(data);
        while (n > 0) {
            const ::ssize_t w = ::write(fd_, p, n);
            if (w < 0) {
                if (errno == EINTR) continue;
                CRAM_THROW("cannot write ", name(), ": ", detail::describe_io_error(errno));
            }
            p += w;
            n -= static_cast<std::size_t>(w);
        }
    }
    void write_all(std::string_view s) { write_all(s.data(), s.size()); }

    // Overwrites bytes at `offset` without moving the append position: headers that are known only at the end.
    void write_at(std::uint64_t offset, const void* data, std::size_t n) {
        const char* p = static_cast<const char*>(data);
        while (n > 0) {
            const ::ssize_t w = ::pwrite(fd_, p, n, static_cast<::off_t>(offset));
            if (w < 0) {
                if (errno == EINTR) continue;
                CRAM_THROW("cannot write ", name(), ": ", detail::describe_io_error(errno));
            }
            p += w;
            offset += static_cast<std::uint64_t>(w);
            n -= static_cast<std::size_t>(w);
        }
    }

    // fsync then close; both can report a write that failed late (NFS, a full thin-provisioned disk).
    void sync_and_close() {
        if (::fsync(fd_) != 0) CRAM_THROW("fsync of ", name(), " failed: ", detail::describe_io_error(errno));
        const int fd = std::exchange(fd_, -1);
        if (::close(fd) != 0) CRAM_THROW("closing ", name(), " failed: ", detail::describe_io_error(errno));
    }

    const std::filesystem::path& path() const { return path_; }

private:
    std::string name() const {
        return shown_as_.empty() ? path_.string() : shown_as_.string() + " (temporary file " + path_.string() + ")";
    }
    std::filesystem::path path_, shown_as_;
    int fd_ = -1;
};

// Makes a rename or a new entry in `dir` durable: without it the rename can be lost on power failure.
inline void fsync_directory(const std::filesystem::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) CRAM_THROW("cannot open directory ", dir.string(), ": ", std::strerror(errno));
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) CRAM_THROW("fsync of directory ", dir.string(), " failed: ", std::strerror(err));
}

// rename(2) with a message; atomic for files, and for directories onto a name that does not exist.
inline void rename_path(const std::filesystem::path& from, const std::filesystem::path& to) {
    if (::rename(from.c_str(), to.c_str()) != 0)
        CRAM_THROW("cannot rename ", from.string(), " to ", to.string(), ": ", std::strerror(errno));
}

// The temporary name for `target`: in its directory (a rename is atomic only within one file system),
// tagged with the process id (two processes never share one), and recognisable by is_temp_name.
inline std::filesystem::path temp_name_for(const std::filesystem::path& target) {
    return target.parent_path() / (target.filename().string() + ".tmp-" + std::to_string(::getpid()));
}

// True for names made by temp_name_for: leftovers of a writer that was killed, never valid files.
inline bool is_temp_name(const std::filesystem::path& p) {
    return p.filename().string().find(".tmp-") != std::string::npos;
}

// The directory that holds `target` ("." for a bare file name), whose entry the rename changes.
inline std::filesystem::path parent_directory(const std::filesystem::path& target) {
    return target.parent_path().empty() ? std::filesystem::path(".") : target.parent_path();
}

// Puts the complete directory `fresh` in the place of `target` (which may not exist): one atomic
// exchange where the file system supports it (Linux renameat2 RENAME_EXCHANGE), so a reader or a crash
// sees the old directory or the new one, never neither; elsewhere two renames (a crash between them
// leaves the old one under `fresh`'s name). The old directory is removed afterwards.
inline void replace_directory(const std::filesystem::path& fresh, const std::filesystem::path& target) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(target, ec))) {
        rename_path(fresh, target);
    } else {
#ifdef RENAME_EXCHANGE
        if (::renameat2(AT_FDCWD, fresh.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) != 0) {
            if (errno != EINVAL && errno != ENOSYS)
                CRAM_THROW("cannot swap ", fresh.string(), " into ", target.string(), ": ", std::strerror(errno));
#endif
            const fs::path old = target.parent_path() / (target.filename().string() + ".old-" + std::to_string(::getpid()));
            rename_path(target, old);
            rename_path(fresh, target);
            fs::remove_all(old, ec);
            fsync_directory(parent_directory(target));
            return;
#ifdef RENAME_EXCHANGE
        }
#endif
    }
    fsync_directory(parent_directory(target));
    if (fs::exists(fresh, ec)) fs::remove_all(fresh, ec);  // the old directory, now under the fresh name
}

// A file written in pieces that appears under its name only at commit(); destroyed uncommitted (an error
// on the way), it removes its temporary file and leaves the target as it was.
class atomic_file {
public:
    explicit atomic_file(std::filesystem::path target)
        : target_(std::move(target)), file_(temp_name_for(target_), target_) {}
    atomic_file(const atomic_file&) = delete;
    atomic_file& operator=(const atomic_file&) = delete;
    ~atomic_file() {
        if (committed_) return;
        std::error_code ignored;  // the error that stopped the writer is the one worth reporting
        std::filesystem::remove(file_.path(), ignored);
    }

    void write(const void* data, std::size_t n) { file_.write_all(data, n); }
    void write(std::string_view s) { file_.write_all(s); }
    void write_at(std::uint64_t offset, const void* data, std::size_t n) { file_.write_at(offset, data, n); }

    // fsync, close, rename over the target, fsync the directory: from here on the new content survives a crash.
    void commit() {
        file_.sync_and_close();
        rename_path(file_.path(), target_);
        committed_ = true;
        fsync_directory(parent_directory(target_));
    }

    const std::filesystem::path& target() const { return target_; }

private:
    std::filesystem::path target_;
    synced_file file_;
    bool committed_ = false;
};

// Replaces `target` with `content` atomically.
inline void atomic_write_file(const std::filesystem::path& target, std::string_view content) {
    atomic_file f(target);
    f.write(content);
    f.commit();
}

}  // namespace cram
