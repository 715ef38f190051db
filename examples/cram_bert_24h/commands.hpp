// The subcommands of cram_bert_24h, one function each (defined in its cmd_*.cpp): main.cpp calls them
// in the order --help lists them. An explicit list instead of registration at static initialisation:
// the set of commands and their order are visible in one place, and nothing runs before main.
#pragma once

#include <CLI/CLI.hpp>

namespace cram::app {

void add_prepare_command(CLI::App& app);   // cmd_prepare.cpp
void add_tokenize_command(CLI::App& app);  // cmd_tokenize.cpp
void add_train_command(CLI::App& app);     // cmd_train.cpp
void add_glue_command(CLI::App& app);      // cmd_glue.cpp
void add_run_command(CLI::App& app);       // cmd_run.cpp
void add_device_command(CLI::App& app);    // cmd_device.cpp

}  // namespace cram::app
