// Token shards (DESIGN.md "Files"): a 64-byte versioned header (magic, version, vocab size, token dtype,
// sequence length, counts, checksum) followed by num_sequences * seq_len little-endian tokens, uint16 when
// the vocabulary fits, else int32. Writers go through cram::atomic_file (renamed into place only when
// complete); the reader memory-maps the file and rejects a bad magic, another version, a size that disagrees
// with the header, a checksum mismatch or an id >= vocab, each with a message naming the file.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/file_io.hpp"

namespace cram::data {

inline constexpr char shard_magic[8] = {'C', 'R', 'A', 'M', 'T', 'O', 'K', '\0'};
inline constexpr std::uint32_t shard_version = 1;

struct shard_header {
    char magic[8];
    std::uint32_t version;
    std::uint32_t header_bytes;  // 64
    std::uint32_t vocab_size;
    std::uint32_t token_bytes;  // 2 (uint16) or 4 (int32)
    std::uint32_t seq_len;
    std::uint32_t flags;  // reserved, 0
    std::uint64_t num_sequences;
    std::uint64_t num_tokens;  // num_sequences * seq_len
    std::uint64_t checksum;    // checksum_tokens over the token bytes
    std::uint64_t reserved;
};
static_assert(sizeof(shard_header) == 64, "shard header must be 64 bytes");

// FNV-1a-style checksum over 8-byte words (fast enough to verify every open; catches truncation/corruption).
inline std::uint64_t checksum_update(std::uint64_t h, const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    while (n >= 8) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        h = (h ^ v) * 0x100000001B3ull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    for (; n; --n, ++p) h = (h ^ *p) * 0x100000001B3ull;
    return h;
}
inline constexpr std::uint64_t checksum_seed = 0xCBF29CE484222325ull;

inline int token_bytes_for_vocab(std::int64_t vocab) { return vocab <= 65536 ? 2 : 4; }

// Streams sequences into a shard file, which appears under its name only after finish() (an atomic_file:
// a writer destroyed unfinished leaves nothing that looks valid).
class shard_writer {
public:
    shard_writer(const std::filesystem::path& path, std::int32_t vocab_size, int seq_len)
        : file_(checked_path(path, vocab_size, seq_len)), vocab_(vocab_size), seq_(seq_len) {
        tb_ = token_bytes_for_vocab(vocab_size);
        const shard_header placeholder{};  // the counts and checksum are known only at finish()
        file_.write(&placeholder, sizeof placeholder);
    }

    void write(const std::int32_t* tokens, std::int64_t num_sequences) {
        const std::size_t n = static_cast<std::size_t>(num_sequences) * static_cast<std::size_t>(seq_);
        buf_.resize(n * static_cast<std::size_t>(tb_));
        for (std::size_t i = 0; i < n; ++i) {
            const std::int32_t t = tokens[i];
            CRAM_CHECK(t >= 0 && t < vocab_, "shard ", file_.target().string(), ": token ", t, " outside [0, ", vocab_, ")");
            if (tb_ == 2) {
                const auto v = static_cast<std::uint16_t>(t);
                std::memcpy(buf_.data() + 2 * i, &v, 2);
            } else {
                std::memcpy(buf_.data() + 4 * i, &t, 4);
            }
        }
        file_.write(buf_.data(), buf_.size());
        sum_ = checksum_update(sum_, buf_.data(), buf_.size());
        count_ += num_sequences;
    }

    std::int64_t num_sequences() const { return count_; }

