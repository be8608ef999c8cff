// `sft train` flags: Hugging Face TrainingArguments names (--flag value or --flag=value), bool flags accepting
// True/False/true/false/1/0 or bare, a --config JSON file with the same keys (command-line flags override it),
// flags that mean nothing here accepted with a note, unknown flags rejected with a did-you-mean suggestion.
#pragma once
#include <string>
#include <vector>

#include "train/train_config.h"

namespace sft::cli {

struct ParsedTrainArgs {
  train::TrainConfig cfg;
  std::vector<std::string> notes;  // one line per accepted-but-ignored flag (printed once by cmd_train)
  bool help = false;
};

// args: everything after `sft train`. Throws sft::Error on an unknown flag, a missing or malformed value.
ParsedTrainArgs parse_train_args(const std::vector<std::string>& args);
std::string train_flags_help();
// Every flag of the table (aliases included), for tests that check the table against TrainConfig::to_json.
std::vector<std::string> train_flag_names();

// Levenshtein distance (did-you-mean suggestions).
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace sft::cli
