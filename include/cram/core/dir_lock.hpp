// One writer per directory: an advisory lock (flock(2) on DIR/.cram-lock) held for as long as a process
// writes a run or a dataset there. The kernel drops it when the holder exits, however it exits, so a lock
// left by a killed process never blocks the next one. The file records the holder's pid and command, which
// the refusal names. Readers that must not see a directory replaced under them take it shared.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "cram/core/error.hpp"

namespace cram {

class dir_lock {
public:
    enum class mode { exclusive, shared };
    static constexpr const char* file_name = ".cram-lock";

    dir_lock() = default;
    // Locks `dir` (created when missing) for `holder` (e.g. "cram_bert_24h train"); `what` names the
    // directory in the refusal ("run directory", "dataset"). Throws when another process holds it.
    dir_lock(const std::filesystem::path& dir, std::string_view what, std::string_view holder, mode m = mode::exclusive)
        : path_(dir / file_name) {
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        if (ec) CRAM_THROW("cannot create ", what, " ", dir.string(), ": ", ec.message());
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) CRAM_THROW("cannot open the lock file ", path_.string(), ": ", std::strerror(errno));
        const int op = (m == mode::exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB;
        int rc;
        do rc = ::flock(fd_, op);
        while (rc != 0 && errno == EINTR);
        if (rc != 0) {
            const int err = errno;
            const std::string who = holder_text();
            ::close(std::exchange(fd_, -1));
            if (err == EWOULDBLOCK)
                CRAM_THROW(what, " ", dir.string(), " is in use by another process (", who.empty() ? "unknown" : who,
                           "): wait for it to finish or stop it; two processes writing one directory would mix "
                           "their files");
            CRAM_THROW("cannot lock ", path_.string(), ": ", std::strerror(err));
        }
        // record who holds it; a shared holder keeps the record of another live one (which then names a
        // process that really holds the lock, not one that is about to fail for another reason)
        if (m == mode::shared && holder_alive()) return;
        const std::string me = "pid " + std::to_string(::getpid()) + ", " + std::string(holder) + "\n";
        if (::ftruncate(fd_, 0) == 0) {
            const ::ssize_t w = ::pwrite(fd_, me.data(), me.size(), 0);
            (void)w;  // the record is for messages only; the lock is what protects
        }
    }
    dir_lock(dir_lock&& o) noexcept : path_(std::move(o.path_)), fd_(std::exchange(o.fd_, -1)) {}
    dir_lock& operator=(dir_lock&& o) noexcept {
        if (this != &o) {
            release();
            path_ = std::move(o.path_);
            fd_ = std::exchange(o.fd_, -1);
        }
        return *this;
    }
    dir_lock(const dir_lock&) = delete;
    dir_lock& operator=(const dir_lock&) = delete;
    ~dir_lock() { release(); }

    bool held() const { return fd_ >= 0; }
    // Closing the descriptor drops the lock; the file stays (removing it would race with a waiting locker).
    void release() {
        if (fd_ >= 0) ::close(std::exchange(fd_, -1));
    }

private:
    // Whether the pid recorded in the lock file is a live process other than this one.
    bool holder_alive() const {
        const std::string text = holder_text();
        if (text.rfind("pid ", 0) != 0) return false;
        const long pid = std::strtol(text.c_str() + 4, nullptr, 10);
        if (pid <= 0 || pid == ::getpid()) return false;
        return ::kill(static_cast<::pid_t>(pid), 0) == 0 || errno == EPERM;
    }

    std::string holder_text() const {
        char buf[256];
        const ::ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
        if (n <= 0) return {};
        std::string s(buf, static_cast<std::size_t>(n));
        while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
        return s;
    }

    std::filesystem::path path_;
    int fd_ = -1;
};

}  // namespace cram
