// The training loop: optimizer steps over micro-batches from the data layer, with HF Trainer's step counting,
// schedule, clipping, logging, evaluation, checkpoints and exact resume.
//
// Step counting (exactly transformers 5.x Trainer, documented in docs/arch/train.md):
//   updates_per_epoch = max(1, ceil(batches_per_epoch / gradient_accumulation_steps))
//   total_steps       = max_steps > 0 ? max_steps : ceil(num_train_epochs * updates_per_epoch)
// The micro-batches of an optimizer step are the next `gas` of the epoch; the last step of an epoch takes the
// remainder (fewer than gas micro-batches, its loss still normalised by its own target count) like HF's
// get_batch_samples; a step never spans two epochs. Training stops at total_steps (mid-epoch for fractional epochs
// or --max_steps).
// Loss of a step: sum of token cross-entropies of all its micro-batches / all their target tokens (the targets are
// counted before the first forward and passed as loss_scale = 1/N).
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "train/checkpoint.h"
#include "train/checkpoint_writer.h"
#include "train/data_parallel.h"
#include "train/early_stopping.h"
#include "train/lr_schedule.h"
#include "train/row_balance.h"
#include "train/tensorboard.h"
#include "train/train_config.h"
#include "train/train_log.h"

namespace sft::model {
class Model;
}
namespace sft::data {
class DataLoader;
struct Batch;
}
namespace sft::io {
struct ModelConfig;
}
namespace sft::parallel {
class Communicator;
}

namespace sft::train {

struct TrainPlan {
  int64_t total_steps = 0, warmup_steps = 0, start_step = 0;
  int64_t batches_per_epoch = 0, updates_per_epoch = 0;
  int64_t eval_batches = 0;
  int64_t num_parameters = 0;      // trainable (what the optimizer updates)
  int64_t all_parameters = 0;      // peft's print_trainable_parameters "all params" (= num_parameters without LoRA)
  bool lora = false;
};

struct TrainSummary {
  int64_t steps = 0;
  double seconds = 0;
  double final_loss = 0;  // loss of the last logging window (or last step when no row was logged)
  std::filesystem::path output_dir;
  std::string best_model_checkpoint;
  int world_size = 1;
  double comm_seconds = 0;  // time inside collectives (data parallel), this rank
  // Of comm_seconds: the gradient exchange (reduction, clipping norm, ZeRO-1 all-gather), this rank; and the most any
  // rank spent at the first collective after its backward, i.e. waiting for the slowest rank (load imbalance).
  double exchange_seconds = 0, max_wait_seconds = 0;
  double steps_seconds = 0;  // the training loop alone (seconds also counts the final save)
  // Positions the model computed (B x T of every micro-batch, all ranks) and the real tokens among them.
  int64_t padded_positions = 0, tokens = 0;
};

// Everything printed is the cli's business: the trainer reports through this interface.
// What a progress display needs after each optimizer step.
struct StepProgress {
  int64_t step = 0, total = 0, start_step = 0;  // start_step: where this run began (resume)
  double epoch = 0, loss = 0, elapsed_s = 0;     // loss: the step's mean token loss; elapsed since this run began
  int64_t tokens = 0;                            // non-padding input tokens trained on since this run began
};

class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  virtual void on_begin(const TrainPlan&) {}
  // After every optimizer step: step (1-based), the step's mean token loss, seconds since the start of this run.
  virtual void on_step(int64_t step, int64_t total, double step_loss, double elapsed_s) {}
  virtual void on_progress(const StepProgress&) {}  // right after on_step
  virtual void on_log(const LogRow&) {}
  virtual void on_eval(const LogRow&) {}
  virtual void on_checkpoint(const std::filesystem::path&) {}
  virtual void on_note(const std::string&) {}
};

// What the loop trains: the parts train::Job assembles (job.h), or a test or benchmark builds by hand.
struct TrainerInputs {
  TrainConfig cfg;
  model::Model* model = nullptr;        // loaded from the base folder, or from resume_dir when resuming
  // Position 0 (the trainer seeks it when resuming). Data parallel: it hands out GLOBAL micro-batches of
  // per_device_train_batch_size x world rows (the same order on every rank, a function of the seed only) and each
  // rank trains on its slice (train/data_parallel.h), so N ranks x batch b follow 1 rank x batch N*b.
  data::DataLoader* train = nullptr;
  data::DataLoader* eval = nullptr;     // nullptr: no evaluation data
  std::filesystem::path base_model_dir; // tokenizer / generation_config copied from here
  std::filesystem::path resume_dir;     // empty: fresh start
  // nullptr: one process. Otherwise every rank runs the same trainer; rank 0 alone writes files and reports to the
  // observer's logging calls (other ranks still get on_begin/on_step).
  parallel::Communicator* comm = nullptr;
};

