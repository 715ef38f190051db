// Subcommand registry of cram_bert_24h: each cmd_*.cpp registers its CLI11 subcommand at static
// initialisation, so adding a command touches no other file.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace cram::app {

// Called with the top-level app; adds a subcommand and its callback.
using command_installer = std::function<void(CLI::App&)>;

inline std::vector<std::pair<int, command_installer>>& command_registry() {
    static std::vector<std::pair<int, command_installer>> registry;
    return registry;
}

// `order` fixes where the command appears in --help (prepare=10, tokenize=20, train=30, glue=40, run=50).
inline bool register_command(int order, command_installer installer) {
    command_registry().emplace_back(order, std::move(installer));
    return true;
}

}  // namespace cram::app
