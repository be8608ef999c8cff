// `sft train` below the CLI: from a validated TrainConfig to a trained output folder. The CLI parses flags, calls
// Job::open and Job::run, and prints what the observer reports; every decision is made here or further down.
//
// open(), in order (each step may stop with a one-line error; nothing is written before the LoRA settings are known
// to fit the model):
//   notes on settings that change nothing      (--lora_* without --use_peft, --load_best_model_at_end without eval)
//   threads per rank                            (--threads, else the machine's cores shared by its ranks)
//   resume resolution and checks                (--resume_from_checkpoint DIR | last; it must belong to the base:
//                                                train/continue_check.h)
//   LoRA checks                                 (the adapter or the new adapter's target modules against config.json;
//                                                notes on --lora_* flags an adapter's own config overrides, alpha 0)
//   output folder                               (rank 0: HF's overwrite rules; the others wait)
//   TensorBoard folder                          (rank 0, --report_to tensorboard: --logging_dir or the default)
//   device: backend + communicator              (backend::make_backend, parallel::make_device_communicator)
//   tokenizer, template                         (data::resolve_template: --template model | auto | built-in)
//   dataset preparation and its reports         (train/data_options.h maps the settings onto the data layer)
//   loaders                                     (global micro-batches: per-device batch x ranks rows)
//   model                                       (base folder, full checkpoint, or base + adapter / LoRA checkpoint;
//                                                every loaded tensor checked for NaN/inf: train/finite_guard.h)
// run() trains it (train/trainer.h) and returns the summary the CLI prints.
#pragma once
#include <filesystem>
#include <memory>

#include "train/train_config.h"
#include "train/trainer.h"

namespace sft::backend {
class Backend;
}
namespace sft::tok {
class Tokenizer;
}

namespace sft::train {

class Job {
 public:
  // comm: the launcher's communicator (world 1, or MPI ranks). open() replaces it with the one training on the device
  // uses (NCCL over it for CUDA ranks); the caller keeps it, to abort every rank when open() or run() throws on one.
  // Everything worth saying goes to obs.on_note.
  static std::unique_ptr<Job> open(const TrainConfig& cfg, std::unique_ptr<parallel::Communicator>& comm,
                                   TrainObserver& obs);
  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  TrainSummary run(TrainObserver& obs);
  const model::Model& model() const { return *model_; }

 private:
  Job(const TrainConfig& cfg, parallel::Communicator& comm);
  void note_ignored_settings(TrainObserver& obs) const;
  void set_threads() const;
  void resolve_resume(TrainObserver& obs);
  void check_lora(TrainObserver& obs) const;
  void check_logging_dir() const;
  void make_logging_dir_now();
  // LoRA on the CPU: prints the memory plan of the run and refuses it, before anything is allocated or written,
  // when the plan exceeds the memory the machine has left (MemAvailable / cgroup limit).
  void check_memory(TrainObserver& obs) const;
  void check_save_gguf() const;
  void save_gguf(const std::filesystem::path& output_dir, TrainObserver& obs) const;
  void open_device(std::unique_ptr<parallel::Communicator>& comm);
  void prepare_data(TrainObserver& obs);
  void load_model(TrainObserver& obs);

  TrainConfig cfg_;
  parallel::Communicator* comm_;        // owned by the caller (see open)
  std::filesystem::path base_;          // --model_name_or_path
  std::filesystem::path resume_dir_;    // empty: fresh start
  std::unique_ptr<backend::Backend> be_;
  std::unique_ptr<tok::Tokenizer> tokenizer_;
  std::unique_ptr<data::DataLoader> train_, eval_;
  std::unique_ptr<model::Model> model_;  // declared after be_: destroyed before the backend it lives on
};

}  // namespace sft::train
