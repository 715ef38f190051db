// Training checkpoints: RUN/checkpoints/step-NNNNNNNN/ holding model.safetensors (parameters by name),
// optimizer.safetensors (AdamW moments by name) and state.json (step, elapsed budget, seed, data position,
// ramp, config and its fingerprint, and — format version 2 — the size and XXH64 of both tensor files and
// a checksum of state.json itself). A checkpoint is written whole into a fresh temporary directory, every
// file fsynced, and published by one rename (or one atomic exchange with an older directory of the same
// step): it is never patched in place, so a crash at any instant leaves the previous checkpoint loadable.
// Loading verifies every checksum and refuses non-finite weights; a checkpoint that fails is skipped and
// (by the process that owns the run) moved aside as step-N.damaged, so it is never reused, written into
// or counted by retention. docs/reliability.md lists what each failure does.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "cram/core/checksum.hpp"
#include "cram/core/error.hpp"
#include "cram/core/file_io.hpp"
#include "cram/model/parameters.hpp"
#include "cram/train/json_fields.hpp"
#include "cram/train/safetensors.hpp"

namespace cram::train {

// Called between the files of a checkpoint write with a stage name; tests use it to kill a writer at a
// known point. Empty in normal runs.
inline std::function<void(const char* stage)>& checkpoint_write_hook() {
    static std::function<void(const char*)> hook;
    return hook;
}

// The state.json format this code writes; version 1 (no checksums) still loads, with a warning.
inline constexpr int checkpoint_format_version = 2;
inline constexpr const char* checkpoint_format_name = "cram-train-state";

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

// The step of a directory named step-<digits>, or -1 for any other name (.damaged, .tmp-, .trash ones).
inline std::int64_t checkpoint_step_of(const std::filesystem::path& p) {
    const std::string name = p.filename().string();
    if (name.size() < 6 || name.size() > 24 || name.rfind("step-", 0) != 0) return -1;
    const std::string digits = name.substr(5);
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) return -1;
    return std::stoll(digits);
}

// Complete checkpoints under `dir` (names step-<digits> holding state.json), newest (highest step) first.
// Completeness is not integrity: loading verifies.
inline std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& dir) {
    std::vector<std::pair<std::int64_t, std::filesystem::path>> found;
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) return {};
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        const std::int64_t step = checkpoint_step_of(e.path());
        if (step < 0 || !std::filesystem::exists(e.path() / "state.json", ec)) continue;
        found.emplace_back(step, e.path());
    }
    std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<std::filesystem::path> out;
    for (auto& f : found) out.push_back(std::move(f.second));
    return out;
}

struct checkpoint_paths {
    static constexpr const char* model = "model.safetensors";
    static constexpr const char* optimizer = "optimizer.safetensors";
    static constexpr const char* state = "state.json";
};

// A checkpoint whose files are damaged (truncated, flipped bytes, a checksum that does not match, NaN
// weights, a state.json that is not what cram writes): unusable, whatever the caller wanted of it. Code
// that looks for the newest usable checkpoint skips these; every other error (no permission, another
// configuration) propagates.
class checkpoint_damaged : public error {
public:
    checkpoint_damaged(const std::string& message, const char* file, int line) : error(message, file, line) {}
};

// A checkpoint written by a newer cram (a format version this code does not know): not damage, and not to
// be set aside or silently passed over for an older one.
class checkpoint_too_new : public error {
public:
    checkpoint_too_new(const std::string& message, const char* file, int line) : error(message, file, line) {}
};

namespace detail {

// Runs `f`, turning any cram::error it throws into checkpoint_damaged (same message and location).
template <class F>
auto as_damage(F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const checkpoint_damaged&) {
        throw;
    } catch (const checkpoint_too_new&) {
        throw;
    } catch (const error& e) {
        throw checkpoint_damaged(e.what(), e.file(), e.line());
    }
}

