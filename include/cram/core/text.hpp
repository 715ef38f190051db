// Small text rules every reader of user files shares, so a byte-order mark or a line ending means the
// same thing in a corpus, a vocabulary, a GLUE TSV and a config.
#pragma once

#include <string>
#include <string_view>

namespace cram {

// The UTF-8 byte-order mark some editors (and GLUE's MRPC files) put at the start of a text file.
inline constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";

inline bool starts_with_bom(std::string_view s) { return s.substr(0, 3) == utf8_bom; }

// Drops a leading byte-order mark: it is an encoding signature, never part of the first line's text.
inline std::string_view strip_bom(std::string_view s) { return starts_with_bom(s) ? s.substr(3) : s; }
inline void strip_bom_in_place(std::string& s) {
    if (starts_with_bom(s)) s.erase(0, 3);
}

}  // namespace cram
