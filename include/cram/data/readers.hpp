// Corpus readers: documents out of JSON lines ({"text": ...}, other fields ignored) or plain text (a
// document per line, or per blank-line-separated block), each plain or zstd-compressed (streamed through
// libzstd, as the Pile ships), over many files. Memory stays bounded by one read buffer plus the longest
// line (capped by max_line_bytes); a truncated .zst, a missing file or an over-long line is an error that
// names the file (and line); malformed JSON lines are skipped and counted, the first one named.
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

namespace cram::data {

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

// Splits a byte_source into lines ('\n'; a trailing '\r' is kept for the caller to ignore).
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
                ++line_no_;
                return true;
            }
            if (done_) {
                if (pos_ < end_) {
                    line = std::string_view(buf_.data() + pos_, end_ - pos_);
                    pos_ = end_;
                    ++line_no_;
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
                               " bytes (raise the reader's max_line_bytes)");
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
        if (j.is_discarded()) return bad("not valid JSON (or not valid UTF-8)");
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
};

}  // namespace cram::data
