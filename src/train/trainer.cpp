#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "data/batching.h"
#include "parallel/communicator.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/data_parallel.h"
#include "train/checkpoint_writer.h"
#include "train/lr_schedule.h"
#include "train/row_balance.h"
#include "util/error.h"
#include "util/file_util.h"

namespace sft::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

model::Batch to_model_batch(const data::Batch& b) {
  model::Batch m;
  m.B = b.B;
  m.T = b.T;
  m.input_ids = b.input_ids;
  m.position_ids = b.position_ids;
  m.doc_ids = b.doc_ids;
  m.labels = b.labels;
  return m;
}

int64_t count_real_tokens(const data::Batch& b) {
  int64_t n = 0;
  for (int32_t d : b.doc_ids) n += d >= 0;
  return n;
}

std::string batch_dump_json(int64_t step, int64_t micro, int64_t step_targets, const data::Batch& b) {
  nlohmann::json j;
  j["step"] = step;
  j["micro"] = micro;
  j["step_targets"] = step_targets;
  j["B"] = b.B;
  j["T"] = b.T;
  j["input_ids"] = b.input_ids;
  j["position_ids"] = b.position_ids;
  j["doc_ids"] = b.doc_ids;
  j["labels"] = b.labels;
  return j.dump();
}

// Mean token loss of the evaluation set: sum of target losses / number of targets (token-weighted).
// Data parallel: rank r scores batches r, r + world, ...; the sums are all-reduced.
double evaluate(model::Model& m, data::DataLoader& ev, parallel::Communicator& comm) {
  ev.seek({0, 0});
  double sum = 0;
  int64_t n = 0;
  const int64_t nb = ev.batches_per_epoch();
  for (int64_t i = 0; i < nb; ++i) {
    const data::Batch b = ev.next();
    if (i % comm.world_size() != comm.rank()) continue;
    auto ls = m.forward_loss(to_model_batch(b));
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

// The weights part of a checkpoint or of the final output.
void save_trained_weights(model::Model& m, const TrainConfig& cfg, const fs::path& dir, const std::string& dtype) {
  if (is_lora(m)) m.save_adapter(dir, cfg.model_name_or_path);  // adapter in fp32 (exact: resume is bit-identical)
  else m.save(dir, dtype);
}

// LoRA dropout masks of micro-batch `micro` of optimizer step `step` (1-based): a pure function of the seed and the
// position, so a resumed run draws the same masks.
uint64_t dropout_seed(uint64_t seed, int64_t step, int64_t micro) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(step) * 0xBF58476D1CE4E5B9ull +
               static_cast<uint64_t>(micro) * 0x94D049BB133111EBull;
  return z ^ (z >> 29);
}

}  // namespace

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

