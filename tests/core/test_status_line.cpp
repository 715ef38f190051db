// The status line (core/status_line.hpp) and the clock (core/clock.hpp): what reaches the stream, on a
// plain file and on a real pseudo-terminal, under a hand-driven clock. Expected bytes are written out
// literally here (the terminal codes are ECMA-48's carriage return and "erase line").
#include <fcntl.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "cram/core/clock.hpp"
#include "cram/core/status_line.hpp"
#include "test_support.hpp"

namespace {

std::string contents(std::FILE* f) {
    std::fflush(f);
    std::rewind(f);
    std::string s;
    for (int c; (c = std::fgetc(f)) != EOF;) s.push_back(static_cast<char>(c));
    return s;
}

// Everything the master side of a pseudo-terminal has received so far.
std::string drain(int master) {
    std::string s;
    char buf[256];
    pollfd p{master, POLLIN, 0};
    while (::poll(&p, 1, 100) > 0) {
        const auto n = ::read(master, buf, sizeof buf);
        if (n <= 0) break;
        s.append(buf, static_cast<std::size_t>(n));
    }
    return s;
}

}  // namespace

TEST_CASE("status_line on a file: plain prefixed lines, throttled by the clock, forced lines, messages") {
    std::FILE* f = std::tmpfile();
    REQUIRE(f);
    double t = 100;
    cram::status_line line(false, /*tty_every=*/0.5, /*plain_every=*/10, "train: ", f, [&] { return t; });
    CHECK_FALSE(line.tty());
    CHECK(line.due());  // the first line always shows
    line.show("step 1");
    t = 105;
    CHECK_FALSE(line.due());     // 5 s < 10 s on a file (the terminal's 0.5 s does not apply)
    CHECK(line.due(/*force=*/true));
    t = 110;
    CHECK(line.due());
    line.show("step 2");
    line.message("checkpoint saved");
    line.newline();  // nothing to end on a file
    CHECK(contents(f) == "train: step 1\ntrain: step 2\ncheckpoint saved\n");
    std::fclose(f);
}

TEST_CASE("status_line: quiet prints nothing, messages included") {
    std::FILE* f = std::tmpfile();
    REQUIRE(f);
    cram::status_line line(/*quiet=*/true, 0.5, 10, "", f);
    CHECK_FALSE(line.due(/*force=*/true));
    line.show("x");
    line.message("y");
    CHECK(contents(f).empty());
    std::fclose(f);
}

TEST_CASE("status_line on a terminal: redrawn in place, ended by a newline before a message") {
    const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) {
        MESSAGE("SKIPPED: no pseudo-terminals here");
        return;
    }
    const int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
    REQUIRE(slave >= 0);
    termios raw{};
    ::tcgetattr(slave, &raw);
    ::cfmakeraw(&raw);  // bytes as written: no "\n" -> "\r\n" translation
    ::tcsetattr(slave, TCSANOW, &raw);
    std::FILE* out = ::fdopen(slave, "w");
    REQUIRE(out);
    double t = 0;
    cram::status_line line(false, /*tty_every=*/0.5, /*plain_every=*/10, "train: ", out, [&] { return t; });
    CHECK(line.tty());
    line.show("a");
    t = 0.2;
    CHECK_FALSE(line.due());  // 0.2 s < 0.5 s on a terminal
    t = 0.6;
    CHECK(line.due());
    line.show("b");
    line.message("note");
    line.show("c");
    line.newline();
    line.newline();  // a second one adds nothing
    CHECK(drain(master) == "\r\033[2Ka\r\033[2Kb\nnote\n\r\033[2Kc\n");
    std::fclose(out);
    ::close(master);
}

TEST_CASE("steady_seconds and stopwatch advance with real time and never go back") {
    const double a = cram::steady_seconds();
    cram::stopwatch w;
    ::usleep(20'000);
    const double b = cram::steady_seconds();
    CHECK(b - a >= 0.019);
    CHECK(w.seconds() >= 0.019);
    CHECK(w.seconds() < 5.0);
    w.restart();
    CHECK(w.seconds() < 0.019);
}
