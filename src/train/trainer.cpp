#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "data/batching.h"
#include "parallel/communicator.h"
#include "model/family.h"
#include "model/model.h"
#include "model/neftune.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/checkpoint_writer.h"
#include "train/lr_schedule.h"
#include "train/row_balance.h"
#include "train/finite_guard.h"
#include "io/safetensors.h"
#include "model/weight_check.h"
#include "util/error.h"
#include "util/file_util.h"
#include "util/input_file.h"

namespace sft::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// The LoRA dropout masks follow each token's origin (sample, offset): the same masks whatever batch layout
// (padded, padding-free, regrouped, dealt to another rank) the token is trained in.
model::Batch to_model_batch(const data::Batch& b) {
  model::Batch m;
  m.B = b.B;
  m.T = b.T;
  m.input_ids = b.input_ids;
  m.position_ids = b.position_ids;
  m.doc_ids = b.doc_ids;
  m.labels = b.labels;
  m.dropout_keys = b.origins;
  return m;
}

using data::count_real_tokens;

std::string batch_dump_json(int64_t step, int64_t epoch, int64_t micro, int64_t step_targets, const data::Batch& b) {
  nlohmann::json j;
  j["step"] = step;
  j["epoch"] = epoch;
  j["micro"] = micro;
  j["step_targets"] = step_targets;
  j["B"] = b.B;
  j["T"] = b.T;
  j["input_ids"] = b.input_ids;
  j["position_ids"] = b.position_ids;
  j["doc_ids"] = b.doc_ids;
  j["labels"] = b.labels;
  j["sample_indices"] = b.sample_indices;
  return j.dump();
}

// Mean token loss of the evaluation set: sum of target losses / number of targets (token-weighted).
// Data parallel: rank r scores batches r, r + world, ...; the sums are all-reduced. Padding-free: each batch as one
// row of its samples (the same sums).
double evaluate(model::Model& m, data::DataLoader& ev, parallel::Communicator& comm, bool padding_free) {
  ev.seek({0, 0});
  double sum = 0;
  int64_t n = 0;
  const int64_t nb = ev.batches_per_epoch();
  for (int64_t i = 0; i < nb; ++i) {
    const data::Batch b = ev.next();
    if (i % comm.world_size() != comm.rank()) continue;
    auto ls = m.forward_loss(to_model_batch(padding_free ? data::remove_padding(b) : b));
    sum += ls.sum;
    n += ls.n_targets;
  }
  comm.all_reduce_sum(&sum, 1);
  comm.all_reduce_sum(&n, 1);
  SFT_CHECK(n > 0, "evaluation data has no target tokens");
  return sum / static_cast<double>(n);
}

// ---- LoRA hooks: with an adapter attached, checkpoints and the output hold peft's adapter files, not the model ----
bool is_lora(model::Model& m) { return m.lora_config() != nullptr; }

// The weights part of a checkpoint or of the final output (`what` names it in errors): never NaN/inf (finite_guard.h).
void save_trained_weights(model::Model& m, const TrainConfig& cfg, const fs::path& dir, const std::string& dtype,
                          const std::string& what) {
  if (!cfg.allow_nonfinite_weights) check_parameters_before_save(m, what, !is_lora(m) && dtype == "bfloat16");
  if (is_lora(m)) m.save_adapter(dir, cfg.model_name_or_path);  // adapter in fp32 (exact: resume is bit-identical)
  else m.save(dir, dtype);
}

// LoRA dropout masks of optimizer step `step` (1-based; micro = 0, the per-token keys tell tokens apart): a pure
// function of the seed and the step, so a resumed run draws the same masks.
uint64_t dropout_seed(uint64_t seed, int64_t step, int64_t micro) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(step) * 0xBF58476D1CE4E5B9ull +
               static_cast<uint64_t>(micro) * 0x94D049BB133111EBull;
  return z ^ (z >> 29);
}

// NEFTune noise of the same micro-batch: the same position function on a seed of its own (never the dropout stream).
uint64_t neftune_seed(uint64_t seed, int64_t step, int64_t micro) {
  return dropout_seed(seed ^ 0x4E454654756E6521ull, step, micro);  // "NEFTune!"
}

}  // namespace

int64_t neftune_sequence_length(const data::Batch& b, bool padding_free) {
  if (!padding_free) return b.T;
  int64_t longest = 0;
  for (int64_t r = 0; r < b.B; ++r) {
    int64_t run = 0;
    for (int64_t i = 0; i < b.T; ++i) {
      const int32_t d = b.doc_ids[static_cast<size_t>(r * b.T + i)];
      run = d < 0 ? 0 : (i > 0 && b.doc_ids[static_cast<size_t>(r * b.T + i - 1)] == d) ? run + 1 : 1;
      longest = std::max(longest, run);
    }
  }
  return std::max<int64_t>(longest, 1);
}

