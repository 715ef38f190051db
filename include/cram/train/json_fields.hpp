// Typed reading of a JSON document a user's file holds (state.json, a dataset summary): every missing
// or wrong-typed field is a cram::error naming the file and the field, never a JSON library message, so
// a damaged file is reported as such and callers can fall back (to an older checkpoint, say).
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include "cram/core/error.hpp"
#include "cram/core/text.hpp"

namespace cram::train {

// A whole JSON file; throws naming it when it cannot be read or is not valid JSON.
inline nlohmann::json read_json_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) CRAM_THROW("cannot read ", path.string());
    std::stringstream buffer;
    buffer << in.rdbuf();
    std::string text = buffer.str();
    strip_bom_in_place(text);
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) CRAM_THROW(path.string(), " is not valid JSON (damaged or truncated?)");
    return j;
}

class json_fields {
public:
    json_fields(const nlohmann::json& j, std::filesystem::path file) : j_(j), file_(std::move(file)) {
        if (!j_.is_object()) CRAM_THROW(file_.string(), ": expected a JSON object, found ", j_.type_name());
    }

    bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
    const nlohmann::json& raw(const char* key) const { return at(key); }

    std::int64_t integer(const char* key, std::int64_t min = std::numeric_limits<std::int64_t>::min()) const {
        const auto& v = at(key);
        if (!v.is_number_integer()) wrong(key, "an integer", v);
        const auto x = v.get<std::int64_t>();
        if (v.is_number_unsigned() && v.get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
            wrong(key, "an integer in range", v);
        if (x < min) wrong(key, "an integer >= " + std::to_string(min), v);
        return x;
    }
    std::int64_t integer_or(const char* key, std::int64_t fallback, std::int64_t min = std::numeric_limits<std::int64_t>::min()) const {
        return has(key) ? integer(key, min) : fallback;
    }
    std::uint64_t unsigned_integer(const char* key) const {
        const auto& v = at(key);
        if (!v.is_number_unsigned()) wrong(key, "a non-negative integer", v);
        return v.get<std::uint64_t>();
    }
    double number(const char* key) const {
        const auto& v = at(key);
        if (!v.is_number() || !std::isfinite(v.get<double>())) wrong(key, "a finite number", v);
        return v.get<double>();
    }
    // A number, or `fallback` where the key is absent (a field newer than the file).
    double number_or(const char* key, double fallback) const { return has(key) ? number(key) : fallback; }
    // A number, or NaN where the file holds null (how cram writes a loss that does not exist yet).
    double number_or_nan(const char* key) const {
        if (!j_.contains(key) || j_[key].is_null()) return NAN;
        return number(key);
    }
    std::string string(const char* key) const {
        const auto& v = at(key);
        if (!v.is_string()) wrong(key, "a string", v);
        return v.get<std::string>();
    }
    std::string string_or(const char* key, std::string fallback) const { return has(key) ? string(key) : fallback; }
    const nlohmann::json& object(const char* key) const {
        const auto& v = at(key);
        if (!v.is_object()) wrong(key, "an object", v);
        return v;
    }
    // The nested object `key` as fields of its own (messages name "file: key.sub").
    json_fields sub(const char* key) const { return json_fields(object(key), file_, prefix_ + key + "."); }

    const std::filesystem::path& file() const { return file_; }

private:
    json_fields(const nlohmann::json& j, std::filesystem::path file, std::string prefix)
        : j_(j), file_(std::move(file)), prefix_(std::move(prefix)) {}

    const nlohmann::json& at(const char* key) const {
        if (!j_.contains(key)) CRAM_THROW(file_.string(), ": the field \"", prefix_, key, "\" is missing");
        return j_[key];
    }
    [[noreturn]] void wrong(const char* key, const std::string& want, const nlohmann::json& v) const {
        std::string shown = v.dump();
        if (shown.size() > 60) shown = shown.substr(0, 57) + "...";
        CRAM_THROW(file_.string(), ": the field \"", prefix_, key, "\" should be ", want, ", found ", shown);
    }

    const nlohmann::json& j_;
    std::filesystem::path file_;
    std::string prefix_;
};

}  // namespace cram::train
