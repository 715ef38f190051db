// Which checkpoint a path names, for the readers of a finished training run (GLUE evaluation, the comparison
// of runs): a checkpoint directory as given, or the newest checkpoint of a run directory whose state.json
// verifies. Only state.json is read here; loading the tensors is the caller's business.
#pragma once

#include <cstdio>
#include <filesystem>

#include "cram/core/error.hpp"
#include "cram/train/checkpoint.hpp"

namespace cram::eval {

// The checkpoint a path names, its state.json checked (checkpoint.hpp): a checkpoint directory as given,
// or the newest checkpoint of a trainer run directory (RUN/checkpoints/step-*) whose state verifies (a
// damaged newer one is skipped with a warning; a reader never moves a run's files).
inline train::checkpoint_info find_checkpoint(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    if (fs::exists(path / train::checkpoint_paths::state)) return train::read_checkpoint_info(path);
    const auto list = train::list_checkpoints(path / "checkpoints");
    CRAM_CHECK(!list.empty(), "checkpoint ", path.string(), ": neither a checkpoint directory (with ",
               train::checkpoint_paths::state, ") nor a run directory with complete checkpoints under ",
               (path / "checkpoints").string());
    for (const auto& c : list) {
        try {
            return train::read_checkpoint_info(c);
        } catch (const train::checkpoint_damaged& e) {
            std::fprintf(stderr, "warning: skipping damaged checkpoint %s: %s\n", c.string().c_str(), e.what());
        }
    }
    CRAM_THROW("none of the ", list.size(), " checkpoints under ", (path / "checkpoints").string(),
               " is usable (see the warnings above)");
}

}  // namespace cram::eval