double batch_model_flops(const data::Batch& b, int64_t n_params, const io::ModelConfig& c) {
  const double head_dim = c.head_dim > 0 ? static_cast<double>(c.head_dim)
                                         : static_cast<double>(c.hidden_size) / static_cast<double>(c.num_attention_heads);
  double pairs = 0, real = 0;
  for (int64_t r = 0; r < b.B; ++r) {
    int64_t run = 0;
    for (int64_t i = 0; i < b.T; ++i) {
      const int32_t d = b.doc_ids[r * b.T + i];
      if (d < 0) continue;
      real += 1;
      run = (i > 0 && b.doc_ids[r * b.T + i - 1] == d) ? run + 1 : 1;
      pairs += static_cast<double>(2 * run - 1);  // run^2 grows by 2*run - 1 per token
    }
  }
  return 6.0 * static_cast<double>(n_params) * static_cast<double>(real) +
         6.0 * static_cast<double>(c.num_hidden_layers * c.num_attention_heads) * head_dim * pairs;
}

void prepare_output_dir(const TrainConfig& cfg, bool resuming) {
  const fs::path out = cfg.output_dir;
  std::error_code ec;
  if (fs::exists(out, ec)) {
    SFT_CHECK(fs::is_directory(out), "--output_dir ", out.string(), " exists and is not a folder");
    remove_stale_temporaries(out);  // .tmp-* / .deleting-* of a killed or failed run
    const bool empty = fs::directory_iterator(out) == fs::directory_iterator();
    if (!empty && !resuming) {
      SFT_CHECK(cfg.overwrite_output_dir, "--output_dir ", out.string(),
                " is not empty: pass --overwrite_output_dir True to train into it, or --resume_from_checkpoint last");
      // The previous run's model goes too: a failed final save must not leave it beside this run's log. Never the
      // base model's own folder, which is still to be read.
      SFT_CHECK(!fs::equivalent(out, cfg.model_name_or_path, ec), "--output_dir ", out.string(),
                " is the base model folder (--model_name_or_path): --overwrite_output_dir would delete the model being "
                "fine-tuned; choose another output folder");
      remove_previous_outputs(out);
    }
  }
  fs::create_directories(out, ec);
  SFT_CHECK(!ec && fs::is_directory(out), "--output_dir ", out.string(), ": cannot create the folder (", ec.message(), ")");
  // Fail now, not after hours of training, when the folder cannot be written.
  try {
    write_file_atomic(out / ".sft-write-test", "");
    fs::remove(out / ".sft-write-test");
  } catch (const Error& e) {
    throw Error("--output_dir " + out.string() + ": not writable (" + e.what() + ")");
  }
}

// One optimizer step, as the loop records it.
struct Trainer::Step {
  int64_t targets = 0;     // target tokens of the whole step (all ranks)
  double loss_sum = 0;     // their summed cross-entropy (all ranks, after the exchange)
  int64_t tokens = 0;      // non-padding input tokens (all ranks)
  double flops = 0;        // model FLOPs (all ranks)
  double grad_norm = 0;    // before clipping
  bool applied = false;    // finite loss and norm: the update was applied
  bool epoch_end = false;  // the loader wrapped to the next epoch
};

namespace {
const TrainerInputs& required_parts(const TrainerInputs& in) {
  SFT_CHECK(in.model && in.train, "train::Trainer: a model and training data are required");
  return in;
}
}  // namespace

Trainer::Trainer(const TrainerInputs& in, TrainObserver& obs)
    : in_(required_parts(in)),
      cfg_(in_.cfg),
      obs_(obs),
      m_(*in_.model),
      loader_(*in_.train),
      own_comm_(in.comm ? nullptr : parallel::make_single_process_communicator()),
      comm_(in.comm ? *in.comm : *own_comm_),
      world_(comm_.world_size()),
      rank_(comm_.rank()),
      root_(rank_ == 0),
      out_(cfg_.output_dir),
      log_file_(out_ / "trainer_log.jsonl"),
      writer_(root_) {}  // data parallel: rank 0 alone writes

Trainer::~Trainer() = default;

TrainSummary run_training(const TrainerInputs& in, TrainObserver& obs) { return Trainer(in, obs).run(); }

TrainSummary Trainer::run() {
  setup();
  while (st_.global_step < plan_.total_steps && !stop_early_) {
    const Step s = run_step();
    maybe_log(s);
    maybe_evaluate(s);
    maybe_save(s);
  }
  return finish();
}