// The training loop in the pieces a reader follows:
//   run():  setup()                      plan, optimizer (data parallel), resume or a fresh log, on_begin
//           while steps are left:
//             run_step()                 this rank's micro-batches, forward/backward, gradient exchange, clip, update
//             maybe_log / maybe_evaluate / maybe_save      (HF IntervalStrategy: steps | epoch | no)
//           finish()                     final model (or the best checkpoint's), loss curve, summary
class Trainer {
 public:
  Trainer(const TrainerInputs& in, TrainObserver& obs);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;
  TrainSummary run();

 private:
  struct Step;  // one optimizer step's sums
  void setup();
  void plan_steps();
  void resume();
  void choose_batch_layout();
  int64_t largest_micro_batch() const;
  Step run_step();
  std::vector<data::Batch> this_ranks_batches(int64_t k, int64_t step_targets, bool regroup);
  void forward_backward(const std::vector<data::Batch>& mine, const std::vector<int64_t>& targets, bool regroup,
                        Step& s);
  void exchange_and_update(Step& s);
  void record(const Step& s);
  void maybe_log(const Step& s);
  void maybe_evaluate(const Step& s);
  void maybe_save(const Step& s);
  void open_tensorboard();
  void write_log_row(const LogRow& row);  // trainer_log.jsonl and TensorBoard (rank 0)
  void track_best_and_maybe_stop(double metric);
  void save_checkpoint();
  SaveParts save_parts(std::function<void(const std::filesystem::path&)> model_files, bool with_optimizer);
  std::function<void(const std::filesystem::path&)> final_model_files(const std::string& dtype);
  TrainSummary finish();
  double lr_at(int64_t step) const;
  double seconds_since(std::chrono::steady_clock::time_point t) const;

  const TrainerInputs in_;
  const TrainConfig& cfg_;
  TrainObserver& obs_;
  model::Model& m_;
  data::DataLoader& loader_;
  std::unique_ptr<parallel::Communicator> own_comm_;  // one process without a communicator given
  parallel::Communicator& comm_;
  const int world_, rank_;
  const bool root_;  // rank 0: writes files
  const std::filesystem::path out_, log_file_;
  const CheckpointWriter writer_;

  TrainPlan plan_;
  SchedulerType sched_ = SchedulerType::Linear;
  int64_t eval_steps_ = 0;
  bool do_eval_ = false, greater_is_better_ = false;
  bool track_best_ = false;               // a metric_for_best_model (HF: set, or implied by load_best_model_at_end)
  std::optional<EarlyStopping> early_;    // --early_stopping_patience > 0
  bool stop_early_ = false;
  TensorBoardWriter tb_;                  // --report_to tensorboard, rank 0
  std::unique_ptr<DataParallelAdamW> opt_;
  TrainerState st_;
  std::ofstream dump_;                                   // --debug_dump_batches
  RowCost row_cost_;
  bool padding_free_ = false;  // --padding_free True on a backend that supports it (choose_batch_layout)

  std::chrono::steady_clock::time_point t_start_, t_window_;
  double comm_at_start_ = 0;
  double last_step_loss_ = 0, last_logged_ = 0;  // NaN until a step is applied / logged (all may be skipped)
  int64_t run_tokens_ = 0, padded_positions_ = 0;  // this run; padded = B x T of every micro-batch of this rank
  double wait_seconds_ = 0, exchange_seconds_ = 0;  // data parallel: see TrainSummary
};

// Checks output_dir like HF: a non-empty folder is refused unless overwrite_output_dir or resuming; with
// overwrite_output_dir, stale checkpoint-N folders and trainer_log.jsonl are removed. Creates the folder.
void prepare_output_dir(const TrainConfig& cfg, bool resuming);

// NEFTune's L for a micro-batch (docs/arch/train.md, "NEFTune"). Padded batches: T, the sequence dimension
// transformers' hook sees (output.size(1)). padding_free (the micro-batch's samples laid end to end in one row): the
// longest document, i.e. the T these samples have when padded, so that every token gets the noise scale of the padded
// run (the hook's literal value, the concatenation's length, would shrink the noise by sqrt(number of samples); to
// follow it instead, return b.T in both cases).
int64_t neftune_sequence_length(const data::Batch& b, bool padding_free);

// Trainer(in, obs).run().
TrainSummary run_training(const TrainerInputs& in, TrainObserver& obs);

// Model FLOPs of one training micro-batch, the convention of bench/train_step (and PaLM's MFU): 6 per parameter per
// real token (forward 2 + backward 4) plus attention, 6 * layers * heads * head_dim per (query, key) pair counted over
// the full square of each document (a document = a run of one doc id in a row; padding has doc id -1). The trainer
// logs it per second as model_flops_per_second ("Model GFLOP/s" in the table).
double batch_model_flops(const data::Batch& b, int64_t n_params, const io::ModelConfig& c);

}  // namespace sft::train