inline std::string state_checksum(nlohmann::json state) {
    state.erase("state_xxh64");
    return xxh64::to_hex(xxh64::of(state.dump()));
}

// The name of the first tensor of `buffer` (laid out by `layout`) holding a NaN or an infinity (or, with
// `non_negative`, a negative value: AdamW's second moment never is one), or empty.
template <class T>
std::string first_bad_tensor(const param_layout& layout, const T* buffer, bool non_negative = false) {
    for (const auto& t : layout.tensors()) {
        const T* p = buffer + t.offset;
        for (std::size_t i = 0; i < t.size; ++i)
            if (!std::isfinite(static_cast<double>(p[i])) || (non_negative && p[i] < T(0))) return t.name;
    }
    return {};
}

}  // namespace detail

// What a checkpoint's state.json says, checked: valid JSON, cram's format, a known version, its own
// checksum (version 2), a step that matches the directory's name, and the size and checksum recorded for
// each tensor file (version 2; empty for version 1).
struct checkpoint_info {
    std::filesystem::path dir;
    nlohmann::json state;
    int version = 0;
    std::int64_t step = 0;
    std::map<std::string, file_digest> files;

    std::filesystem::path state_file() const { return dir / checkpoint_paths::state; }
    // The configuration the checkpoint was trained with (empty object when not recorded).
    nlohmann::json config() const {
        return state.contains("config") && state["config"].is_object() ? state["config"] : nlohmann::json::object();
    }
};

// Reads and checks DIR/state.json; throws checkpoint_damaged naming the file and what is wrong.
inline checkpoint_info read_checkpoint_info(const std::filesystem::path& dir) {
    return detail::as_damage([&] {
        checkpoint_info info;
        info.dir = dir;
        const std::filesystem::path file = dir / checkpoint_paths::state;
        if (!std::filesystem::exists(file)) CRAM_THROW(file.string(), " is missing (an incomplete checkpoint)");
        info.state = read_json_file(file);
        const json_fields f(info.state, file);
        const std::string format = f.string_or("format", checkpoint_format_name);
        CRAM_CHECK(format == checkpoint_format_name, file.string(), " is a \"", format, "\" file, not a cram checkpoint state");
        info.version = int(f.integer_or("version", 1, 1));
        if (info.version > checkpoint_format_version)
            throw checkpoint_too_new(cram::detail::concat(file.string(), " has format version ", info.version,
                                                          "; this cram reads versions up to ", checkpoint_format_version,
                                                          ": it was written by a newer cram, update to resume it"),
                                     __FILE__, __LINE__);
        info.step = f.integer("step", 0);
        const std::int64_t named = checkpoint_step_of(dir);
        CRAM_CHECK(named < 0 || named == info.step, file.string(), " records step ", info.step, " but its directory is ",
                   dir.filename().string());
        if (info.version >= 2) {
            const std::string want = f.string("state_xxh64");
            CRAM_CHECK(detail::state_checksum(info.state) == want, file.string(),
                       " does not match its own checksum: it was altered or damaged after it was written");
            const json_fields files = f.sub("files");
            for (const char* name : {checkpoint_paths::model, checkpoint_paths::optimizer}) {
                const json_fields one = files.sub(name);
                info.files[name] = {one.unsigned_integer("bytes"), one.string("xxh64")};
            }
        } else {
            std::fprintf(stderr, "warning: %s has no checksums (format version 1, an older cram): its tensors are "
                                 "checked for shape and finite values only\n", file.string().c_str());
        }
        return info;
    });
}

// Compares a tensor file as read with what state.json recorded for it (version 2).
inline void check_file_digest(const checkpoint_info& info, const char* name, const file_digest& got) {
    const auto it = info.files.find(name);
    if (it == info.files.end()) return;  // version 1: nothing recorded
    const std::string file = (info.dir / name).string();
    if (got.bytes != it->second.bytes)
        throw checkpoint_damaged(cram::detail::concat(file, " has ", got.bytes, " bytes but the checkpoint recorded ",
                                                it->second.bytes, " (truncated or overwritten)"),
                                 __FILE__, __LINE__);
    if (got.xxh64 != it->second.xxh64)
        throw checkpoint_damaged(cram::detail::concat(file, " does not match its recorded checksum (XXH64 ", got.xxh64,
                                                ", recorded ", it->second.xxh64, "): its bytes changed after it was written"),
                                 __FILE__, __LINE__);
}