double Trainer::lr_at(int64_t step) const {
  return cfg_.learning_rate * lr_multiplier(sched_, step, plan_.warmup_steps, plan_.total_steps);
}

double Trainer::seconds_since(Clock::time_point t) const {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// ---- setup ----

void Trainer::plan_steps() {
  plan_.batches_per_epoch = loader_.batches_per_epoch();
  SFT_CHECK(plan_.batches_per_epoch > 0, "the training data gives no micro-batch (too few rows for ",
            cfg_.per_device_train_batch_size, " per batch with --data_loader_drop_last?)");
  const int64_t gas = cfg_.gradient_accumulation_steps;
  plan_.updates_per_epoch = std::max<int64_t>(1, (plan_.batches_per_epoch + gas - 1) / gas);
  plan_.total_steps = cfg_.total_steps(plan_.updates_per_epoch);
  sched_ = parse_scheduler_type(cfg_.lr_scheduler_type);
  plan_.warmup_steps = resolve_warmup_steps(cfg_.warmup_steps, cfg_.warmup_ratio, plan_.total_steps);
  plan_.eval_batches = in_.eval ? in_.eval->batches_per_epoch() : 0;
  for (const auto& p : m_.parameters()) plan_.num_parameters += p.numel;
  plan_.lora = is_lora(m_);
  plan_.all_parameters = plan_.lora ? m_.num_all_parameters() : plan_.num_parameters;
}

void Trainer::setup() {
  plan_steps();
  // Data parallel (train/data_parallel.h): rank 0 alone writes files; every rank runs the same steps.
  comm_.set_timeout(cfg_.ddp_timeout);
  DataParallelOptions dpo;
  dpo.zero_stage = static_cast<int>(cfg_.zero_stage);
  dpo.bucket_floats = std::max<int64_t>(1, static_cast<int64_t>(cfg_.ddp_bucket_cap_mb * (1 << 20) / sizeof(float)));
  dpo.allow_nonfinite = cfg_.allow_nonfinite_weights;
  opt_ = std::make_unique<DataParallelAdamW>(
      comm_, m_.backend(), m_.parameters(),
      AdamWHyper{cfg_.adam_beta1, cfg_.adam_beta2, cfg_.adam_epsilon, cfg_.weight_decay}, dpo);
  if (world_ > 1) {
    opt_->broadcast_parameters();  // every rank starts from rank 0's weights
    m_.on_weights_updated();
  }
  if (!in_.resume_dir.empty()) resume();
  else if (root_) write_file_atomic(log_file_, "");
  st_.max_steps = plan_.total_steps;
  st_.num_train_epochs = cfg_.num_train_epochs;
  st_.logging_steps = cfg_.logging_steps;
  st_.save_steps = cfg_.save_steps;
  eval_steps_ = cfg_.eval_steps > 0 ? cfg_.eval_steps : cfg_.logging_steps;
  st_.eval_steps = eval_steps_;
  st_.train_batch_size = cfg_.per_device_train_batch_size;
  st_.seed = cfg_.seed;
  st_.rows_per_micro_batch = cfg_.per_device_train_batch_size * world_;
  plan_.start_step = st_.global_step;

  do_eval_ = cfg_.eval_strategy != "no" && in_.eval != nullptr;
  if (cfg_.eval_strategy != "no" && !in_.eval)
    obs_.on_note("--eval_strategy " + cfg_.eval_strategy + " but no evaluation data (give --eval_dataset_path or "
                 "--validation_split): evaluation skipped");
  greater_is_better_ = cfg_.best_metric_greater();  // unset: false for *loss metrics, as HF
  track_best_ = !cfg_.best_metric_name().empty();
  if (cfg_.early_stopping_patience > 0) {
    early_.emplace(cfg_.early_stopping_patience, cfg_.early_stopping_threshold, greater_is_better_);
    if (st_.early_stopping) early_->set_counter(st_.early_stopping->counter);  // resumed: the counter goes on
  }
  if (root_) open_tensorboard();
  row_cost_ = row_cost_from_config(m_.config());  // data parallel: how the step's rows are dealt out
  choose_batch_layout();
  obs_.on_begin(plan_);
  if (!cfg_.debug_dump_batches.empty() && root_) {
    dump_.open(cfg_.debug_dump_batches, std::ios::trunc);
    SFT_CHECK(dump_.good(), "--debug_dump_batches: cannot write ", cfg_.debug_dump_batches);
  }
  t_start_ = t_window_ = Clock::now();
  comm_at_start_ = comm_.comm_seconds();  // setup collectives (broadcasts, resume) are not counted
  last_step_loss_ = last_logged_ = NAN;
}

// Padding-free micro-batches where the backend's attention skips other samples' keys (else a row of many samples
// would cost the square of the whole row); then the ranks' shares balance real tokens, not padded rows. Either way
// the model's workspace is sized once for this rank's largest micro-batch of the run.
void Trainer::choose_batch_layout() {
  padding_free_ = cfg_.padding_free && m_.backend().attention_skips_other_documents();
  if (cfg_.padding_free && !padding_free_)
    obs_.on_note("note: --padding_free True: the " + m_.backend().name() + " backend's attention does not skip other "
                 "samples' keys, so micro-batches are padded to their longest row (as --padding_free False)");
  row_cost_.padding_free = padding_free_;
  const int64_t most = largest_micro_batch();
  m_.reserve_training_tokens(most);
  obs_.on_note(std::string("batches: ") +
               (padding_free_ ? "padding-free (each micro-batch one row of its samples)" : "padded to the longest row") +
               "; the largest micro-batch of this run computes " + std::to_string(most) +
               " positions (the training workspace is sized for it)");
}

// The most positions a micro-batch of this rank computes from here to the last step, from the loader's epoch orders
// (row_balance.h: max_micro_batch_positions, exact for one process).
int64_t Trainer::largest_micro_batch() const {
  const int64_t nb = plan_.batches_per_epoch, gas = cfg_.gradient_accumulation_steps;
  const int64_t rows_per_batch = loader_.batch_size();
  data::LoaderPosition p = loader_.position();
  std::vector<int64_t> lengths = loader_.epoch_row_lengths(p.epoch);
  int64_t most = 1;
  for (int64_t step = st_.global_step; step < plan_.total_steps; ++step) {
    const int64_t k = std::min(gas, nb - p.index);
    const auto first = std::min(p.index * rows_per_batch, static_cast<int64_t>(lengths.size()));
    const auto last = std::min((p.index + k) * rows_per_batch, static_cast<int64_t>(lengths.size()));
    most = std::max(most, max_micro_batch_positions({lengths.begin() + first, lengths.begin() + last},
                                                    cfg_.per_device_train_batch_size, padding_free_));
    p.index += k;
    if (p.index == nb && step + 1 < plan_.total_steps) {
      p = {p.epoch + 1, 0};
      lengths = loader_.epoch_row_lengths(p.epoch);
    }
  }
  return most;
}

void Trainer::resume() {
  const fs::path& dir = in_.resume_dir;
  const fs::path state_file = dir / "trainer_state.json";
  st_ = trainer_state_from_json(
      parallel::broadcast_string(comm_, root_ ? read_input_file(state_file, input::json_file) : std::string()),
      state_file.string());
  opt_->load_state(dir / "optimizer.safetensors");
  SFT_CHECK(opt_->steps_done() == st_.global_step, (dir / "optimizer.safetensors").string(), ": optimizer step ",
            opt_->steps_done(), " does not match global_step ", st_.global_step);
  SFT_CHECK(st_.max_steps == plan_.total_steps, dir.string(), ": the checkpoint was made for ", st_.max_steps,
            " total steps but these settings give ", plan_.total_steps,
            " (resume with the same data, batch size, accumulation and epochs)");
  const int64_t rows = cfg_.per_device_train_batch_size * world_;
  SFT_CHECK(st_.rows_per_micro_batch == 0 || st_.rows_per_micro_batch == rows, dir.string(),
            ": the checkpoint was made with ", st_.rows_per_micro_batch,
            " rows per micro-batch (per-device batch x ranks) but these settings give ", rows,
            " (resume with the same product, e.g. 2 ranks x 2 after 1 rank x 4)");
  loader_.seek({st_.loader_epoch, st_.loader_index});
  // The log restarts from the checkpoint's history (rows written after it by the interrupted run are dropped).
  std::string text;
  for (const auto& r : st_.log_history) text += log_row_json(r) + "\n";
  if (root_) write_file_atomic(log_file_, text);
  obs_.on_note("resuming from " + dir.string() + " at step " + std::to_string(st_.global_step));
}

// ---- one optimizer step ----

Trainer::Step Trainer::run_step() {
  const int64_t nb = plan_.batches_per_epoch;
  const int64_t k = std::min(cfg_.gradient_accumulation_steps, nb - loader_.position().index);  // epoch remainder
  const std::vector<int64_t> targets = loader_.targets_ahead(k);
  Step s;
  for (int64_t t : targets) s.targets += t;
  SFT_CHECK(s.targets > 0, "optimizer step ", st_.global_step + 1, " has no target tokens");
  // One process with accumulation regroups too: rows of similar length share a micro-batch (less padding; the
  // step's gradient is the same token-normalised sum, only its floating-point order changes).
  const bool regroup = world_ > 1 || k > 1;
  const std::vector<data::Batch> mine = this_ranks_batches(k, s.targets, regroup);
  forward_backward(mine, targets, regroup, s);
  exchange_and_update(s);
  ++st_.global_step;

  const data::LoaderPosition after = loader_.position();
  s.epoch_end = after.index == 0;
  st_.epoch = static_cast<double>(after.epoch) + static_cast<double>(after.index) / static_cast<double>(nb);
  record(s);
  return s;
}

// This rank's share of the step's global batch (train/row_balance.h: the step's rows sorted by length and dealt out so
// that the ranks' compute is even). The ranks' target counts are reduced BEFORE the backward: the sum must equal the
// data layer's count of the whole step (ranks holding different data stop here).
std::vector<data::Batch> Trainer::this_ranks_batches(int64_t k, int64_t step_targets, bool regroup) {
  std::vector<data::Batch> mine(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) {
    const int64_t epoch = loader_.position().epoch;
    mine[static_cast<size_t>(i)] = loader_.next();
    if (dump_.is_open())
      dump_ << batch_dump_json(st_.global_step + 1, epoch, i, step_targets, mine[static_cast<size_t>(i)]) << '\n';
  }
  if (regroup) {
    const std::vector<RankPlan> plan =
        balance_step_rows(step_rows(mine), world_, cfg_.per_device_train_batch_size, row_cost_);
    std::vector<data::Batch> share;
    for (const auto& rows : plan[static_cast<size_t>(rank_)]) share.push_back(gather_rows(mine, rows, loader_.pad_id()));
    mine = std::move(share);
  }
  if (padding_free_)  // the same micro-batches, each as one row of its samples: nothing computed on padding
    for (data::Batch& b : mine) b = data::remove_padding(b);
  if (world_ > 1) {
    int64_t all = 0;
    for (const data::Batch& b : mine) all += b.count_targets();
    comm_.all_reduce_sum(&all, 1);
    SFT_CHECK(all == step_targets, "optimizer step ", st_.global_step + 1, ": the ranks hold ", all,
              " target tokens but the step has ", step_targets,
              " (do all ranks read the same dataset with the same settings?)");
  }
  return mine;
}

// Forward + backward of this rank's micro-batches into the gradients; the loss is normalised by the whole step's
// target count (1/N), so the gradients of all micro-batches and ranks add up to the step's mean-token-loss gradient.
void Trainer::forward_backward(const std::vector<data::Batch>& mine, const std::vector<int64_t>& targets, bool regroup,
                               Step& s) {
  const float loss_scale = 1.0f / static_cast<float>(s.targets);
  m_.zero_grad();
  for (int64_t i = 0; i < static_cast<int64_t>(mine.size()); ++i) {
    const data::Batch& b = mine[static_cast<size_t>(i)];
    // LoRA dropout masks: one stream per step, each token's row of it keyed by the token's origin (to_model_batch),
    // so micro-batch composition, padding and the rank that trains a token do not change its mask.
    m_.set_dropout_seed(dropout_seed(cfg_.seed, st_.global_step + 1, 0));
    if (cfg_.neftune_noise_alpha > 0)  // NEFTune: noise of this (step, micro-batch, rank), scaled by the batch's L
      m_.set_embedding_noise({cfg_.neftune_noise_alpha, neftune_seed(cfg_.seed, st_.global_step + 1, i * world_ + rank_),
                              neftune_sequence_length(b, padding_free_)});
    const model::LossSum ls = m_.forward_backward(to_model_batch(b), loss_scale);
    const int64_t expected = regroup ? b.count_targets() : targets[static_cast<size_t>(i)];
    SFT_CHECK(ls.n_targets == expected, "micro-batch ", i, " of step ", st_.global_step + 1, ": the model counted ",
              ls.n_targets, " targets, the data layer ", expected);
    s.loss_sum += ls.sum;
    s.tokens += count_real_tokens(b);
    padded_positions_ += b.B * b.T;
    s.flops += batch_model_flops(b, plan_.num_parameters, m_.config());
  }
}

// The step's sums and gradients across ranks, clipping, and the update. A non-finite loss or gradient norm would turn
// every weight into NaN: stop (no final model is written) or, with --skip_nonfinite_steps, leave the weights and
// optimizer state as they are for this step.
void Trainer::exchange_and_update(Step& s) {
  const double comm_before_sums = comm_.comm_seconds();
  if (world_ > 1) {  // the logged loss and tokens/s are the whole step's, as one process would see them
    double sums[2] = {s.loss_sum, s.flops};
    comm_.all_reduce_sum(sums, 2);
    s.loss_sum = sums[0];
    s.flops = sums[1];
    comm_.all_reduce_sum(&s.tokens, 1);
  }
  // The first collective after the backward holds this rank until the slowest rank has finished its backward.
  wait_seconds_ += comm_.comm_seconds() - comm_before_sums;
  const double comm_before_exchange = comm_.comm_seconds();
  opt_->reduce_gradients();
  s.grad_norm = opt_->clip_grad_norm(cfg_.max_grad_norm);
  s.applied = std::isfinite(s.loss_sum) && std::isfinite(s.grad_norm);
  if (s.applied) {
    opt_->step(lr_at(st_.global_step));
    m_.on_weights_updated();
    // A finite loss and norm can still give NaN/inf parameters (finite_guard.h): one read pass, then stop.
    if (!cfg_.allow_nonfinite_weights) check_update_finite(*opt_, m_, st_.global_step + 1, lr_at(st_.global_step));
  } else {
    const std::string what = "optimizer step " + std::to_string(st_.global_step + 1) + ": non-finite " +
                             (std::isfinite(s.loss_sum) ? "gradient norm (" + std::to_string(s.grad_norm) + ")"
                                                        : "loss (" + std::to_string(s.loss_sum) + ")");
    SFT_CHECK(cfg_.skip_nonfinite_steps, what, " at learning rate ", lr_at(st_.global_step),
              "; training stopped and no final model was saved (lower --learning_rate, or pass "
              "--skip_nonfinite_steps True to skip such steps)");
    obs_.on_note(what + ": update skipped (--skip_nonfinite_steps)");
  }
  exchange_seconds_ += comm_.comm_seconds() - comm_before_exchange;
}

// The step into the logging window (a skipped step does not enter the logged loss) and the progress display.
void Trainer::record(const Step& s) {
  if (s.applied) {
    last_step_loss_ = s.loss_sum / static_cast<double>(s.targets);
    st_.window.loss_sum += s.loss_sum;
    st_.window.targets += s.targets;
    st_.window.tokens += s.tokens;
    st_.window.model_flops += s.flops;
    st_.window.steps += 1;
  }
  const double elapsed = seconds_since(t_start_);
  obs_.on_step(st_.global_step, plan_.total_steps, last_step_loss_, elapsed);
  run_tokens_ += s.tokens;
  StepProgress prog;
  prog.step = st_.global_step;
  prog.total = plan_.total_steps;
  prog.start_step = plan_.start_step;
  prog.epoch = st_.epoch;
  prog.loss = last_step_loss_;
  prog.elapsed_s = elapsed;
  prog.tokens = run_tokens_;
  obs_.on_progress(prog);
}

// ---- logging, evaluation, checkpoints (HF IntervalStrategy) ----

// steps = every logging_steps (plus, here, the final step), epoch = at each epoch end, no = never; logging_first_step
// adds step 1 under any strategy (DefaultFlowCallback).
void Trainer::maybe_log(const Step& s) {
  const int64_t step = st_.global_step;
  const bool last = step == plan_.total_steps;
  const bool due = cfg_.logging_strategy == "steps"   ? step % cfg_.logging_steps == 0 || last
                   : cfg_.logging_strategy == "epoch" ? s.epoch_end
                                                      : false;
  if (!due && !(cfg_.logging_first_step && step == 1)) return;
  LogRow row;
  row.step = step;
  row.epoch = st_.epoch;
  row.loss = st_.window.targets > 0 ? st_.window.loss_sum / static_cast<double>(st_.window.targets) : 0.0;
  row.learning_rate = lr_at(step);
  row.grad_norm = s.grad_norm;
  row.tokens = st_.window.tokens;
  const double secs = seconds_since(t_window_);
  row.tokens_per_second = secs > 0 ? static_cast<double>(st_.window.tokens) / secs : 0.0;
  row.model_flops_per_second = secs > 0 ? st_.window.model_flops / secs : 0.0;
  st_.log_history.push_back(row);
  write_log_row(row);
  obs_.on_log(row);
  if (st_.window.targets > 0) last_logged_ = row.loss;  // a window of skipped steps has no loss
  st_.window.reset();
  t_window_ = Clock::now();
}

void Trainer::maybe_evaluate(const Step& s) {
  const bool due = (cfg_.eval_strategy == "steps" && st_.global_step % eval_steps_ == 0) ||
                   (cfg_.eval_strategy == "epoch" && s.epoch_end);
  if (!do_eval_ || !due) return;
  LogRow row;
  row.step = st_.global_step;
  row.epoch = st_.epoch;
  row.eval_loss = evaluate(m_, *in_.eval, comm_, padding_free_);
  st_.log_history.push_back(row);
  write_log_row(row);
  obs_.on_eval(row);
  track_best_and_maybe_stop(*row.eval_loss);
}

// Transformers' order at an evaluation: EarlyStoppingCallback.on_evaluate against the best so far, then
// _determine_best_metric (train/early_stopping.h). The checkpoint of the best step becomes best_model_checkpoint when
// it is saved (save_checkpoint).
void Trainer::track_best_and_maybe_stop(double metric) {
  if (!track_best_) return;
  const std::optional<double> best_before = st_.best_metric;
  const bool stop = early_ && early_->on_evaluate(metric, best_before);
  if (early_) st_.early_stopping = TrainerState::EarlyStoppingState{early_->patience(), early_->threshold(), early_->counter()};
  if (update_best_metric(st_.best_metric, metric, greater_is_better_) && cfg_.save_strategy != "no")
    st_.best_global_step = st_.global_step;
  if (!stop) return;
  stop_early_ = true;
  const auto g = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return std::string(buf);
  };
  const std::string metric_name = cfg_.best_metric_name();
  std::string best = "best " + metric_name + " " + g(*st_.best_metric);
  if (st_.best_global_step) best += " at step " + std::to_string(*st_.best_global_step);
  const std::string ckpt = st_.best_global_step && cfg_.save_strategy != "no"
                               ? (out_ / ("checkpoint-" + std::to_string(*st_.best_global_step))).string()
                               : std::string();
  obs_.on_note("early stopping at step " + std::to_string(st_.global_step) + ": " + metric_name +
               " has not improved by more than " + g(early_->threshold()) + " for " +
               std::to_string(early_->counter()) + " evaluation(s) (--early_stopping_patience " +
               std::to_string(early_->patience()) + "); " + best + (ckpt.empty() ? "" : " (" + ckpt + ")"));
}

