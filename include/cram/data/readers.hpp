// Corpus readers: documents out of JSON lines ({"text": ...}, other fields ignored) or plain text (a
// document per line, or per blank-line-separated block), each plain or zstd-compressed (streamed through
// libzstd, as the Pile ships), over many files. Memory stays bounded by one read buffer plus the longest
// line (capped by max_line_bytes); a truncated .zst, a missing file or an over-long line is an error that
// names the file (and line); malformed JSON lines are skipped and counted, the first one named. A UTF-8
// byte-order mark at the start of a file is dropped; invalid UTF-8 (and lone surrogate escapes) inside a
// JSON line become U+FFFD instead of costing the line.
#pragma once

#include <zstd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/text.hpp"

namespace cram::data {

// ---- repairing text before it is parsed -----------------------------------------------------------------

// Appends `in` to `out` with every ill-formed UTF-8 sequence replaced by U+FFFD, one per maximal subpart
// (Unicode 15, chapter 3, "U+FFFD Substitution of Maximal Subparts"; the WHATWG Encoding Standard's
// decoder does the same): a maximal subpart is the longest prefix of a well-formed sequence (Table 3-7)
// that the input starts with, or else a single byte. So "F1 80 80 41" gives FFFD 41, "ED A0 80" (a
// surrogate) gives three FFFDs, "C0 AF" (overlong) two, and a sequence cut by the end of the input one.
// Well-formed sequences are copied untouched. Returns whether anything was replaced.
inline bool repair_utf8(std::string_view in, std::string& out) {
    static constexpr std::string_view fffd = "\xEF\xBF\xBD";
    const auto* p = reinterpret_cast<const unsigned char*>(in.data());
    const std::size_t n = in.size();
    bool changed = false;
    std::size_t copied = 0;  // in[copied, i) is well-formed and not yet appended
    for (std::size_t i = 0; i < n;) {
        const unsigned char b = p[i];
        if (b < 0x80) {
            ++i;
            continue;
        }
        // length of the sequence b leads, and the range its second byte must fall in (Table 3-7)
        std::size_t len = 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (b >= 0xC2 && b <= 0xDF) len = 2;
        else if (b == 0xE0) len = 3, lo = 0xA0;
        else if (b == 0xED) len = 3, hi = 0x9F;
        else if (b >= 0xE1 && b <= 0xEF) len = 3;
        else if (b == 0xF0) len = 4, lo = 0x90;
        else if (b == 0xF4) len = 4, hi = 0x8F;
        else if (b >= 0xF1 && b <= 0xF3) len = 4;
        std::size_t good = len ? 1 : 0;  // bytes of the sequence seen to be well-formed so far
        while (good && good < len && i + good < n) {
            const unsigned char c = p[i + good];
            const bool ok = good == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
            if (!ok) break;
            ++good;
        }
        if (len && good == len) {
            i += len;
            continue;
        }
        // ill-formed: the maximal subpart (at least the one byte) becomes one U+FFFD
        out.append(in.data() + copied, i - copied);
        out.append(fffd);
        i += good ? good : 1;
        copied = i;
        changed = true;
    }
    out.append(in.data() + copied, n - copied);
    return changed;
}

// Appends a JSON text to `out` with every lone surrogate escape inside a string (a \uD800-\uDBFF not
// followed by a \uDC00-\uDFFF escape, or a \uDC00-\uDFFF on its own) replaced by \uFFFD, which is what
// a JSON decoder that accepts them (Python's, JavaScript's) turns into text anyway. Everything else,
// other escapes ("\\u" is a backslash and a 'u') and text outside strings included, is copied untouched.
// Returns whether anything was replaced.
inline bool repair_surrogate_escapes(std::string_view in, std::string& out) {
    auto hex4 = [&](std::size_t at) -> int {  // the value of 4 hex digits at `at`, or -1
        if (at + 4 > in.size()) return -1;
        int v = 0;
        for (std::size_t k = at; k < at + 4; ++k) {
            const char c = in[k];
            const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) return -1;
            v = v * 16 + d;
        }
        return v;
    };
    auto is_escape_u = [&](std::size_t at) { return at + 1 < in.size() && in[at] == '\\' && in[at + 1] == 'u'; };
    bool in_string = false, changed = false;
    std::size_t copied = 0;
    for (std::size_t i = 0; i < in.size();) {
        const char c = in[i];
        if (!in_string) {
            in_string = c == '"';
            ++i;
            continue;
        }
        if (c == '"') {
            in_string = false;
            ++i;
            continue;
        }
        if (c != '\\') {
            ++i;
            continue;
        }
        if (!is_escape_u(i)) {  // \" \\ \n ...: two characters, whatever they are
            i += 2;
            continue;
        }
        const int v = hex4(i + 2);
        if (v < 0) {  // not four hex digits: left for the parser to reject
            i += 2;
            continue;
        }
        if (v < 0xD800 || v > 0xDFFF) {  // a character that is not a surrogate
            i += 6;
            continue;
        }
        if (v <= 0xDBFF && is_escape_u(i + 6)) {
            const int w = hex4(i + 8);
            if (w >= 0xDC00 && w <= 0xDFFF) {  // a proper pair
                i += 12;
                continue;
            }
        }
        out.append(in.data() + copied, i - copied);
        out.append("\\uFFFD");
        i += 6;
        copied = i;
        changed = true;
    }
    out.append(in.data() + copied, in.size() - copied);
    return changed;
}

