// Checkpoint folders (output_dir/checkpoint-N/) and trainer_state.json.
//
// A checkpoint holds: an HF model folder (config.json, model.safetensors in fp32 — the exact masters, so resuming is
// bit-identical — tokenizer files and generation_config.json copied from the base model folder), optimizer.safetensors
// (AdamW m and v, step count), trainer_state.json (HF keys + an "sft_resume" object with the data-loader position and
// the open logging window) and training_args.json. It is written into output_dir/.tmp-checkpoint-N and renamed, so a
// checkpoint-N folder is always complete.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "train/train_log.h"

namespace sft::train {

struct TrainerState {
  int64_t global_step = 0;
  double epoch = 0;
  int64_t max_steps = 0;
  int64_t logging_steps = 0, save_steps = 0, eval_steps = 0;
  int64_t train_batch_size = 0;
  double num_train_epochs = 0;
  std::vector<LogRow> log_history;
  std::optional<double> best_metric;
  std::optional<int64_t> best_global_step;  // the step of best_metric (transformers 5), when checkpoints are saved
  std::string best_model_checkpoint;  // "" = none
  // stateful_callbacks.EarlyStoppingCallback (HF's ExportableState): its args and patience counter, when enabled.
  struct EarlyStoppingState {
    int64_t patience = 0;
    double threshold = 0;
    int64_t counter = 0;
  };
  std::optional<EarlyStoppingState> early_stopping;
  // sft_resume: exact place to continue.
  int64_t loader_epoch = 0, loader_index = 0;
  LogWindow window;
  uint64_t seed = 0;
  // Rows of a global micro-batch (per-device batch x ranks): loader_index counts these; 0 = not recorded.
  int64_t rows_per_micro_batch = 0;
  std::string logging_dir;  // --report_to tensorboard: the run's events folder (a resumed run keeps writing there)
};

std::string trainer_state_to_json(const TrainerState& s);
TrainerState trainer_state_from_json(const std::string& text, const std::string& path_for_errors);

// Files of a model folder that are not weights: copied from the base model into checkpoints and the final output
// (those present; tokenizer.json is required).
void copy_model_side_files(const std::filesystem::path& base_dir, const std::filesystem::path& dst_dir);

// checkpoint-N folders of output_dir, sorted by N ascending.
std::vector<std::pair<int64_t, std::filesystem::path>> list_checkpoints(const std::filesystem::path& output_dir);
// The newest checkpoint-N folder; throws sft::Error when there is none.
std::filesystem::path last_checkpoint(const std::filesystem::path& output_dir);
// Deletes the oldest checkpoints until at most `limit` remain, never deleting `keep` (the best checkpoint); limit<=0
// keeps all. Returns the deleted folders.
std::vector<std::filesystem::path> rotate_checkpoints(const std::filesystem::path& output_dir, int64_t limit,
                                                      const std::filesystem::path& keep);

// Deletes a folder by renaming it to .deleting-<name> first, then removing that: never a half-deleted folder under
// its real name.
void remove_dir_safely(const std::filesystem::path& dir);
// Removes the .tmp-* (checkpoint or final model being written) and .deleting-* folders a killed or failed run left in
// output_dir. Returns what was removed.
std::vector<std::filesystem::path> remove_stale_temporaries(const std::filesystem::path& output_dir);

// --overwrite_output_dir: removes what an earlier run wrote into output_dir (checkpoints, the final model folder's
// files, the log); other files are left alone.
void remove_previous_outputs(const std::filesystem::path& output_dir);

// Moves every regular file of src_dir into dst_dir (rename, replacing) and removes src_dir. Both must be on the same
// filesystem (src is always a temp folder inside dst).
void move_files_into(const std::filesystem::path& src_dir, const std::filesystem::path& dst_dir);

}  // namespace sft::train