void Trainer::write_log_row(const LogRow& row) {
  if (!root_) return;
  append_line(log_file_, log_row_json(row));
  if (tb_.is_open()) tb_.log_row(row, TensorBoardWriter::now());  // flushed: a crash loses at most this interval
}

// --report_to tensorboard: the logging dir was resolved and created by train::Job (--logging_dir, the resumed run's
// folder, or HF 5's default under output_dir/runs). A resumed run's file starts with a SessionLog START at the
// checkpoint's step + 1, so the steps the interrupted run logged after its checkpoint show once (tensorboard.h).
void Trainer::open_tensorboard() {
  if (!cfg_.reports_to("tensorboard")) return;
  SFT_CHECK(!cfg_.logging_dir.empty(), "--report_to tensorboard: no --logging_dir resolved");
  const bool resumed = !in_.resume_dir.empty();
  tb_.open(cfg_.logging_dir, resumed ? std::optional<int64_t>(st_.global_step) : std::nullopt);
  st_.logging_dir = cfg_.logging_dir;
  if (!resumed) {  // what TensorBoardCallback.on_train_begin adds as text: the arguments and the model config
    const double now = TensorBoardWriter::now();
    tb_.text("args", 0, cfg_.to_json(), now);
    tb_.text("model_config", 0, model::config_to_json(m_.config()), now);
    tb_.flush();
  }
  obs_.on_note("tensorboard: " + tb_.path().string());
}

