// XXH64 (the xxHash 64-bit algorithm as its specification describes it, seed 0 unless given): a fast,
// well-distributed checksum for the files cram publishes, so a flipped byte in a checkpoint or shard is
// found before it is trained on. Streaming, so a multi-gigabyte file is hashed as it is written or read.
// Its digests equal `xxhsum -H64` (the reference tool; tests compare against it when it is installed).
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "cram/core/error.hpp"

namespace cram {

class xxh64 {
public:
    explicit xxh64(std::uint64_t seed = 0) : seed_(seed) {
        acc_ = {seed + p1 + p2, seed + p2, seed, seed - p1};
    }

    void update(const void* data, std::size_t n) {
        const auto* p = static_cast<const unsigned char*>(data);
        total_ += n;
        if (buffered_ + n < 32) {  // not a whole stripe yet
            if (n) std::memcpy(buffer_.data() + buffered_, p, n);
            buffered_ += n;
            return;
        }
        if (buffered_ > 0) {  // complete the buffered stripe first
            const std::size_t fill = 32 - buffered_;
            std::memcpy(buffer_.data() + buffered_, p, fill);
            stripe(buffer_.data());
            p += fill;
            n -= fill;
            buffered_ = 0;
        }
        for (; n >= 32; p += 32, n -= 32) stripe(p);
        if (n) std::memcpy(buffer_.data(), p, n);
        buffered_ = n;
    }
    void update(std::string_view s) { update(s.data(), s.size()); }

    std::uint64_t digest() const {
        std::uint64_t h;
        if (total_ >= 32) {
            h = rotl(acc_[0], 1) + rotl(acc_[1], 7) + rotl(acc_[2], 12) + rotl(acc_[3], 18);
            for (const std::uint64_t a : acc_) h = merge(h, a);
        } else {
            h = seed_ + p5;
        }
        h += total_;
        const unsigned char* p = buffer_.data();
        std::size_t n = buffered_;
        for (; n >= 8; p += 8, n -= 8) {
            h ^= round(0, read64(p));
            h = rotl(h, 27) * p1 + p4;
        }
        if (n >= 4) {
            h ^= std::uint64_t(read32(p)) * p1;
            h = rotl(h, 23) * p2 + p3;
            p += 4;
            n -= 4;
        }
        for (; n; ++p, --n) {
            h ^= std::uint64_t(*p) * p5;
            h = rotl(h, 11) * p1;
        }
        h ^= h >> 33;
        h *= p2;
        h ^= h >> 29;
        h *= p3;
        h ^= h >> 32;
        return h;
    }

    // The digest as 16 lower-case hex digits (how xxhsum prints it and how cram records it in JSON).
    std::string hex() const { return to_hex(digest()); }

    static std::string to_hex(std::uint64_t v) {
        char buf[17];
        std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
        return buf;
    }

    static std::uint64_t of(const void* data, std::size_t n, std::uint64_t seed = 0) {
        xxh64 h(seed);
        h.update(data, n);
        return h.digest();
    }
    static std::uint64_t of(std::string_view s) { return of(s.data(), s.size()); }

private:
    static constexpr std::uint64_t p1 = 0x9E3779B185EBCA87ull, p2 = 0xC2B2AE3D27D4EB4Full,
                                   p3 = 0x165667B19E3779F9ull, p4 = 0x85EBCA77C2B2AE63ull,
                                   p5 = 0x27D4EB2F165667C5ull;

    static constexpr std::uint64_t rotl(std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
    static constexpr std::uint64_t round(std::uint64_t acc, std::uint64_t input) {
        acc += input * p2;
        return rotl(acc, 31) * p1;
    }
    static constexpr std::uint64_t merge(std::uint64_t acc, std::uint64_t v) {
        acc ^= round(0, v);
        return acc * p1 + p4;
    }
    // the algorithm reads little-endian words: a plain load on every machine cram targets
    static_assert(std::endian::native == std::endian::little, "cram::xxh64 assumes a little-endian host");
    static std::uint64_t read64(const unsigned char* p) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        return v;
    }
    static std::uint32_t read32(const unsigned char* p) {
        std::uint32_t v;
        std::memcpy(&v, p, 4);
        return v;
    }
    void stripe(const unsigned char* p) {
        for (int i = 0; i < 4; ++i) acc_[std::size_t(i)] = round(acc_[std::size_t(i)], read64(p + 8 * i));
    }

    std::uint64_t seed_;
    std::array<std::uint64_t, 4> acc_{};
    std::array<unsigned char, 32> buffer_{};
    std::size_t buffered_ = 0;
    std::uint64_t total_ = 0;
};

// XXH64 of a whole file, read in blocks, as 16 hex digits (and its size in `bytes`): what checkpoints record
// for their tensor files and datasets for their vocabulary. Throws naming the file when it cannot be read.
inline std::string file_xxh64(const std::filesystem::path& path, std::uint64_t* bytes = nullptr) {
    std::ifstream in(path, std::ios::binary);
    if (!in) CRAM_THROW("cannot open ", path.string());
    xxh64 hash;
    std::uint64_t total = 0;
    std::vector<char> buf(std::size_t{1} << 22);
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        const auto n = static_cast<std::size_t>(in.gcount());
        hash.update(buf.data(), n);
        total += n;
    }
    if (!in.eof()) CRAM_THROW("cannot read ", path.string());
    if (bytes) *bytes = total;
    return hash.hex();
}

}  // namespace cram
