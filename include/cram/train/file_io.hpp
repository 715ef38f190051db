// Crash-safe file writing for checkpoints, metrics and plots: data goes to a temporary name in the same
// directory, is fsynced, then renamed over the target (and the directory fsynced), so a reader sees the
// old file or the new one, never a torn one, even after SIGKILL or power loss.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include "cram/core/error.hpp"

namespace cram::train {

// A file descriptor opened for writing; write_all retries short writes; sync_and_close fsyncs.
class synced_file {
public:
    explicit synced_file(const std::filesystem::path& path) : path_(path) {
        fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd_ < 0) CRAM_THROW("cannot create ", path.string(), ": ", std::strerror(errno), " (check the directory exists and is writable)");
    }
    synced_file(const synced_file&) = delete;
    synced_file& operator=(const synced_file&) = delete;
    ~synced_file() {
        if (fd_ >= 0) ::close(fd_);
    }
    void write_all(const void* data, std::size_t n) {
        const char* p = static_cast<const char*>(data);
        while (n > 0) {
            const ::ssize_t w = ::write(fd_, p, n);
            if (w < 0) {
                if (errno == EINTR) continue;
                CRAM_THROW("cannot write ", path_.string(), ": ", std::strerror(errno),
                           errno == ENOSPC ? " (the disk is full: free space or choose another --out)" : "");
            }
            p += w;
            n -= static_cast<std::size_t>(w);
        }
    }
    void write_all(std::string_view s) { write_all(s.data(), s.size()); }
    void sync_and_close() {
        if (::fsync(fd_) != 0) CRAM_THROW("fsync of ", path_.string(), " failed: ", std::strerror(errno));
        const int fd = fd_;
        fd_ = -1;
        if (::close(fd) != 0) CRAM_THROW("closing ", path_.string(), " failed: ", std::strerror(errno));
    }

private:
    std::filesystem::path path_;
    int fd_ = -1;
};

// Makes a rename or a new entry in `dir` durable.
inline void fsync_directory(const std::filesystem::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) CRAM_THROW("cannot open directory ", dir.string(), ": ", std::strerror(errno));
    const int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) CRAM_THROW("fsync of directory ", dir.string(), " failed: ", std::strerror(errno));
}

// rename(2) with a message; atomic for files and for directories onto a name that does not exist.
inline void rename_path(const std::filesystem::path& from, const std::filesystem::path& to) {
    if (::rename(from.c_str(), to.c_str()) != 0)
        CRAM_THROW("cannot rename ", from.string(), " to ", to.string(), ": ", std::strerror(errno));
}

inline std::filesystem::path temp_name_for(const std::filesystem::path& target) {
    return target.parent_path() / (target.filename().string() + ".tmp-" + std::to_string(::getpid()));
}

// Writes `content` to `target` atomically (temp file, fsync, rename, fsync of the directory).
inline void atomic_write_file(const std::filesystem::path& target, std::string_view content) {
    const auto dir = target.parent_path().empty() ? std::filesystem::path(".") : target.parent_path();
    const auto tmp = temp_name_for(target);
    {
        synced_file f(tmp);
        f.write_all(content);
        f.sync_and_close();
    }
    rename_path(tmp, target);
    fsync_directory(dir);
}

}  // namespace cram::train