enum class corpus_format { auto_detect, jsonl, text, text_blocks };

inline corpus_format parse_corpus_format(std::string_view s) {
    if (s == "auto") return corpus_format::auto_detect;
    if (s == "jsonl" || s == "json") return corpus_format::jsonl;
    if (s == "text" || s == "lines") return corpus_format::text;
    if (s == "text-blocks" || s == "blocks") return corpus_format::text_blocks;
    CRAM_THROW("unknown corpus format '", s, "' (expected auto, jsonl, text or text-blocks)");
}

struct reader_options {
    corpus_format format = corpus_format::auto_detect;
    std::string text_field = "text";
    std::size_t max_line_bytes = std::size_t{256} << 20;  // one JSON line / text line at most this long
};

struct reader_stats {
    std::int64_t files = 0, lines = 0, documents = 0, empty = 0, bad_lines = 0;
    std::int64_t bytes_read = 0;  // decompressed bytes
    std::string first_bad_line;   // "file:line: why"
};

// A stream of bytes from one file, decompressing .zst on the fly.
class byte_source {
public:
    explicit byte_source(const std::filesystem::path& path) : path_(path) {
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) CRAM_THROW("corpus file ", path.string(), " does not exist");
        if (std::filesystem::is_directory(path, ec)) CRAM_THROW("corpus file ", path.string(), " is a directory");
        f_ = std::fopen(path.string().c_str(), "rb");
        if (!f_) CRAM_THROW("cannot open corpus file ", path.string(), ": ", std::strerror(errno));
        const auto ext = path.extension().string();
        zstd_ = ext == ".zst" || ext == ".zstd";
        if (zstd_) {
            dctx_ = ZSTD_createDCtx();
            in_.resize(ZSTD_DStreamInSize());
        }
    }
    ~byte_source() {
        if (f_) std::fclose(f_);
        if (dctx_) ZSTD_freeDCtx(dctx_);
    }
    byte_source(const byte_source&) = delete;
    byte_source& operator=(const byte_source&) = delete;

    // Reads up to n bytes into dst; 0 at the end of the stream.
    std::size_t read(char* dst, std::size_t n) {
        if (!zstd_) {
            const std::size_t got = std::fread(dst, 1, n, f_);
            if (got == 0 && std::ferror(f_)) CRAM_THROW("error reading ", path_.string(), ": ", std::strerror(errno));
            return got;
        }
        ZSTD_outBuffer out{dst, n, 0};
        while (out.pos == 0) {
            if (in_pos_ == in_len_ && !eof_) {
                in_len_ = std::fread(in_.data(), 1, in_.size(), f_);
                in_pos_ = 0;
                if (in_len_ == 0) {
                    if (std::ferror(f_)) CRAM_THROW("error reading ", path_.string(), ": ", std::strerror(errno));
                    eof_ = true;
                }
            }
            ZSTD_inBuffer inb{in_.data(), in_len_, in_pos_};
            if (in_pos_ == in_len_ && eof_) {
                if (!frame_open_) return 0;
                inb = {nullptr, 0, 0};  // flush what the decoder still holds
            }
            const std::size_t r = ZSTD_decompressStream(dctx_, &out, &inb);
            if (ZSTD_isError(r)) CRAM_THROW("zstd stream ", path_.string(), " is corrupt: ", ZSTD_getErrorName(r));
            if (inb.src) in_pos_ = inb.pos;
            frame_open_ = r != 0;
            if (eof_ && in_pos_ == in_len_ && out.pos == 0 && frame_open_)
                CRAM_THROW("zstd stream ", path_.string(), " is truncated (it ends inside a frame)");
        }
        return out.pos;
    }
    const std::filesystem::path& path() const { return path_; }
    bool compressed() const { return zstd_; }

