// The prepare step shared by `prepare` and `run`: cram::data::prepare_dataset with the app's progress
// lines. Defined once in cmd_prepare.cpp, so the pipeline is compiled in one translation unit and
// `run` only parses its option types.
#pragma once

#include "cram/data/prepare.hpp"

namespace cram::app {

// Runs the pipeline, printing a progress line on stderr at most every 2 s per phase unless `quiet`.
data::prepare_summary prepare_with_progress(const data::prepare_options& options, bool quiet);

}  // namespace cram::app
