// The subcommands of cram_bert_24h, one function each (defined in its cmd_*.cpp): main.cpp calls them
// in the order --help lists them. An explicit list instead of registration at static initialisation:
// the set of commands and their order are visible in one place, and nothing runs before main.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "cram/core/error.hpp"
#include "cram/eval/glue_protocol.hpp"

namespace cram::app {

// Validators whose messages name the option's allowed values plainly (CLI11's range checks print the
// limits of a double).
inline CLI::Validator non_negative_integer() {
    return CLI::Validator(
        [](std::string& v) -> std::string {
            if (!v.empty() && v.find_first_not_of("0123456789") == std::string::npos) return {};
            return "must be a whole number 0 or above, got '" + v + "'";
        },
        "UINT");
}
inline CLI::Validator thread_count(int max_threads) {
    return CLI::Validator(
        [max_threads](std::string& v) -> std::string {
            if (!v.empty() && v.size() < 10 && v.find_first_not_of("0123456789") == std::string::npos &&
                std::stoi(v) <= max_threads)
                return {};
            return v + " is out of range: 0 (all cores) up to " + std::to_string(max_threads) +
                   " (4x this machine's hardware threads)";
        },
        "0.." + std::to_string(max_threads));
}

// A GLUE protocol name (cram/eval/glue_protocol.hpp); an unknown one is the library's message listing the names.
inline CLI::Validator glue_protocol_name() {
    return CLI::Validator(
        [](std::string& v) -> std::string {
            try {
                (void)cram::eval::find_glue_protocol(v);
                return {};
            } catch (const cram::error& e) {
                return e.what();
            }
        },
        "PROTOCOL");
}

void add_prepare_command(CLI::App& app);   // cmd_prepare.cpp
void add_tokenize_command(CLI::App& app);  // cmd_tokenize.cpp
void add_train_command(CLI::App& app);     // cmd_train.cpp
void add_plan_command(CLI::App& app);      // cmd_plan.cpp
void add_glue_command(CLI::App& app);      // cmd_glue.cpp
void add_run_command(CLI::App& app);       // cmd_run.cpp
void add_device_command(CLI::App& app);    // cmd_device.cpp
void add_export_command(CLI::App& app);    // cmd_interop.cpp
void add_import_command(CLI::App& app);    // cmd_interop.cpp
void add_compare_command(CLI::App& app);   // cmd_compare.cpp

}  // namespace cram::app