    void finish() {
        shard_header h{};
        std::memcpy(h.magic, shard_magic, 8);
        h.version = shard_version;
        h.header_bytes = sizeof(shard_header);
        h.vocab_size = static_cast<std::uint32_t>(vocab_);
        h.token_bytes = static_cast<std::uint32_t>(tb_);
        h.seq_len = static_cast<std::uint32_t>(seq_);
        h.num_sequences = static_cast<std::uint64_t>(count_);
        h.num_tokens = static_cast<std::uint64_t>(count_) * static_cast<std::uint64_t>(seq_);
        h.checksum = sum_;
        file_.write_at(0, &h, sizeof h);
        file_.commit();
    }

private:
    // Checked before the file is created, so a bad shape leaves no file behind.
    static const std::filesystem::path& checked_path(const std::filesystem::path& path, std::int32_t vocab_size,
                                                     int seq_len) {
        CRAM_CHECK(vocab_size > 0 && seq_len > 0, "shard ", path.string(), ": vocab ", vocab_size, ", seq ", seq_len);
        return path;
    }
    atomic_file file_;
    std::int32_t vocab_;
    int seq_, tb_ = 2;
    std::vector<unsigned char> buf_;
    std::uint64_t sum_ = checksum_seed;
    std::int64_t count_ = 0;
};

// A memory-mapped, validated shard.
class shard_reader {
public:
    // verify: check the checksum and that every id < vocab (one pass at memory speed).
    explicit shard_reader(const std::filesystem::path& path, bool verify = true) : path_(path) {
        fd_ = ::open(path.string().c_str(), O_RDONLY);
        if (fd_ < 0) CRAM_THROW("cannot open token shard ", path.string(), ": ", std::strerror(errno));
        struct stat st{};
        if (::fstat(fd_, &st) != 0) fail("stat");
        size_ = static_cast<std::size_t>(st.st_size);
        if (size_ < sizeof(shard_header))
            CRAM_THROW("token shard ", path.string(), " is ", size_, " bytes, shorter than its 64-byte header");
        map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
        if (map_ == MAP_FAILED) {
            map_ = nullptr;
            fail("mmap");
        }
        std::memcpy(&h_, map_, sizeof h_);
        if (std::memcmp(h_.magic, shard_magic, 8) != 0) CRAM_THROW("token shard ", path.string(), " has a bad magic (not a cram token shard)");
        if (h_.version != shard_version)
            CRAM_THROW("token shard ", path.string(), " has version ", h_.version, "; this build reads version ", shard_version);
        if (h_.header_bytes != sizeof(shard_header) || (h_.token_bytes != 2 && h_.token_bytes != 4) || h_.seq_len == 0 ||
            h_.vocab_size == 0 || h_.vocab_size > 0x7FFFFFFFu || h_.seq_len > (1u << 20) ||
            h_.num_sequences > (std::uint64_t{1} << 40) || h_.num_tokens != h_.num_sequences * h_.seq_len)
            CRAM_THROW("token shard ", path.string(), " has an inconsistent header (vocab ", h_.vocab_size, ", token bytes ", h_.token_bytes, ", seq ",
                       h_.seq_len, ", sequences ", h_.num_sequences, ", tokens ", h_.num_tokens, ")");
        if (h_.num_tokens > (size_ - sizeof(shard_header)) / h_.token_bytes ||
            sizeof(shard_header) + h_.num_tokens * h_.token_bytes != size_)
            CRAM_THROW("token shard ", path.string(), " is ", size_, " bytes but its header says ", h_.num_tokens, " tokens of ",
                       h_.token_bytes, " bytes (", sizeof(shard_header) + h_.num_tokens * h_.token_bytes,
                       " bytes): truncated or corrupt");
        if (verify) this->verify();
    }
    ~shard_reader() {
        if (map_) ::munmap(map_, size_);
        if (fd_ >= 0) ::close(fd_);
    }
    shard_reader(shard_reader&& o) noexcept { *this = std::move(o); }
    shard_reader& operator=(shard_reader&& o) noexcept {
        std::swap(path_, o.path_);
        std::swap(fd_, o.fd_);
        std::swap(map_, o.map_);
        std::swap(size_, o.size_);
        std::swap(h_, o.h_);
        return *this;
    }
    shard_reader(const shard_reader&) = delete;

    void verify() const {
        const auto* data = static_cast<const unsigned char*>(map_) + sizeof(shard_header);
        const std::size_t bytes = h_.num_tokens * h_.token_bytes;
        if (checksum_update(checksum_seed, data, bytes) != h_.checksum)
            CRAM_THROW("token shard ", path_.string(), " fails its checksum: corrupt");
        std::uint32_t max_id = 0;
        if (h_.token_bytes == 2) {
            for (std::size_t i = 0; i < h_.num_tokens; ++i) {
                std::uint16_t v;
                std::memcpy(&v, data + 2 * i, 2);
                max_id = std::max<std::uint32_t>(max_id, v);
            }
        } else {
            for (std::size_t i = 0; i < h_.num_tokens; ++i) {
                std::uint32_t v;  // a negative int32 reads as a huge value and fails below
                std::memcpy(&v, data + 4 * i, 4);
                max_id = std::max(max_id, v);
            }
        }
        if (h_.num_tokens && max_id >= h_.vocab_size)
            CRAM_THROW("token shard ", path_.string(), " holds id ", max_id, " >= its vocab size ", h_.vocab_size);
    }

    const std::filesystem::path& path() const { return path_; }
    std::int64_t num_sequences() const { return static_cast<std::int64_t>(h_.num_sequences); }
    int seq_len() const { return static_cast<int>(h_.seq_len); }
    std::int32_t vocab_size() const { return static_cast<std::int32_t>(h_.vocab_size); }
    int token_bytes() const { return static_cast<int>(h_.token_bytes); }
    const shard_header& header() const { return h_; }

    // Copies `count` sequences starting at `first` (within this shard) as int32.
    void read(std::int64_t first, std::int64_t count, std::int32_t* out) const {
        CRAM_CHECK(first >= 0 && count >= 0 && first + count <= num_sequences(), "shard ", path_.string(), ": sequences [",
                   first, ", ", first + count, ") outside [0, ", num_sequences(), ")");
        const std::size_t n = static_cast<std::size_t>(count) * h_.seq_len;
        const std::size_t off = static_cast<std::size_t>(first) * h_.seq_len;
        const auto* data = static_cast<const unsigned char*>(map_) + sizeof(shard_header);
        if (h_.token_bytes == 2) {
            const auto* p = data + 2 * off;
            for (std::size_t i = 0; i < n; ++i) {
                std::uint16_t v;
                std::memcpy(&v, p + 2 * i, 2);
                out[i] = v;
            }
        } else {
            std::memcpy(out, data + 4 * off, 4 * n);
        }
    }

private:
    [[noreturn]] void fail(const char* what) const {
        CRAM_THROW("cannot ", what, " token shard ", path_.string(), ": ", std::strerror(errno));
    }
    std::filesystem::path path_;
    int fd_ = -1;
    void* map_ = nullptr;
    std::size_t size_ = 0;
    shard_header h_{};
};

}  // namespace cram::data
