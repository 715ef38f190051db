// cram::error and the CRAM_CHECK family: every failure carries a message written for the user (what was
// wrong, which file or value, what to change) as what(), and, for developers, the file:line that raised
// it as where(); the app prints the location only when CRAM_DEBUG is set.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace cram {

class error : public std::runtime_error {
public:
    error(std::string_view message, const char* file, int line)
        : std::runtime_error(std::string(message)), file_(file), line_(line) {}
    const char* file() const noexcept { return file_; }
    int line() const noexcept { return line_; }
    // "path/to/header.hpp:123": where in cram the error was raised.
    std::string where() const { return std::string(file_) + ':' + std::to_string(line_); }

private:
    const char* file_;
    int line_;
};

namespace detail {
// Streams any number of values into one string: CRAM_CHECK(x > 0, "x = ", x, " must be positive").
template <class... Parts>
std::string concat(const Parts&... parts) {
    std::ostringstream s;
    (s << ... << parts);
    return s.str();
}
}  // namespace detail

}  // namespace cram

#define CRAM_THROW(...) throw ::cram::error(::cram::detail::concat(__VA_ARGS__), __FILE__, __LINE__)

// The condition is the code's business; the message is the user's, so only the message is shown.
#define CRAM_CHECK(cond, ...)                                        \
    do {                                                             \
        if (!(cond)) CRAM_THROW(__VA_ARGS__);                        \
    } while (0)
