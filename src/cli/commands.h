// Each `sft` subcommand lives in its own cmd_<name>.cpp and registers itself on the app here.
// Only cli/ parses flags and prints to the terminal; the layers below return values or throw sft::Error.
#pragma once
#include <CLI/CLI.hpp>

namespace sft::cli {

void register_info(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_train(CLI::App& app);
void register_eval(CLI::App& app);
void register_generate(CLI::App& app);  // also registers `chat`
void register_merge(CLI::App& app);
void register_export(CLI::App& app);

}  // namespace sft::cli
