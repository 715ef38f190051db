// cram::error and the CRAM_CHECK family: every failure carries the file:line that raised it and
// a message written for the user (what was wrong, which value, what to change).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace cram {

class error : public std::runtime_error {
public:
    error(std::string_view message, const char* file, int line)
        : std::runtime_error(format(message, file, line)), file_(file), line_(line) {}
    const char* file() const noexcept { return file_; }
    int line() const noexcept { return line_; }

private:
    static std::string format(std::string_view message, const char* file, int line) {
        std::ostringstream s;
        s << message << " [" << file << ':' << line << ']';
        return s.str();
    }
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

#define CRAM_CHECK(cond, ...)                                                                  \
    do {                                                                                       \
        if (!(cond)) CRAM_THROW("check failed: " #cond ": ", ::cram::detail::concat(__VA_ARGS__)); \
    } while (0)