// Size and XXH64 of a file on disk.
inline file_digest digest_file(const std::filesystem::path& path) {
    file_digest d;
    d.xxh64 = file_xxh64(path, &d.bytes);
    return d;
}

// Whole verification without loading into a model: state.json and every tensor file against its checksum
// (retention uses this before it counts a checkpoint as a good one). Throws checkpoint_damaged.
inline checkpoint_info verify_checkpoint(const std::filesystem::path& dir) {
    checkpoint_info info = read_checkpoint_info(dir);
    detail::as_damage([&] {
        for (const char* name : {checkpoint_paths::model, checkpoint_paths::optimizer}) {
            if (!std::filesystem::exists(dir / name)) CRAM_THROW((dir / name).string(), " is missing");
            if (info.version >= 2) check_file_digest(info, name, digest_file(dir / name));
        }
    });
    return info;
}

// Moves a damaged checkpoint aside (step-N -> step-N.damaged), out of every listing, and says so. Only the
// process that owns the run (holds its lock) does this; readers just skip.
inline std::filesystem::path set_aside_damaged(const std::filesystem::path& dir, const std::string& why) {
    std::filesystem::path to = dir.string() + ".damaged";
    for (int i = 2; std::filesystem::exists(to); ++i) to = dir.string() + ".damaged-" + std::to_string(i);
    std::error_code ec;
    std::filesystem::rename(dir, to, ec);
    std::fprintf(stderr, "warning: checkpoint %s is damaged and will not be used: %s\n  %s\n", dir.string().c_str(),
                 why.c_str(),
                 ec ? ("(could not move it aside: " + ec.message() + ")").c_str()
                    : ("moved aside to " + to.string() + "; delete it once you no longer need it").c_str());
    return ec ? dir : to;
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

// Where a save put its checkpoint and what it recorded (the trainer reuses the files for a second save of
// the same step).
struct saved_checkpoint {
    std::filesystem::path dir;
    std::int64_t step = -1;
    file_digest model, optimizer;
};

namespace detail {

// Leftovers of a writer that was killed or failed (temporary directories, half-retired checkpoints,
// directories swapped out): never checkpoints, safe to remove while the run's lock is held.
inline void remove_leftovers(const std::filesystem::path& dir) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        if (is_temp_name(e.path()) || name.ends_with(".trash") || name.find(".old-") != std::string::npos)
            std::filesystem::remove_all(e.path(), ec);
    }
}

// A hard link of `from` at `to`, or false (another file system, no link support): the caller writes instead.
inline bool link_file(const std::filesystem::path& from, const std::filesystem::path& to) {
    std::error_code ec;
    std::filesystem::create_hard_link(from, to, ec);
    return !ec;
}

}  // namespace detail