void Trainer::maybe_save(const Step& s) {
  if ((cfg_.save_strategy == "steps" && st_.global_step % cfg_.save_steps == 0) ||
      (cfg_.save_strategy == "epoch" && s.epoch_end))
    save_checkpoint();
}

// Both saves (checkpoint-N and the final model) go through one writer; only their parts differ.
SaveParts Trainer::save_parts(std::function<void(const fs::path&)> model_files, bool with_optimizer) {
  SaveParts p;
  p.model = std::move(model_files);
  if (with_optimizer) p.optimizer = [this](const fs::path& d) { opt_->save_state(d / "optimizer.safetensors"); };
  p.base_model_dir = in_.base_model_dir;
  st_.loader_epoch = loader_.position().epoch;
  st_.loader_index = loader_.position().index;
  p.files = {{"trainer_state.json", trainer_state_to_json(st_)}, {"training_args.json", cfg_.to_json()}};
  return p;
}

void Trainer::save_checkpoint() {
  const std::string name = "checkpoint-" + std::to_string(st_.global_step);
  // Transformers' _save_checkpoint: the best step's checkpoint, once it exists (this one, or one saved before), is
  // best_model_checkpoint; a best step that was evaluated but never saved changes nothing.
  if (st_.best_global_step) {
    const std::string best_name = "checkpoint-" + std::to_string(*st_.best_global_step);
    if (best_name == name || fs::is_directory(out_ / best_name))
      st_.best_model_checkpoint = (out_ / best_name).string();
  }
  if (!root_) {  // rank 0's writer gathers the optimizer state: the other ranks take part in that collective only
    opt_->save_state({});
    return;
  }
  // exact fp32 masters: resuming from them is bit-identical
  const fs::path dir = writer_.write_folder(out_, name, save_parts([this, name](const fs::path& d) {
    save_trained_weights(m_, cfg_, d, "float32", (out_ / name).string());
  }, true));
  obs_.on_checkpoint(dir);
  for (const auto& d : rotate_checkpoints(out_, cfg_.save_total_limit, fs::path(st_.best_model_checkpoint)))
    obs_.on_note("deleted old checkpoint " + d.string() + " (--save_total_limit " +
                 std::to_string(cfg_.save_total_limit) + ")");
}