private:
    std::filesystem::path path_;
    std::FILE* f_ = nullptr;
    bool zstd_ = false, eof_ = false, frame_open_ = false;
    ZSTD_DCtx* dctx_ = nullptr;
    std::vector<char> in_;
    std::size_t in_pos_ = 0, in_len_ = 0;
};

// Splits a byte_source into lines ('\n'; a trailing '\r' is kept for the caller to ignore). A byte-order
// mark at the start of the stream (after decompression) is not part of the first line.
class line_reader {
public:
    line_reader(const std::filesystem::path& path, std::size_t max_line) : src_(path), max_line_(max_line) {
        buf_.resize(std::size_t{1} << 20);
    }
    bool next(std::string_view& line) {
        for (;;) {
            const char* nl = static_cast<const char*>(std::memchr(buf_.data() + pos_, '\n', end_ - pos_));
            if (nl) {
                line = std::string_view(buf_.data() + pos_, static_cast<std::size_t>(nl - (buf_.data() + pos_)));
                pos_ = static_cast<std::size_t>(nl - buf_.data()) + 1;
                if (line_no_++ == 0) line = strip_bom(line);
                return true;
            }
            if (done_) {
                if (pos_ < end_) {
                    line = std::string_view(buf_.data() + pos_, end_ - pos_);
                    pos_ = end_;
                    if (line_no_++ == 0) line = strip_bom(line);
                    return true;
                }
                return false;
            }
            // compact, grow if one line fills the buffer, then refill
            if (pos_ > 0) {
                std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
                end_ -= pos_;
                pos_ = 0;
            }
            if (end_ == buf_.size()) {
                if (buf_.size() >= max_line_)
                    CRAM_THROW(src_.path().string(), ":", line_no_ + 1, ": line longer than ", max_line_,
                               " bytes (raise the limit with --max-line-bytes, reader_options::max_line_bytes in code)");
                buf_.resize(std::min(max_line_ + 1, buf_.size() * 2));
            }
            const std::size_t got = src_.read(buf_.data() + end_, buf_.size() - end_);
            bytes_ += static_cast<std::int64_t>(got);
            end_ += got;
            if (got == 0) done_ = true;
        }
    }
    std::int64_t line_number() const { return line_no_; }
    std::int64_t bytes() const { return bytes_; }
    const std::filesystem::path& path() const { return src_.path(); }

private:
    byte_source src_;
    std::size_t max_line_;
    std::vector<char> buf_;
    std::size_t pos_ = 0, end_ = 0;
    std::int64_t line_no_ = 0, bytes_ = 0;
    bool done_ = false;
};

inline corpus_format detect_format(const std::filesystem::path& p) {
    auto name = p.filename().string();
    if (name.size() > 4 && name.ends_with(".zst")) name.resize(name.size() - 4);
    if (name.ends_with(".jsonl") || name.ends_with(".json") || name.ends_with(".ndjson")) return corpus_format::jsonl;
    return corpus_format::text;
}

