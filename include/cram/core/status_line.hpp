// One status line for long-running work (training, GLUE fine-tuning): redrawn in place on a terminal, and
// printed as plain periodic lines when the stream is a log file, CI or nohup, where redrawing would leave
// thousands of carriage returns. Messages in between first end a redrawn line, so they never overwrite it.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

#include "cram/core/clock.hpp"

namespace cram {

class status_line {
public:
    // quiet: print nothing at all. tty_every / plain_every: seconds between lines on a terminal / otherwise.
    // plain_prefix: prepended to plain lines (a redrawn line needs no tag: it is the screen's last line).
    status_line(bool quiet, double tty_every, double plain_every, std::string plain_prefix = {},
                std::FILE* out = stderr, std::function<double()> now = steady_seconds)
        : quiet_(quiet), tty_every_(tty_every), plain_every_(plain_every), plain_prefix_(std::move(plain_prefix)),
          out_(out), tty_(::isatty(::fileno(out)) != 0), now_(std::move(now)) {}

    // Would show() print now? The first line always does; `force` (a phase's last step) always does.
    // Callers check this first so that a line nobody will see is not even formatted.
    bool due(bool force = false) const {
        if (quiet_) return false;
        return force || !shown_ || now_() - last_ >= (tty_ ? tty_every_ : plain_every_);
    }

    // Prints `text` as the current status (callers decide with due() whether to).
    void show(std::string_view text) {
        if (quiet_) return;
        last_ = now_();
        shown_ = true;
        const int n = static_cast<int>(text.size());
        if (tty_) {
            std::fprintf(out_, "\r\033[2K%.*s", n, text.data());
            dirty_ = true;
        } else {
            std::fprintf(out_, "%s%.*s\n", plain_prefix_.c_str(), n, text.data());
        }
        std::fflush(out_);
    }

    // Ends a redrawn line before other output.
    void newline() {
        if (dirty_) std::fprintf(out_, "\n");
        dirty_ = false;
    }

    // A line of its own (a warning, a checkpoint saved), kept on screen above the status.
    void message(std::string_view s) {
        if (quiet_) return;
        newline();
        std::fprintf(out_, "%.*s\n", static_cast<int>(s.size()), s.data());
        std::fflush(out_);
    }

    bool tty() const { return tty_; }

private:
    bool quiet_;
    double tty_every_, plain_every_;
    std::string plain_prefix_;
    std::FILE* out_;
    bool tty_;
    std::function<double()> now_;
    double last_ = 0;
    bool shown_ = false, dirty_ = false;
};

}  // namespace cram