// Writes checkpoint `step` under `dir` whole, into a fresh temporary directory, and publishes it with one
// rename (an existing directory of that step — the periodic save right before the final one, a damaged or
// incomplete one — is replaced by an atomic exchange, never written into). `reuse`, when it names the
// checkpoint of this same step that this process wrote, lends its tensor files by hard link instead of
// rewriting them (only state.json differs). Refuses non-finite parameters or moments. Then keeps the newest
// `keep` (>= 1) verified checkpoints: the new one always; older ones only after they verify (damaged ones
// are set aside, never counted). `verified`, when given, holds the checkpoints this process already read
// back or wrote under the run's lock: they are not read again, and the new one is added.
template <class T>
saved_checkpoint save_checkpoint(const std::filesystem::path& dir, std::int64_t step, const param_layout& layout,
                                 const T* params, const T* m, const T* v, const nlohmann::json& state, int keep,
                                 const std::map<std::string, std::string>& metadata = {},
                                 const saved_checkpoint* reuse = nullptr,
                                 std::set<std::filesystem::path>* verified = nullptr) {
    namespace fs = std::filesystem;
    for (const auto& [buffer, what, non_negative] :
         {std::tuple{params, "parameters", false}, std::tuple{m, "first moments", false}, std::tuple{v, "second moments", true}}) {
        const std::string bad = detail::first_bad_tensor(layout, buffer, non_negative);
        CRAM_CHECK(bad.empty(), "refusing to write checkpoint step ", step, ": the ", what, " of tensor '", bad,
                   "' hold non-finite values; the checkpoints already under ", dir.string(), " are untouched");
    }
    fs::create_directories(dir);
    detail::remove_leftovers(dir);
    const fs::path final_dir = dir / checkpoint_dir_name(step);
    auto& hook = checkpoint_write_hook();
    const fs::path tmp = temp_name_for(final_dir);
    saved_checkpoint out{final_dir, step, {}, {}};
    try {
        fs::create_directories(tmp);
        if (hook) hook("begin");
        const bool reusable = reuse && reuse->step == step && reuse->dir == final_dir &&
                              detail::link_file(final_dir / checkpoint_paths::model, tmp / checkpoint_paths::model) &&
                              detail::link_file(final_dir / checkpoint_paths::optimizer, tmp / checkpoint_paths::optimizer);
        if (reusable) {
            out.model = reuse->model;
            out.optimizer = reuse->optimizer;
        } else {
            fs::remove(tmp / checkpoint_paths::model);  // a half-made link pair
            out.model = write_safetensors(tmp / checkpoint_paths::model, layout_entries(layout, params, ""), metadata);
            if (hook) hook("model");
            auto opt_entries = layout_entries(layout, m, "exp_avg.");
            auto v_entries = layout_entries(layout, v, "exp_avg_sq.");
            opt_entries.insert(opt_entries.end(), v_entries.begin(), v_entries.end());
            out.optimizer = write_safetensors(tmp / checkpoint_paths::optimizer, opt_entries, metadata);
        }
        if (hook) hook("optimizer");
        nlohmann::json st = state;
        st["format"] = checkpoint_format_name;
        st["version"] = checkpoint_format_version;
        st["step"] = step;
        st["files"] = {{checkpoint_paths::model, {{"bytes", out.model.bytes}, {"xxh64", out.model.xxh64}}},
                       {checkpoint_paths::optimizer, {{"bytes", out.optimizer.bytes}, {"xxh64", out.optimizer.xxh64}}}};
        st["state_xxh64"] = detail::state_checksum(st);
        synced_file f(tmp / checkpoint_paths::state);
        f.write_all(st.dump(2) + "\n");
        f.sync_and_close();
        fsync_directory(tmp);
        if (hook) hook("state");
    } catch (...) {
        std::error_code ignored;  // a full disk: give the space back now, not at the next save
        fs::remove_all(tmp, ignored);
        throw;
    }
    replace_directory(tmp, final_dir);
    if (hook) hook("renamed");
    if (verified) verified->insert(final_dir);
    // retention: the new checkpoint, then older ones that verify, newest first
    int kept = 1;
    for (const auto& c : list_checkpoints(dir)) {
        if (c == final_dir) continue;
        bool good = false;
        if (kept < std::max(keep, 1)) {
            try {
                if (!verified || !verified->contains(c)) verify_checkpoint(c);
                if (verified) verified->insert(c);
                good = true;
            } catch (const checkpoint_damaged& e) {
                set_aside_damaged(c, e.what());
                continue;
            }
        }
        if (good) {
            ++kept;
            continue;
        }
        // retire: rename first (atomic), so a half-deleted one is never taken for complete
        const fs::path trash = c.parent_path() / (c.filename().string() + ".trash");
        rename_path(c, trash);
        fs::remove_all(trash);
        if (verified) verified->erase(c);
    }
    fsync_directory(dir);
    return out;
}