TrainSummary run_training(const TrainJob& job, TrainObserver& obs) {
  const TrainConfig& cfg = job.cfg;
  SFT_CHECK(job.model && job.train, "run_training: model and training data are required");
  model::Model& m = *job.model;
  data::DataLoader& loader = *job.train;
  const fs::path out = cfg.output_dir;
  const fs::path log_file = out / "trainer_log.jsonl";

  TrainPlan plan;
  plan.batches_per_epoch = loader.batches_per_epoch();
  SFT_CHECK(plan.batches_per_epoch > 0, "the training data gives no micro-batch (too few rows for ",
            cfg.per_device_train_batch_size, " per batch with --data_loader_drop_last?)");
  const int64_t gas = cfg.gradient_accumulation_steps;
  plan.updates_per_epoch = std::max<int64_t>(1, (plan.batches_per_epoch + gas - 1) / gas);
  plan.total_steps = cfg.total_steps(plan.updates_per_epoch);
  const SchedulerType sched = parse_scheduler_type(cfg.lr_scheduler_type);
  plan.warmup_steps = resolve_warmup_steps(cfg.warmup_steps, cfg.warmup_ratio, plan.total_steps);
  plan.eval_batches = job.eval ? job.eval->batches_per_epoch() : 0;
  for (const auto& p : m.parameters()) plan.num_parameters += p.numel;
  plan.all_parameters = is_lora(m) ? m.num_all_parameters() : plan.num_parameters;
  plan.lora = is_lora(m);

  // Data parallel (train/data_parallel.h): rank 0 alone writes files; every rank runs the same steps.
  std::unique_ptr<parallel::Communicator> own_comm;
  if (!job.comm) own_comm = parallel::make_single_process_communicator();
  parallel::Communicator& comm = job.comm ? *job.comm : *own_comm;
  const int world = comm.world_size(), rank = comm.rank();
  const bool root = rank == 0;
  comm.set_timeout(cfg.ddp_timeout);
  DataParallelOptions dpo;
  dpo.zero_stage = static_cast<int>(cfg.zero_stage);
  dpo.bucket_floats = std::max<int64_t>(1, static_cast<int64_t>(cfg.ddp_bucket_cap_mb * (1 << 20) / sizeof(float)));
  DataParallelAdamW opt(comm, m.backend(), m.parameters(),
                        AdamWHyper{cfg.adam_beta1, cfg.adam_beta2, cfg.adam_epsilon, cfg.weight_decay}, dpo);
  if (world > 1) {
    opt.broadcast_parameters();  // every rank starts from rank 0's weights
    m.on_weights_updated();
  }

  TrainerState st;
  if (!job.resume_dir.empty()) {
    const fs::path state_file = job.resume_dir / "trainer_state.json";
    st = trainer_state_from_json(parallel::broadcast_string(comm, root ? read_file(state_file) : std::string()),
                                 state_file.string());
    opt.load_state(job.resume_dir / "optimizer.safetensors");
    SFT_CHECK(opt.steps_done() == st.global_step, (job.resume_dir / "optimizer.safetensors").string(),
              ": optimizer step ", opt.steps_done(), " does not match global_step ", st.global_step);
    SFT_CHECK(st.max_steps == plan.total_steps, job.resume_dir.string(), ": the checkpoint was made for ",
              st.max_steps, " total steps but these settings give ", plan.total_steps,
              " (resume with the same data, batch size, accumulation and epochs)");
    const int64_t rows = cfg.per_device_train_batch_size * world;
    SFT_CHECK(st.rows_per_micro_batch == 0 || st.rows_per_micro_batch == rows, job.resume_dir.string(),
              ": the checkpoint was made with ", st.rows_per_micro_batch,
              " rows per micro-batch (per-device batch x ranks) but these settings give ", rows,
              " (resume with the same product, e.g. 2 ranks x 2 after 1 rank x 4)");
    loader.seek({st.loader_epoch, st.loader_index});
    // The log restarts from the checkpoint's history (rows written after it by the interrupted run are dropped).
    std::string text;
    for (const auto& r : st.log_history) text += log_row_json(r) + "\n";
    if (root) write_file_atomic(log_file, text);
    obs.on_note("resuming from " + job.resume_dir.string() + " at step " + std::to_string(st.global_step));
  } else if (root) {
    write_file_atomic(log_file, "");
  }
  st.max_steps = plan.total_steps;
  st.num_train_epochs = cfg.num_train_epochs;
  st.logging_steps = cfg.logging_steps;
  st.save_steps = cfg.save_steps;
  const int64_t eval_steps = cfg.eval_steps > 0 ? cfg.eval_steps : cfg.logging_steps;
  st.eval_steps = eval_steps;
  st.train_batch_size = cfg.per_device_train_batch_size;
  st.seed = cfg.seed;
  st.rows_per_micro_batch = cfg.per_device_train_batch_size * world;
  plan.start_step = st.global_step;

  const bool do_eval = cfg.eval_strategy != "no" && job.eval != nullptr;
  if (cfg.eval_strategy != "no" && !job.eval)
    obs.on_note("--eval_strategy " + cfg.eval_strategy + " but no evaluation data (give --eval_dataset_path or "
                "--validation_split): evaluation skipped");
  const bool greater = cfg.greater_is_better == -1 ? false : cfg.greater_is_better == 1;
  std::optional<std::pair<int64_t, double>> last_eval;  // (step, eval_loss)

  obs.on_begin(plan);
  std::ofstream dump;
  if (!cfg.debug_dump_batches.empty() && root) {
    dump.open(cfg.debug_dump_batches, std::ios::trunc);
    SFT_CHECK(dump.good(), "--debug_dump_batches: cannot write ", cfg.debug_dump_batches);
  }

  const RowCost row_cost = row_cost_from_config(m.config());  // data parallel: how the step's rows are dealt out
  const auto t_start = Clock::now();
  const double comm_at_start = comm.comm_seconds();  // setup collectives (broadcasts, resume) are not counted
  auto t_window = t_start;
  double last_step_loss = NAN, last_logged = NAN;  // NaN until a step is applied (all may be skipped)
  int64_t run_tokens = 0;
  double wait_seconds = 0, exchange_seconds = 0;  // data parallel: see TrainSummary
  int64_t padded_positions = 0;                    // B x T of every micro-batch this rank trained on
  const int64_t nb = plan.batches_per_epoch;
  auto lr_at = [&](int64_t step) { return cfg.learning_rate * lr_multiplier(sched, step, plan.warmup_steps, plan.total_steps); };

  auto log_now = [&](double grad_norm) {
    LogRow row;
    row.step = st.global_step;
    row.epoch = st.epoch;
    row.loss = st.window.targets > 0 ? st.window.loss_sum / static_cast<double>(st.window.targets) : 0.0;
    row.learning_rate = lr_at(st.global_step);
    row.grad_norm = grad_norm;
    row.tokens = st.window.tokens;
    const double secs = std::chrono::duration<double>(Clock::now() - t_window).count();
    row.tokens_per_second = secs > 0 ? static_cast<double>(st.window.tokens) / secs : 0.0;
    row.model_flops_per_second = secs > 0 ? st.window.model_flops / secs : 0.0;
    st.log_history.push_back(row);
    if (root) append_line(log_file, log_row_json(row));
    obs.on_log(row);
    if (st.window.targets > 0) last_logged = row.loss;  // a window of skipped steps has no loss
    st.window.reset();
    t_window = Clock::now();
  };

  // Both saves (checkpoint-N and the final model) go through one writer; only their parts differ.
  const CheckpointWriter writer(root);  // data parallel: rank 0 alone writes
  auto save_parts = [&](std::function<void(const fs::path&)> model_files, bool with_optimizer) {
    SaveParts p;
    p.model = std::move(model_files);
    if (with_optimizer) p.optimizer = [&](const fs::path& d) { opt.save_state(d / "optimizer.safetensors"); };
    p.base_model_dir = job.base_model_dir;
    st.loader_epoch = loader.position().epoch;
    st.loader_index = loader.position().index;
    p.files = {{"trainer_state.json", trainer_state_to_json(st)}, {"training_args.json", cfg.to_json()}};
    return p;
  };

  auto save_checkpoint = [&]() {
    const std::string name = "checkpoint-" + std::to_string(st.global_step);
    if (last_eval && last_eval->first == st.global_step) {
      const double v = last_eval->second;
      if (!st.best_metric || (greater ? v > *st.best_metric : v < *st.best_metric)) {
        st.best_metric = v;
        st.best_model_checkpoint = (out / name).string();
      }
    }
    if (!root) {  // rank 0's writer gathers the optimizer state: the other ranks take part in that collective only
      opt.save_state({});
      return;
    }
    // exact fp32 masters: resuming from them is bit-identical
    const fs::path dir =
        writer.write_folder(out, name, save_parts([&](const fs::path& d) { save_trained_weights(m, cfg, d, "float32"); }, true));
    obs.on_checkpoint(dir);
    for (const auto& d : rotate_checkpoints(out, cfg.save_total_limit, fs::path(st.best_model_checkpoint)))
      obs.on_note("deleted old checkpoint " + d.string() + " (--save_total_limit " +
                  std::to_string(cfg.save_total_limit) + ")");
  };

  while (st.global_step < plan.total_steps) {
    const data::LoaderPosition pos = loader.position();
    const int64_t k = std::min(gas, nb - pos.index);  // the last step of an epoch takes the remainder
    const std::vector<int64_t> targets = loader.targets_ahead(k);
    int64_t step_targets = 0;
    for (int64_t t : targets) step_targets += t;
    SFT_CHECK(step_targets > 0, "optimizer step ", st.global_step + 1, " has no target tokens");
    const float loss_scale = 1.0f / static_cast<float>(step_targets);

    // This rank's share of the step's global batch (train/row_balance.h: the step's rows sorted by length and dealt
    // out so that the ranks' compute is even; with accumulation one process regroups its micro-batches too). The
    // ranks' target counts are reduced BEFORE the backward: the sum must equal the data layer's count of the whole
    // step (ranks holding different data stop here).
    std::vector<data::Batch> mine(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) {
      mine[static_cast<size_t>(i)] = loader.next();
      if (dump.is_open()) dump << batch_dump_json(st.global_step + 1, i, step_targets, mine[static_cast<size_t>(i)]) << '\n';
    }
    // One process with accumulation regroups too: rows of similar length share a micro-batch (less padding; the
    // step's gradient is the same token-normalised sum, only its floating-point order changes).
    const bool regroup = world > 1 || k > 1;
    if (regroup) {
      const std::vector<RankPlan> plan = balance_step_rows(step_rows(mine), world, cfg.per_device_train_batch_size, row_cost);
      std::vector<data::Batch> share;
      for (const auto& rows : plan[static_cast<size_t>(rank)]) share.push_back(gather_rows(mine, rows, loader.pad_id()));
      mine = std::move(share);
    }
    int64_t local_targets = 0;
    for (const data::Batch& b : mine) local_targets += b.count_targets();
    if (world > 1) {
      int64_t all = local_targets;
      comm.all_reduce_sum(&all, 1);
      SFT_CHECK(all == step_targets, "optimizer step ", st.global_step + 1, ": the ranks hold ", all,
                " target tokens but the step has ", step_targets,
                " (do all ranks read the same dataset with the same settings?)");
    }

    m.zero_grad();
    double step_sum = 0;
    int64_t step_tokens = 0;
    double step_flops = 0;
    for (int64_t i = 0; i < static_cast<int64_t>(mine.size()); ++i) {
      const data::Batch& b = mine[static_cast<size_t>(i)];
      // LoRA dropout masks: one stream per (step, micro-batch, rank); one process reproduces the old seeds exactly.
      m.set_dropout_seed(dropout_seed(cfg.seed, st.global_step + 1, i * world + rank));
      const model::LossSum ls = m.forward_backward(to_model_batch(b), loss_scale);
      const int64_t expected = regroup ? b.count_targets() : targets[static_cast<size_t>(i)];
      SFT_CHECK(ls.n_targets == expected, "micro-batch ", i, " of step ", st.global_step + 1, ": the model counted ",
                ls.n_targets, " targets, the data layer ", expected);
      step_sum += ls.sum;
      step_tokens += count_real_tokens(b);
      padded_positions += b.B * b.T;
      step_flops += batch_model_flops(b, plan.num_parameters, m.config());
    }
    const double comm_before_sums = comm.comm_seconds();
    if (world > 1) {  // the logged loss and tokens/s are the whole step's, as one process would see them
      double sums[2] = {step_sum, step_flops};
      comm.all_reduce_sum(sums, 2);
      step_sum = sums[0];
      step_flops = sums[1];
      comm.all_reduce_sum(&step_tokens, 1);
    }
    // The first collective after the backward holds this rank until the slowest rank has finished its backward.
    wait_seconds += comm.comm_seconds() - comm_before_sums;
    const double comm_before_exchange = comm.comm_seconds();
    opt.reduce_gradients();
    const double norm = opt.clip_grad_norm(cfg.max_grad_norm);
    // A non-finite loss or gradient norm would turn every weight into NaN: stop (no final model is written) or,
    // with --skip_nonfinite_steps, leave the weights and optimizer state as they are for this step.
    const bool finite = std::isfinite(step_sum) && std::isfinite(norm);
    if (finite) {
      opt.step(lr_at(st.global_step));
      m.on_weights_updated();
    } else {
      const std::string what = "optimizer step " + std::to_string(st.global_step + 1) + ": non-finite " +
                               (std::isfinite(step_sum) ? "gradient norm (" + std::to_string(norm) + ")"
                                                        : "loss (" + std::to_string(step_sum) + ")");
      SFT_CHECK(cfg.skip_nonfinite_steps, what, " at learning rate ", lr_at(st.global_step),
                "; training stopped and no final model was saved (lower --learning_rate, or pass "
                "--skip_nonfinite_steps True to skip such steps)");
      obs.on_note(what + ": update skipped (--skip_nonfinite_steps)");
    }
    exchange_seconds += comm.comm_seconds() - comm_before_exchange;
    ++st.global_step;

    const data::LoaderPosition after = loader.position();
    const bool epoch_end = after.index == 0;
    st.epoch = static_cast<double>(after.epoch) + static_cast<double>(after.index) / static_cast<double>(nb);
    if (finite) {  // a skipped step does not enter the logged loss
      last_step_loss = step_sum / static_cast<double>(step_targets);
      st.window.loss_sum += step_sum;
      st.window.targets += step_targets;
      st.window.tokens += step_tokens;
      st.window.model_flops += step_flops;
      st.window.steps += 1;
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - t_start).count();
    obs.on_step(st.global_step, plan.total_steps, last_step_loss, elapsed);
    run_tokens += step_tokens;
    StepProgress prog;
    prog.step = st.global_step;
    prog.total = plan.total_steps;
    prog.start_step = plan.start_step;
    prog.epoch = st.epoch;
    prog.loss = last_step_loss;
    prog.elapsed_s = elapsed;
    prog.tokens = run_tokens;
    obs.on_progress(prog);

    // HF IntervalStrategy: steps = every logging_steps (plus, here, the final step), epoch = at each epoch end,
    // no = never; logging_first_step adds step 1 under any strategy (DefaultFlowCallback).
    const bool last = st.global_step == plan.total_steps;
    const bool log_due = cfg.logging_strategy == "steps"   ? st.global_step % cfg.logging_steps == 0 || last
                         : cfg.logging_strategy == "epoch" ? epoch_end
                                                           : false;
    if (log_due || (cfg.logging_first_step && st.global_step == 1)) log_now(norm);
    if (do_eval && ((cfg.eval_strategy == "steps" && st.global_step % eval_steps == 0) ||
                    (cfg.eval_strategy == "epoch" && epoch_end))) {
      LogRow row;
      row.step = st.global_step;
      row.epoch = st.epoch;
      row.eval_loss = evaluate(m, *job.eval, comm);
      last_eval = std::make_pair(st.global_step, *row.eval_loss);
      st.log_history.push_back(row);
      if (root) append_line(log_file, log_row_json(row));
      obs.on_eval(row);
    }
    if ((cfg.save_strategy == "steps" && st.global_step % cfg.save_steps == 0) ||
        (cfg.save_strategy == "epoch" && epoch_end))
      save_checkpoint();
  }
  const double steps_seconds = std::chrono::duration<double>(Clock::now() - t_start).count();

  // Final model into output_dir (each file renamed into place; checkpoints stay).
  const std::string dtype = cfg.torch_dtype == "bfloat16" ? "bfloat16" : "float32";
  std::function<void(const fs::path&)> final_model = [&](const fs::path& d) { save_trained_weights(m, cfg, d, dtype); };
  if (cfg.load_best_model_at_end && !st.best_model_checkpoint.empty()) {
    obs.on_note("loading the best checkpoint " + st.best_model_checkpoint + " (" + cfg.metric_for_best_model + " " +
                std::to_string(*st.best_metric) + ")");
    if (is_lora(m)) {  // the best checkpoint's adapter files are the output
      const fs::path best_dir = st.best_model_checkpoint;
      final_model = [best_dir](const fs::path& d) {
        for (const char* f : {"adapter_model.safetensors", "adapter_config.json"})
          fs::copy_file(best_dir / f, d / f, fs::copy_options::overwrite_existing);
      };
    } else {
      final_model = [&](const fs::path& d) {
        model::Model::load(st.best_model_checkpoint, m.backend(), m.precision())->save(d, dtype);
      };
    }
  } else if (cfg.load_best_model_at_end) {
    obs.on_note("--load_best_model_at_end: no evaluated checkpoint, the final weights are saved");
  }
  SaveParts final_parts = save_parts(final_model, false);
  final_parts.files.emplace_back(
      "loss_curve.svg",
      loss_curve_svg(st.log_history, "sft train: " + fs::path(cfg.model_name_or_path).filename().string()));
  writer.write_into(out, final_parts);

  comm.barrier();  // every rank returns once rank 0's output folder is complete
  TrainSummary sum;
  sum.steps = st.global_step;
  sum.final_loss = std::isnan(last_logged) ? last_step_loss : last_logged;
  if (st.global_step == plan.start_step) {  // nothing left to train (resumed a finished run): the last logged loss
    sum.final_loss = NAN;
    for (const auto& r : st.log_history)
      if (!r.eval_loss) sum.final_loss = r.loss;
  }
  sum.output_dir = out;
  sum.best_model_checkpoint = st.best_model_checkpoint;
  sum.world_size = world;
  sum.comm_seconds = comm.comm_seconds() - comm_at_start;
  sum.exchange_seconds = exchange_seconds;
  sum.steps_seconds = steps_seconds;
  sum.padded_positions = padded_positions;
  sum.tokens = run_tokens;
  if (world > 1) {  // every rank's wait, so that rank 0 can report the imbalance (not counted as communication)
    std::vector<double> waits(static_cast<size_t>(world), 0.0);
    waits[static_cast<size_t>(rank)] = wait_seconds;
    comm.all_reduce_sum(waits.data(), waits.size());
    sum.max_wait_seconds = *std::max_element(waits.begin(), waits.end());
    comm.all_reduce_sum(&sum.padded_positions, 1);
  }
  sum.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  return sum;
}

}  // namespace sft::train
