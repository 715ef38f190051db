// The GLUE hook of `cram_bert_24h run`: the GLUE command's file sets it (when it is part of the build),
// so `run` can finish with a GLUE report without depending on the evaluation code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

namespace cram::app {

// The GLUE step of `run`: set by the GLUE command's file when it is part of the build (it gets the run
// directory with its final checkpoint, the dataset directory with vocab.txt, and the GLUE data directory).
struct glue_request {
    std::filesystem::path run_dir, checkpoint, data_dir, glue_dir, out;
    std::string preset, device;
    std::uint64_t seed = 0;
    // protocol knobs passed through from `run` (0 / empty: the GLUE command's defaults)
    std::string tasks;
    int seeds = 0, epochs = 0;
    std::size_t max_train = 0;
};
inline std::function<int(const glue_request&)>& run_glue_hook() {
    static std::function<int(const glue_request&)> hook;
    return hook;
}

}  // namespace cram::app
