// Training checkpoints: RUN/checkpoints/step-NNNNNNNN/ holding model.safetensors (parameters by name),
// optimizer.safetensors (AdamW moments by name) and state.json (step, elapsed budget, seed, data position,
// ramp, config and its fingerprint). A checkpoint is assembled in a temporary directory, every file fsynced,
// then the directory renamed into place, so a crash at any instant leaves the previous checkpoint loadable.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/file_io.hpp"
#include "cram/model/parameters.hpp"
#include "cram/train/safetensors.hpp"

namespace cram::train {

// Called between the files of a checkpoint write with a stage name; tests use it to kill a writer at a
// known point. Empty in normal runs.
inline std::function<void(const char* stage)>& checkpoint_write_hook() {
    static std::function<void(const char*)> hook;
    return hook;
}

// 64-bit FNV-1a of a canonical JSON dump: a short fingerprint of a training configuration.
inline std::string config_fingerprint(const nlohmann::json& config) {
    const std::string s = config.dump();  // nlohmann::json keeps object keys sorted: canonical
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

// Differences between two configurations as "key: checkpoint A, this run B" lines (nested keys dotted).
inline std::vector<std::string> config_differences(const nlohmann::json& saved, const nlohmann::json& now,
                                                   const std::string& prefix = "") {
    std::vector<std::string> out;
    if (saved.is_object() && now.is_object()) {
        for (const auto& [k, v] : saved.items()) {
            const std::string key = prefix.empty() ? k : prefix + "." + k;
            if (!now.contains(k)) out.push_back(key + ": checkpoint " + v.dump() + ", this run has no such setting");
            else {
                auto sub = config_differences(v, now[k], key);
                out.insert(out.end(), sub.begin(), sub.end());
            }
        }
        for (const auto& [k, v] : now.items())
            if (!saved.contains(k))
                out.push_back((prefix.empty() ? k : prefix + "." + k) + ": checkpoint has no such setting, this run " + v.dump());
    } else if (saved != now) {
        out.push_back(prefix + ": checkpoint " + saved.dump() + ", this run " + now.dump());
    }
    return out;
}

inline std::string checkpoint_dir_name(std::int64_t step) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
    return buf;
}

// Complete checkpoints under `dir` (names step-<digits> holding state.json), newest (highest step) first.
inline std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& dir) {
    std::vector<std::pair<std::int64_t, std::filesystem::path>> found;
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) return {};
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        if (name.size() < 6 || name.rfind("step-", 0) != 0) continue;
        const std::string digits = name.substr(5);
        if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
        if (!std::filesystem::exists(e.path() / "state.json")) continue;
        found.emplace_back(std::stoll(digits), e.path());
    }
    std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<std::filesystem::path> out;
    for (auto& f : found) out.push_back(std::move(f.second));
    return out;
}

// Entries of a flat buffer laid out by `layout`, one per tensor, named prefix + tensor name.
template <class T>
std::vector<safetensors_entry> layout_entries(const param_layout& layout, const T* buffer, const std::string& prefix) {
    std::vector<safetensors_entry> out;
    for (const auto& t : layout.tensors())
        out.push_back({prefix + t.name, safetensors_dtype<T>(), t.shape, buffer + t.offset});
    return out;
}

template <class T>
void read_layout(const safetensors_file& f, const param_layout& layout, T* buffer, const std::string& prefix) {
    std::fill(buffer, buffer + layout.buffer_size(), T(0));  // alignment padding stays zero
    for (const auto& t : layout.tensors()) f.read(prefix + t.name, t.shape, buffer + t.offset);
}

struct checkpoint_paths {
    static constexpr const char* model = "model.safetensors";
    static constexpr const char* optimizer = "optimizer.safetensors";
    static constexpr const char* state = "state.json";
};

