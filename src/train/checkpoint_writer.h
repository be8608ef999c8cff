// The one writer of training output folders, used by both saves of the trainer: checkpoint-N (model + optimizer +
// state, for resuming) and the final model in output_dir. What goes in is a SaveParts (model files, optional
// optimizer state, side files from the base model, small text files); how it is written is fixed here: a temp
// folder inside output_dir, every file fsynced, the folder fsynced, then renamed into place, so a reader never sees
// a half-written checkpoint or final model.
//
// One-place changes this is designed for: a LoRA run passes SaveParts whose `model` writes the adapter files and
// whose `optimizer` writes the adapter's optimizer state only; a data-parallel run constructs the writer with
// writes = (rank == 0) so the other ranks skip every save.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace sft::train {

struct SaveParts {
  std::function<void(const std::filesystem::path& dir)> model;      // weights + config.json (required)
  std::function<void(const std::filesystem::path& dir)> optimizer;  // optimizer state (checkpoints); empty = none
  std::filesystem::path base_model_dir;  // tokenizer / chat template / generation files copied from here
  std::vector<std::pair<std::string, std::string>> files;  // name -> text (trainer_state.json, training_args.json, ...)
};

class CheckpointWriter {
 public:
  explicit CheckpointWriter(bool writes = true) : writes_(writes) {}
  bool writes() const { return writes_; }

  // output_dir/<name> (e.g. checkpoint-500), replacing an older folder of that name. Returns the folder.
  std::filesystem::path write_folder(const std::filesystem::path& output_dir, const std::string& name,
                                     const SaveParts& parts) const;
  // The final model: every file renamed into output_dir itself (which keeps its checkpoints and log).
  void write_into(const std::filesystem::path& output_dir, const SaveParts& parts) const;

 private:
  void fill(const std::filesystem::path& tmp, const SaveParts& parts) const;
  bool writes_;
};

}  // namespace sft::train