// ---- the end ----

// The final weights, or with --load_best_model_at_end the best evaluated checkpoint's.
std::function<void(const fs::path&)> Trainer::final_model_files(const std::string& dtype) {
  if (!cfg_.load_best_model_at_end || st_.best_model_checkpoint.empty()) {
    if (cfg_.load_best_model_at_end)
      obs_.on_note("--load_best_model_at_end: no evaluated checkpoint, the final weights are saved");
    return [this, dtype](const fs::path& d) {
      save_trained_weights(m_, cfg_, d, dtype, "the final model in " + out_.string());
    };
  }
  obs_.on_note("loading the best checkpoint " + st_.best_model_checkpoint + " (" + cfg_.best_metric_name() + " " +
               std::to_string(*st_.best_metric) + ")");
  const fs::path best_dir = st_.best_model_checkpoint;
  if (is_lora(m_)) {  // the best checkpoint's adapter files are the output
    return [this, best_dir](const fs::path& d) {
      if (!cfg_.allow_nonfinite_weights) model::check_finite_tensors(io::SafetensorsFile(best_dir / "adapter_model.safetensors"));
      for (const char* f : {"adapter_model.safetensors", "adapter_config.json"})
        fs::copy_file(best_dir / f, d / f, fs::copy_options::overwrite_existing);
    };
  }
  return [this, best_dir, dtype](const fs::path& d) {
    save_trained_weights(*model::Model::load(best_dir, m_.backend(), m_.precision()), cfg_, d, dtype,
                         "the final model in " + out_.string() + " (the best checkpoint " + best_dir.string() + ")");
  };
}