// Writes checkpoint `step` under `dir` and keeps the newest `keep` (>= 1). Returns its directory. When a
// complete checkpoint of the same step exists (the final save right after a periodic one), only its
// state.json is replaced, atomically.
template <class T>
std::filesystem::path save_checkpoint(const std::filesystem::path& dir, std::int64_t step, const param_layout& layout,
                                      const T* params, const T* m, const T* v, const nlohmann::json& state, int keep,
                                      const std::map<std::string, std::string>& metadata = {}) {
    namespace fs = std::filesystem;
    fs::create_directories(dir);
    const fs::path final_dir = dir / checkpoint_dir_name(step);
    auto& hook = checkpoint_write_hook();
    if (fs::exists(final_dir / checkpoint_paths::state)) {
        atomic_write_file(final_dir / checkpoint_paths::state, state.dump(2) + "\n");
        return final_dir;
    }
    // leftovers of a writer killed earlier (ours or an older process's) are never valid checkpoints
    for (const auto& e : fs::directory_iterator(dir)) {
        if (is_temp_name(e.path()) || e.path().filename().string().find(".trash") != std::string::npos)
            fs::remove_all(e.path());
    }
    const fs::path tmp = temp_name_for(final_dir);
    fs::create_directories(tmp);
    if (hook) hook("begin");
    write_safetensors(tmp / checkpoint_paths::model, layout_entries(layout, params, ""), metadata);
    if (hook) hook("model");
    auto opt_entries = layout_entries(layout, m, "exp_avg.");
    auto v_entries = layout_entries(layout, v, "exp_avg_sq.");
    opt_entries.insert(opt_entries.end(), v_entries.begin(), v_entries.end());
    write_safetensors(tmp / checkpoint_paths::optimizer, opt_entries, metadata);
    if (hook) hook("optimizer");
    {
        synced_file f(tmp / checkpoint_paths::state);
        f.write_all(state.dump(2) + "\n");
        f.sync_and_close();
    }
    fsync_directory(tmp);
    if (hook) hook("state");
    rename_path(tmp, final_dir);
    fsync_directory(dir);
    if (hook) hook("renamed");
    // retire old checkpoints: rename first (atomic), so a half-deleted one is never taken for complete
    const auto all = list_checkpoints(dir);
    for (std::size_t i = static_cast<std::size_t>(std::max(keep, 1)); i < all.size(); ++i) {
        const fs::path trash = all[i].parent_path() / (all[i].filename().string() + ".trash");
        rename_path(all[i], trash);
        fs::remove_all(trash);
    }
    fsync_directory(dir);
    return final_dir;
}

template <class T>
struct loaded_checkpoint {
    std::filesystem::path dir;
    nlohmann::json state;
    std::vector<T> params, m, v;
};

inline nlohmann::json read_json_file(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) CRAM_THROW("cannot read ", path.string());
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded()) CRAM_THROW(path.string(), " is not valid JSON (damaged checkpoint?)");
    return j;
}

// Loads one checkpoint directory; throws with the file name when anything is missing or damaged.
template <class T>
loaded_checkpoint<T> load_checkpoint(const std::filesystem::path& ckpt, const param_layout& layout) {
    loaded_checkpoint<T> out;
    out.dir = ckpt;
    out.state = read_json_file(ckpt / checkpoint_paths::state);
    out.params.resize(layout.buffer_size());
    out.m.resize(layout.buffer_size());
    out.v.resize(layout.buffer_size());
    read_layout(safetensors_file(ckpt / checkpoint_paths::model), layout, out.params.data(), "");
    const safetensors_file opt(ckpt / checkpoint_paths::optimizer);
    read_layout(opt, layout, out.m.data(), "exp_avg.");
    read_layout(opt, layout, out.v.data(), "exp_avg_sq.");
    return out;
}

// The newest checkpoint under `dir` that loads; a damaged newer one is reported on stderr and skipped.
template <class T>
std::optional<loaded_checkpoint<T>> load_latest_checkpoint(const std::filesystem::path& dir, const param_layout& layout) {
    for (const auto& c : list_checkpoints(dir)) {
        try {
            return load_checkpoint<T>(c, layout);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "warning: skipping damaged checkpoint %s: %s\n", c.string().c_str(), e.what());
        }
    }
    return std::nullopt;
}

}  // namespace cram::train