template <class T>
struct loaded_checkpoint {
    std::filesystem::path dir;
    nlohmann::json state;
    std::vector<T> params, m, v;
};

// Which files a load reads: GLUE needs only the parameters.
enum class checkpoint_part { model, model_and_optimizer };

// Loads one checkpoint directory, verifying state.json, each file's size and checksum, the tensors' names,
// dtypes and shapes, and that every value is finite. Throws checkpoint_damaged naming the file and what is
// wrong; `check_state` (called with the verified state before any tensor is read) may throw other errors,
// e.g. a checkpoint of another configuration, which are not damage.
template <class T>
loaded_checkpoint<T> load_checkpoint(const std::filesystem::path& ckpt, const param_layout& layout,
                                     checkpoint_part part = checkpoint_part::model_and_optimizer,
                                     const std::function<void(const checkpoint_info&)>& check_state = {}) {
    const checkpoint_info info = read_checkpoint_info(ckpt);
    if (check_state) check_state(info);
    loaded_checkpoint<T> out;
    out.dir = ckpt;
    out.state = info.state;
    detail::as_damage([&] {
        const std::filesystem::path model = ckpt / checkpoint_paths::model;
        out.params.resize(layout.buffer_size());
        {
            const safetensors_file f(model);
            check_file_digest(info, checkpoint_paths::model, f.digest());
            read_layout(f, layout, out.params.data(), "");
        }
        const std::string bad = detail::first_bad_tensor(layout, out.params.data());
        CRAM_CHECK(bad.empty(), model.string(), ": tensor '", bad, "' holds NaN or infinite values (the run had "
                   "diverged when it was saved)");
        if (part == checkpoint_part::model) return;
        const std::filesystem::path optimizer = ckpt / checkpoint_paths::optimizer;
        out.m.resize(layout.buffer_size());
        out.v.resize(layout.buffer_size());
        const safetensors_file f(optimizer);
        check_file_digest(info, checkpoint_paths::optimizer, f.digest());
        read_layout(f, layout, out.m.data(), "exp_avg.");
        read_layout(f, layout, out.v.data(), "exp_avg_sq.");
        std::string bad_m = detail::first_bad_tensor(layout, out.m.data());
        if (bad_m.empty()) bad_m = detail::first_bad_tensor(layout, out.v.data(), true);
        CRAM_CHECK(bad_m.empty(), optimizer.string(), ": the moments of tensor '", bad_m,
                   "' hold NaN, infinite or (second moment) negative values");
    });
    return out;
}

// How the newest usable checkpoint is looked for: readers (glue) only skip damaged ones; the run's owner
// (the trainer, holding the run's lock) also sets them aside.
enum class on_damage { skip, set_aside };

// The newest checkpoint under `dir` that loads and verifies; damaged newer ones are reported on stderr and
// skipped (or set aside). Errors from `check_state` propagate at once.
template <class T>
std::optional<loaded_checkpoint<T>> load_latest_checkpoint(
    const std::filesystem::path& dir, const param_layout& layout,
    checkpoint_part part = checkpoint_part::model_and_optimizer, on_damage damaged = on_damage::skip,
    const std::function<void(const checkpoint_info&)>& check_state = {}) {
    for (const auto& c : list_checkpoints(dir)) {
        try {
            return load_checkpoint<T>(c, layout, part, check_state);
        } catch (const checkpoint_damaged& e) {
            if (damaged == on_damage::set_aside) set_aside_damaged(c, e.what());
            else std::fprintf(stderr, "warning: skipping damaged checkpoint %s: %s\n", c.string().c_str(), e.what());
        }
    }
    return std::nullopt;
}

}  // namespace cram::train