TrainSummary Trainer::finish() {
  const double steps_seconds = seconds_since(t_start_);
  // Final model into output_dir (each file renamed into place; checkpoints stay).
  const std::string dtype = cfg_.torch_dtype == "bfloat16" ? "bfloat16" : "float32";
  SaveParts final_parts = save_parts(final_model_files(dtype), false);
  final_parts.files.emplace_back(
      "loss_curve.svg",
      loss_curve_svg(st_.log_history, "sft train: " + fs::path(cfg_.model_name_or_path).filename().string()));
  writer_.write_into(out_, final_parts);
  if (tb_.is_open()) tb_.close();
  comm_.barrier();  // every rank returns once rank 0's output folder is complete

  TrainSummary sum;
  sum.steps = st_.global_step;
  sum.final_loss = std::isnan(last_logged_) ? last_step_loss_ : last_logged_;
  if (st_.global_step == plan_.start_step) {  // nothing left to train (resumed a finished run): the last logged loss
    sum.final_loss = NAN;
    for (const auto& r : st_.log_history)
      if (!r.eval_loss) sum.final_loss = r.loss;
  }
  sum.output_dir = out_;
  sum.best_model_checkpoint = st_.best_model_checkpoint;
  sum.world_size = world_;
  sum.comm_seconds = comm_.comm_seconds() - comm_at_start_;
  sum.exchange_seconds = exchange_seconds_;
  sum.steps_seconds = steps_seconds;
  sum.padded_positions = padded_positions_;
  sum.tokens = run_tokens_;
  if (world_ > 1) {  // every rank's wait, so that rank 0 can report the imbalance (not counted as communication)
    std::vector<double> waits(static_cast<size_t>(world_), 0.0);
    waits[static_cast<size_t>(rank_)] = wait_seconds_;
    comm_.all_reduce_sum(waits.data(), waits.size());
    sum.max_wait_seconds = *std::max_element(waits.begin(), waits.end());
    comm_.all_reduce_sum(&sum.padded_positions, 1);
  }
  sum.seconds = seconds_since(t_start_);
  return sum;
}

}  // namespace sft::train
