// Reading and writing the safetensors format (github.com/huggingface/safetensors, "Format"): an 8-byte
// little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end)},
// "__metadata__": {str: str}} padded with spaces to a multiple of 8, then the tensor bytes, contiguous
// and without gaps. Written by our own code so checkpoints load in the Python `safetensors` package;
// the reader validates every rule with messages that name the file.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "cram/core/checksum.hpp"
#include "cram/core/error.hpp"
#include "cram/core/file_io.hpp"

namespace cram::train {

template <class T>
constexpr const char* safetensors_dtype() {
    if constexpr (std::is_same_v<T, float>) return "F32";
    else if constexpr (std::is_same_v<T, double>) return "F64";
    else if constexpr (std::is_same_v<T, std::int32_t>) return "I32";
    else if constexpr (std::is_same_v<T, std::int64_t>) return "I64";
    else static_assert(sizeof(T) == 0, "cram: no safetensors dtype for this type");
}

inline std::size_t safetensors_dtype_size(const std::string& dtype) {
    static const std::map<std::string, std::size_t> sizes{
        {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
        {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4}, {"F64", 8}, {"I64", 8}, {"U64", 8}};
    const auto it = sizes.find(dtype);
    return it == sizes.end() ? 0 : it->second;
}

struct safetensors_entry {
    std::string name;
    std::string dtype;
    std::vector<std::int64_t> shape;
    const void* data = nullptr;  // host memory, bytes = product(shape) * dtype size
};

namespace detail {
inline std::size_t element_count(const std::vector<std::int64_t>& shape) {
    std::size_t n = 1;
    for (auto d : shape) n *= static_cast<std::size_t>(d);
    return n;
}
}  // namespace detail

// The header bytes (length prefix included) for these entries, laid out in the given order.
inline std::string safetensors_header(const std::vector<safetensors_entry>& entries,
                                      const std::map<std::string, std::string>& metadata) {
    nlohmann::ordered_json h;
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    meta["format"] = "pt";
    for (const auto& [k, v] : metadata) meta[k] = v;
    h["__metadata__"] = meta;
    std::uint64_t offset = 0;
    for (const auto& e : entries) {
        CRAM_CHECK(e.name != "__metadata__" && !e.name.empty(), "invalid safetensors tensor name '", e.name, "'");
        CRAM_CHECK(!h.contains(e.name), "duplicate safetensors tensor name '", e.name, "'");
        const std::size_t es = safetensors_dtype_size(e.dtype);
        CRAM_CHECK(es > 0, "unknown safetensors dtype '", e.dtype, "' for ", e.name);
        const std::uint64_t bytes = detail::element_count(e.shape) * es;
        h[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    std::string json = h.dump();
    // pad with spaces so the tensor data starts 8-byte aligned (what the reference writer does)
    while ((8 + json.size()) % 8 != 0) json.push_back(' ');
    std::string out(8, '\0');
    const std::uint64_t n = json.size();
    for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
    return out + json;
}

// Size and XXH64 of a whole file: what a checkpoint's state.json records for each tensor file.
struct file_digest {
    std::uint64_t bytes = 0;
    std::string xxh64;  // 16 hex digits
    bool operator==(const file_digest&) const = default;
};

// Writes a complete safetensors file at `path` (not atomically on its own: callers write into a
// temporary directory or name, then rename), fsyncs it, and returns its size and checksum, computed from
// the bytes as they were written (no second read).
inline file_digest write_safetensors(const std::filesystem::path& path, const std::vector<safetensors_entry>& entries,
                                     const std::map<std::string, std::string>& metadata = {}) {
    synced_file f(path);
    xxh64 hash;
    file_digest d;
    const std::string header = safetensors_header(entries, metadata);
    f.write_all(header);
    hash.update(header);
    d.bytes = header.size();
    for (const auto& e : entries) {
        const std::size_t bytes = detail::element_count(e.shape) * safetensors_dtype_size(e.dtype);
        if (!bytes) continue;
        f.write_all(e.data, bytes);
        hash.update(e.data, bytes);
        d.bytes += bytes;
    }
    f.sync_and_close();
    d.xxh64 = hash.hex();
    return d;
}

struct safetensors_tensor {
    std::string dtype;
    std::vector<std::int64_t> shape;
    std::uint64_t begin = 0, end = 0;  // into data()
};

// A whole safetensors file read and validated (header rules of the format; every byte accounted for).
class safetensors_file {
public:
    explicit safetensors_file(const std::filesystem::path& path) : path_(path) {
        std::ifstream in(path, std::ios::binary);
        if (!in) CRAM_THROW("cannot open ", path.string());
        in.seekg(0, std::ios::end);
        const auto size = static_cast<std::uint64_t>(in.tellg());
        in.seekg(0);
        CRAM_CHECK(size >= 8, path.string(), " is not a safetensors file: ", size, " bytes, shorter than the 8-byte header length");
        unsigned char len_bytes[8];
        in.read(reinterpret_cast<char*>(len_bytes), 8);
        std::uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
        CRAM_CHECK(n <= size - 8 && n <= (std::uint64_t{100} << 20), path.string(), ": header length ", n,
                   " does not fit the file of ", size, " bytes (truncated or not safetensors)");
        std::string json(n, '\0');
        in.read(json.data(), static_cast<std::streamsize>(n));
        CRAM_CHECK(static_cast<bool>(in), path.string(), ": short read in the header");
        xxh64 hash;
        hash.update(len_bytes, 8);
        hash.update(json);
        CRAM_CHECK(!json.empty() && json[0] == '{', path.string(), ": the header does not start with '{'");
        const auto h = nlohmann::json::parse(json, nullptr, false);
        CRAM_CHECK(!h.is_discarded() && h.is_object(), path.string(), ": the header is not a JSON object");
        data_.resize(size - 8 - n);
        in.read(reinterpret_cast<char*>(data_.data()), static_cast<std::streamsize>(data_.size()));
        CRAM_CHECK(static_cast<bool>(in), path.string(), ": short read");
        hash.update(data_.data(), data_.size());
        digest_ = {size, hash.hex()};
        std::vector<std::pair<std::uint64_t, std::uint64_t>> spans;
        for (const auto& [name, v] : h.items()) {
            if (name == "__metadata__") {
                CRAM_CHECK(v.is_object(), path.string(), ": __metadata__ must be an object");
                for (const auto& [k, s] : v.items()) {
                    CRAM_CHECK(s.is_string(), path.string(), ": __metadata__ value of '", k, "' is not a string");
                    metadata_[k] = s.get<std::string>();
                }
                continue;
            }
            CRAM_CHECK(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"),
                       path.string(), ": tensor '", name, "' lacks dtype, shape or data_offsets");
            safetensors_tensor t;
            const auto& offsets = v["data_offsets"];
            CRAM_CHECK(v["dtype"].is_string() && v["shape"].is_array() && offsets.is_array() && offsets.size() == 2,
                       path.string(), ": tensor '", name, "' has a malformed dtype, shape or data_offsets");
            for (const auto& d : v["shape"])
                CRAM_CHECK(d.is_number_integer(), path.string(), ": tensor '", name, "' has a non-integer dimension");
            for (const auto& o : offsets)
                CRAM_CHECK(o.is_number_unsigned(), path.string(), ": tensor '", name, "' has a non-integer data offset");
            t.dtype = v["dtype"].get<std::string>();
            t.shape = v["shape"].get<std::vector<std::int64_t>>();
            const auto off = offsets.get<std::vector<std::uint64_t>>();
            CRAM_CHECK(off.size() == 2 && off[0] <= off[1] && off[1] <= data_.size(), path.string(), ": tensor '",
                       name, "' has data_offsets outside the ", data_.size(), "-byte data section");
            const std::size_t es = safetensors_dtype_size(t.dtype);
            CRAM_CHECK(es > 0, path.string(), ": tensor '", name, "' has unknown dtype ", t.dtype);
            for (auto d : t.shape) CRAM_CHECK(d >= 0, path.string(), ": tensor '", name, "' has a negative dimension");
            CRAM_CHECK(detail::element_count(t.shape) * es == off[1] - off[0], path.string(), ": tensor '", name,
                       "' spans ", off[1] - off[0], " bytes, its shape and dtype need ",
                       detail::element_count(t.shape) * es);
            t.begin = off[0];
            t.end = off[1];
            spans.emplace_back(t.begin, t.end);
            tensors_.emplace(name, std::move(t));
        }
        std::sort(spans.begin(), spans.end());
        std::uint64_t at = 0;
        for (const auto& [b, e] : spans) {
            CRAM_CHECK(b == at, path.string(), ": tensor data is not contiguous at byte ", at, " (gap or overlap)");
            at = e;
        }
        CRAM_CHECK(at == data_.size(), path.string(), ": ", data_.size() - at, " bytes after the last tensor");
    }

    const std::filesystem::path& path() const { return path_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const std::map<std::string, safetensors_tensor>& tensors() const { return tensors_; }
    const std::vector<unsigned char>& data() const { return data_; }
    // Size and XXH64 of the file as read (compare with the checksum a checkpoint recorded for it).
    const file_digest& digest() const { return digest_; }

    // Copies tensor `name` (dtype of T, the expected shape) into out.
    template <class T>
    void read(const std::string& name, const std::vector<std::int64_t>& shape, T* out) const {
        const auto it = tensors_.find(name);
        if (it == tensors_.end()) CRAM_THROW(path_.string(), " has no tensor '", name, "'");
        const auto& t = it->second;
        CRAM_CHECK(t.dtype == safetensors_dtype<T>(), path_.string(), ": tensor '", name, "' is ", t.dtype,
                   ", expected ", safetensors_dtype<T>());
        CRAM_CHECK(t.shape == shape, path_.string(), ": tensor '", name, "' has shape ",
                   nlohmann::json(t.shape).dump(), ", expected ", nlohmann::json(shape).dump());
        std::memcpy(out, data_.data() + t.begin, t.end - t.begin);
    }

private:
    std::filesystem::path path_;
    std::map<std::string, std::string> metadata_;
    std::map<std::string, safetensors_tensor> tensors_;
    std::vector<unsigned char> data_;
    file_digest digest_;
};

}  // namespace cram::train
