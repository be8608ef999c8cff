// Each `sft` subcommand lives in its own cmd_<name>.cpp and registers itself on the app here.
// Only cli/ parses flags and prints to the terminal; the layers below return values or throw sft::Error.
#pragma once
#include <filesystem>

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

namespace sft::train {
struct TrainConfig;
}

namespace sft::cli {

// `sft train --save_gguf TYPE` (cmd_export.cpp): checked before training; after the final save the output folder
// (or the base model with the LoRA adapter merged) is exported as <output_dir>/<name>-<type>.gguf.
void check_save_gguf(const train::TrainConfig& cfg);
void save_gguf_after_training(const train::TrainConfig& cfg, const std::filesystem::path& base_model,
                              const std::filesystem::path& output_dir);

}  // namespace sft::cli