// Documents of many files, in order. next(doc) fills `doc` (reused storage) and returns false at the end.
class document_reader {
public:
    document_reader(std::vector<std::filesystem::path> files, reader_options opt = {})
        : files_(std::move(files)), opt_(std::move(opt)) {
        for (const auto& f : files_) {  // fail early, before hours of work, on a missing input
            std::error_code ec;
            if (!std::filesystem::is_regular_file(f, ec)) CRAM_THROW("corpus file ", f.string(), " does not exist or is not a file");
        }
    }

    bool next(std::string& doc) {
        for (;;) {
            if (!lines_) {
                if (file_index_ >= files_.size()) return false;
                const auto& path = files_[file_index_++];
                lines_ = std::make_unique<line_reader>(path, opt_.max_line_bytes);
                format_ = opt_.format == corpus_format::auto_detect ? detect_format(path) : opt_.format;
                ++stats_.files;
            }
            if (read_one(doc)) {
                ++stats_.documents;
                return true;
            }
            stats_.bytes_read += lines_->bytes();
            lines_.reset();
        }
    }

    const reader_stats& stats() const { return stats_; }
    std::int64_t bytes_so_far() const { return stats_.bytes_read + (lines_ ? lines_->bytes() : 0); }

private:
    static std::string_view chomp(std::string_view l) {
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        return l;
    }
    static bool blank(std::string_view l) { return l.find_first_not_of(" \t\r\f\v") == std::string_view::npos; }

    // One document from the current file; false when the file is exhausted.
    bool read_one(std::string& doc) {
        std::string_view line;
        switch (format_) {
            case corpus_format::jsonl:
                while (lines_->next(line)) {
                    ++stats_.lines;
                    if (blank(line)) continue;
                    if (parse_json_line(line, doc)) {
                        if (doc.empty()) {
                            ++stats_.empty;
                            continue;
                        }
                        return true;
                    }
                }
                return false;
            case corpus_format::text_blocks: {
                doc.clear();
                while (lines_->next(line)) {
                    ++stats_.lines;
                    line = chomp(line);
                    if (blank(line)) {
                        if (!doc.empty()) return true;
                        continue;
                    }
                    if (!doc.empty()) doc.push_back('\n');
                    doc.append(line);
                }
                return !doc.empty();
            }
            default:
                while (lines_->next(line)) {
                    ++stats_.lines;
                    line = chomp(line);
                    if (blank(line)) {
                        ++stats_.empty;
                        continue;
                    }
                    doc.assign(line);
                    return true;
                }
                return false;
        }
    }

    bool parse_json_line(std::string_view line, std::string& doc) {
        auto bad = [&](const char* why) {
            if (stats_.bad_lines++ == 0)
                stats_.first_bad_line = lines_->path().string() + ":" + std::to_string(lines_->line_number()) + ": " + why;
            return false;
        };
        nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded()) {
            // web dumps hold invalid UTF-8 and lone surrogate escapes: U+FFFD for those, then parse again
            repaired_.clear();
            repaired2_.clear();
            const bool bytes = repair_utf8(line, repaired_);
            const bool escapes = repair_surrogate_escapes(repaired_, repaired2_);
            if (bytes || escapes) j = nlohmann::json::parse(repaired2_.begin(), repaired2_.end(), nullptr, false);
            if (j.is_discarded()) return bad("not valid JSON");
        }
        if (!j.is_object()) return bad("not a JSON object");
        const auto it = j.find(opt_.text_field);
        if (it == j.end() || !it->is_string()) return bad("no string field \"text\"");
        doc = std::move(it->get_ref<std::string&>());
        return true;
    }

    std::vector<std::filesystem::path> files_;
    reader_options opt_;
    std::size_t file_index_ = 0;
    std::unique_ptr<line_reader> lines_;
    corpus_format format_ = corpus_format::text;
    reader_stats stats_;
    std::string repaired_, repaired2_;  // a line being repaired (reused storage)
};

}  // namespace cram::data
