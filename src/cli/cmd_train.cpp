// `sft train`: flags -> data (prepare_dataset + DataLoader) -> model -> train::run_training, printing the
// truncation report, the seed-style loss table (plus lr, grad norm, tokens/s), a progress bar on a terminal.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "backend/backend.h"
#include "backend/device.h"
#include "cli/commands.h"
#include "cli/train_flags.h"
#include "data/prepare.h"
#include "io/hf_config.h"
#include "model/family.h"
#include "model/lora.h"
#include "parallel/communicator.h"
#ifdef SFT_HAVE_CUDA
#include "parallel/nccl/nccl_communicator.h"
#endif
#include "model/model.h"
#include "template/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/checkpoint.h"
#include "train/data_options.h"
#include "train/trainer.h"
#include "util/error.h"

namespace sft::cli {

namespace fs = std::filesystem;

namespace {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long t = std::lround(s);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

std::string with_commas(int64_t v) {  // Python's f"{v:,d}"
  std::string d = std::to_string(v), out;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i > 0 && (d.size() - i) % 3 == 0 && d[i - 1] != '-') out += ',';
    out += d[i];
  }
  return out;
}

// Prints the loss table and progress: on a terminal a live line repainted in place after every step; otherwise
// (CI, logs, pipes) a plain line every ~5% of the steps or 60 s, whichever comes first. --disable_tqdm: neither.
class ConsoleObserver final : public train::TrainObserver {
 public:
  explicit ConsoleObserver(bool disable_progress)
      : tty_(isatty(STDOUT_FILENO) == 1), progress_(!disable_progress) {}

  void on_begin(const train::TrainPlan& p) override {
    std::printf("training: %lld optimizer steps (%lld warmup), %lld micro-batches per epoch, %lld parameters\n",
                static_cast<long long>(p.total_steps), static_cast<long long>(p.warmup_steps),
                static_cast<long long>(p.batches_per_epoch), static_cast<long long>(p.num_parameters));
    if (p.lora)  // peft's print_trainable_parameters line
      std::printf("trainable params: %s || all params: %s || trainable%%: %.4f\n",
                  with_commas(p.num_parameters).c_str(), with_commas(p.all_parameters).c_str(),
                  100.0 * static_cast<double>(p.num_parameters) / static_cast<double>(p.all_parameters));
    if (p.start_step > 0) std::printf("resuming at step %lld\n", static_cast<long long>(p.start_step));
    std::printf("%-8s%-15s%-15s%-11s%-10s%s\n", "Step", "Training Loss", "Learning Rate", "Grad Norm", "Tokens/s",
                "Model GFLOP/s");
    std::fflush(stdout);
  }
  void on_progress(const train::StepProgress& p) override {
    if (!progress_) return;
    const double done = static_cast<double>(p.step - p.start_step), left = static_cast<double>(p.total - p.step);
    const double eta = done > 0 ? p.elapsed_s / done * left : NAN;
    const double tps = p.elapsed_s > 0 ? static_cast<double>(p.tokens) / p.elapsed_s : 0;
    const int pct = static_cast<int>(100.0 * static_cast<double>(p.step) / static_cast<double>(std::max<int64_t>(1, p.total)));
    if (tty_) {
      const int width = 24, fill = static_cast<int>(width * static_cast<double>(p.step) / static_cast<double>(p.total));
      std::string bar(static_cast<size_t>(std::clamp(fill, 0, width)), '#');
      bar.resize(width, '.');
      std::printf("\r\033[K[%s] %lld/%lld %3d%% | %s<%s | %.0f tok/s | loss %.4f | epoch %.2f", bar.c_str(),
                  static_cast<long long>(p.step), static_cast<long long>(p.total), pct,
                  format_duration(p.elapsed_s).c_str(), format_duration(eta).c_str(), tps, p.loss, p.epoch);
      std::fflush(stdout);
      bar_shown_ = true;
      return;
    }
    const int64_t every = std::max<int64_t>(1, p.total / 20);
    const bool due = p.step == p.total || p.step % every == 0 || p.elapsed_s - last_plain_s_ >= 60.0;
    if (!due) return;
    last_plain_s_ = p.elapsed_s;
    std::printf("progress: step %lld/%lld (%d%%) elapsed %s ETA %s %.0f tokens/s loss %.4f epoch %.2f\n",
                static_cast<long long>(p.step), static_cast<long long>(p.total), pct,
                format_duration(p.elapsed_s).c_str(), format_duration(eta).c_str(), tps, p.loss, p.epoch);
    std::fflush(stdout);
  }
  void on_log(const train::LogRow& r) override {
    clear_bar();
    std::printf("%-8lld%-15.4f%-15.3e%-11.4f%-10.0f%.1f\n", static_cast<long long>(r.step), r.loss, r.learning_rate,
                r.grad_norm, r.tokens_per_second, r.model_flops_per_second / 1e9);
    std::fflush(stdout);
  }
  void on_eval(const train::LogRow& r) override {
    clear_bar();
    std::printf("eval    step %lld: eval_loss %.4f\n", static_cast<long long>(r.step), *r.eval_loss);
    std::fflush(stdout);
  }
  void on_checkpoint(const fs::path& dir) override {
    clear_bar();
    std::printf("saved %s\n", dir.string().c_str());
    std::fflush(stdout);
  }
  void on_note(const std::string& s) override {
    clear_bar();
    std::printf("%s\n", s.c_str());
    std::fflush(stdout);
  }
  void clear_bar() {
    if (bar_shown_) std::printf("\r\033[K");
    bar_shown_ = false;
  }

 private:
  bool tty_, progress_;
  bool bar_shown_ = false;
  double last_plain_s_ = 0;
};

void train_in_this_process(ParsedTrainArgs& parsed, std::unique_ptr<parallel::Communicator>& comm) {
  train::TrainConfig& cfg = parsed.cfg;
  const bool root = comm->rank() == 0;
  // Rank 0 alone prints (the table, the report); the others keep stderr for their errors.
  if (!root) {
    std::fflush(stdout);
    SFT_CHECK(std::freopen("/dev/null", "w", stdout) != nullptr, "cannot silence stdout of rank ", comm->rank());
  }
  if (comm->world_size() > 1) {
    const parallel::LaunchInfo li = parallel::detect_launch();
    std::printf("data parallel: %d ranks (%s, %d on this machine), per-device batch %lld -> %lld rows per micro-batch, "
                "ZeRO stage %lld\n", comm->world_size(), li.launcher.c_str(), comm->local_size(),
                static_cast<long long>(cfg.per_device_train_batch_size),
                static_cast<long long>(cfg.per_device_train_batch_size * comm->world_size()),
                static_cast<long long>(cfg.zero_stage));
  }
  for (const auto& n : parsed.notes) std::printf("%s\n", n.c_str());
  if (cfg.eval_strategy == "no" && cfg.load_best_model_at_end)
    std::printf("note: --load_best_model_at_end ignored: no evaluation (--eval_strategy no)\n");
  if (cfg.threads > 0) {
    omp_set_num_threads(static_cast<int>(cfg.threads));
  } else if (comm->local_size() > 1) {  // ranks sharing a machine split its cores (a bound rank sees only its own)
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    omp_set_num_threads(std::max(1, std::min(omp_get_num_procs(), hw / comm->local_size())));
  }

  // Resume: the weights come from the checkpoint, everything else from the base model folder.
  fs::path resume_dir;
  if (!cfg.resume_from_checkpoint.empty()) {
    resume_dir = cfg.resume_from_checkpoint == "last" ? train::last_checkpoint(cfg.output_dir)
                                                      : fs::path(cfg.resume_from_checkpoint);
    SFT_CHECK(fs::exists(resume_dir / "trainer_state.json"), "--resume_from_checkpoint: ", resume_dir.string(),
              " is not a checkpoint folder (no trainer_state.json)");
  }
  if (!cfg.use_peft && (cfg.lora_r != 16 || cfg.lora_alpha != 32 || cfg.lora_dropout != 0.05 || cfg.use_rslora ||
                        !cfg.lora_target_modules.empty() || !cfg.lora_modules_to_save.empty()))
    std::printf("note: --lora_* flags ignored: full fine-tuning (add --use_peft for LoRA)\n");
  if (cfg.use_peft) {  // bad LoRA settings fail before anything is written
    const io::ModelConfig mc = model::load_config(fs::path(cfg.model_name_or_path) / "config.json");
    if (!cfg.adapter_name_or_path.empty()) {
      std::unique_ptr<io::SafetensorsFile> f;
      model::check_adapter(cfg.adapter_name_or_path, mc, f);
    } else {
      model::plan_lora(mc, cfg.lora_config(), 1);  // resolves target_modules / modules_to_save or throws
    }
  }
  if (root) train::prepare_output_dir(cfg, !resume_dir.empty());
  comm->barrier();  // nobody writes into output_dir before rank 0 has cleaned it

  // Data parallel: plain "cuda" means the GPU of the rank's local rank (one rank per GPU); "cuda:N" is kept.
  backend::DeviceSpec device = backend::parse_device(cfg.device);
  if (comm->world_size() > 1 && cfg.device == "cuda") device.index = comm->local_rank();
  auto be = backend::make_backend(device);
  if (comm->world_size() > 1 && device.kind == backend::DeviceSpec::Kind::Cuda) {
#ifdef SFT_HAVE_CUDA
    comm = parallel::make_nccl_communicator(std::move(comm), device.index);
#else
    throw Error("--device " + cfg.device + " with several ranks needs a CUDA build (NCCL)");
#endif
  }
  const fs::path base = cfg.model_name_or_path;
  tok::Tokenizer tokenizer = tok::Tokenizer::load(base);
  data::TokenizerEncoder encoder(tokenizer);

  data::PrepareOptions po = train::prepare_options(cfg);
  if (cfg.template_name == "model" || cfg.template_name == "auto") {
    // The folder's own Jinja chat template (as apply_chat_template renders it); "auto" falls back to alpaca.
    std::optional<jinja::ChatTemplate> t = cfg.template_name == "model"
                                               ? std::optional<jinja::ChatTemplate>(jinja::ChatTemplate::load_required(base))
                                               : jinja::ChatTemplate::load(base);
    if (t) {
      std::printf("template: the model's chat template (%s); loss on assistant turns + end-of-turn token\n",
                  t->origin().c_str());
      po.templ.tmpl = data::Template::Model;
      po.templ.chat_template = std::make_shared<jinja::ChatTemplate>(std::move(*t));
    } else {
      std::printf("template: %s has no chat template; --template auto uses alpaca\n", base.string().c_str());
    }
  }
  data::PreparedData prepared = data::prepare_dataset(po, encoder);
  std::fputs(data::format_read_report(prepared.train_read, cfg.dataset_path).c_str(), stdout);
  if (!cfg.eval_dataset_path.empty())
    std::fputs(data::format_read_report(prepared.eval_read, cfg.eval_dataset_path).c_str(), stdout);
  std::printf("training data: %s\n%s", cfg.dataset_path.c_str(),
              data::format_report(prepared.train_report, po.truncation).c_str());
  if (prepared.eval && !prepared.eval->empty())
    std::printf("evaluation data:\n%s", data::format_report(prepared.eval_report, po.truncation).c_str());

  const int32_t pad = tokenizer.pad_id().value_or(tokenizer.eos_id().value_or(0));
  data::LoaderOptions lo = train::train_loader_options(cfg, pad);
  lo.batch_size *= comm->world_size();  // data parallel: the global micro-batch; each rank trains on its slice
  data::DataLoader train_loader(prepared.train, lo);
  std::unique_ptr<data::DataLoader> eval_loader;
  if (prepared.eval && !prepared.eval->empty())
    eval_loader = std::make_unique<data::DataLoader>(prepared.eval, train::eval_loader_options(cfg, pad));

  const auto precision = cfg.use_bf16() ? model::Precision::BF16 : model::Precision::F32;
  std::unique_ptr<model::Model> m;
  if (cfg.use_peft) {
    // LoRA: the base stays the base folder; the adapter is new, continued (--adapter_name_or_path) or the checkpoint's
    model::LoraOptions lo_opts;
    lo_opts.config = cfg.lora_config();
    lo_opts.seed = cfg.seed;
    lo_opts.adapter_dir = !resume_dir.empty() ? resume_dir : fs::path(cfg.adapter_name_or_path);
    if (!resume_dir.empty())
      SFT_CHECK(fs::exists(resume_dir / "adapter_config.json"), "--resume_from_checkpoint: ", resume_dir.string(),
                " holds no adapter (a full fine-tuning checkpoint): resume it without --use_peft");
    m = model::Model::load(base, *be, precision, &lo_opts);
  } else {
    SFT_CHECK(resume_dir.empty() || !fs::exists(resume_dir / "adapter_config.json"), "--resume_from_checkpoint: ",
              resume_dir.string(), " is a LoRA checkpoint: resume it with --use_peft");
    m = model::Model::load(resume_dir.empty() ? base : resume_dir, *be, precision);
  }

  m->set_gradient_checkpointing(cfg.gradient_checkpointing);
  if (cfg.gradient_checkpointing)
    std::printf("gradient checkpointing: each layer's forward runs again in the backward (activations of one layer "
                "kept instead of %lld)\n", static_cast<long long>(m->config().num_hidden_layers));

  train::TrainJob job;
  job.cfg = cfg;
  job.model = m.get();
  job.train = &train_loader;
  job.eval = eval_loader.get();
  job.base_model_dir = base;
  job.resume_dir = resume_dir;
  job.comm = comm.get();
  ConsoleObserver obs(cfg.disable_tqdm);
  const train::TrainSummary s = train::run_training(job, obs);
  obs.clear_bar();
  if (comm->rank() == 0) save_gguf_after_training(cfg, base, s.output_dir);  // --save_gguf
  char loss[64];
  if (std::isfinite(s.final_loss)) std::snprintf(loss, sizeof loss, "%.4f", s.final_loss);
  else std::snprintf(loss, sizeof loss, "n/a (no step was applied)");
  std::printf("done: %lld steps in %s, final loss %s; model saved to %s (loss curve: loss_curve.svg)\n",
              static_cast<long long>(s.steps), format_duration(s.seconds).c_str(), loss, s.output_dir.string().c_str());
  if (s.world_size > 1) {
    const double per_step = s.steps > 0 ? 1e3 / static_cast<double>(s.steps) : 0.0;  // s -> ms per optimizer step
    std::printf("data parallel: rank 0 spent %.2f s in collectives (%.1f ms per optimizer step) of %.1f s; per step: "
                "gradient exchange %.1f ms (%.1f%% of the step), longest wait for the slowest rank %.1f ms; "
                "%.1f%% of the positions computed were padding\n",
                s.comm_seconds, s.comm_seconds * per_step, s.seconds, s.exchange_seconds * per_step,
                s.steps_seconds > 0 ? 100.0 * s.exchange_seconds / s.steps_seconds : 0.0, s.max_wait_seconds * per_step,
                s.padded_positions > 0 ? 100.0 * (1.0 - static_cast<double>(s.tokens) / static_cast<double>(s.padded_positions)) : 0.0);
  } else if (s.padded_positions > 0) {  // micro-batches are right-padded to their longest row
    std::printf("batches: %.1f%% of the positions computed were padding\n",
                100.0 * (1.0 - static_cast<double>(s.tokens) / static_cast<double>(s.padded_positions)));
  }
}

void run_train(const std::vector<std::string>& args) {
  ParsedTrainArgs parsed = parse_train_args(args);
  if (parsed.help) {
    std::fputs(train_flags_help().c_str(), stdout);
    return;
  }
  parsed.cfg.validate();
  check_save_gguf(parsed.cfg);  // --save_gguf: a known type and a family with a GGUF mapping, before any training
  // mpirun / srun: one rank of several (MPI initialised here); a plain launch: world 1.
  std::unique_ptr<parallel::Communicator> comm = parallel::make_communicator_from_environment();
  if (comm->world_size() == 1) return train_in_this_process(parsed, comm);
  // A rank that fails must take the job down: the others would wait in the next collective (and MPI_Finalize
  // would wait for them). The error names the rank; abort ends every process of the job.
  const int rank = comm->rank(), world = comm->world_size();
  try {
    train_in_this_process(parsed, comm);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "sft: error: rank %d of %d: %s\n", rank, world, e.what());
    std::fflush(stderr);
    comm->abort(1);
  }
}

}  // namespace

void register_train(CLI::App& app) {
  auto* sub = app.add_subcommand("train", "fine-tune a model (HF TrainingArguments-style flags; --help lists them)");
  // Flags are parsed by parse_train_args (HF semantics, did-you-mean), so CLI11 hands everything over untouched.
  sub->prefix_command();
  sub->set_help_flag();
  sub->callback([sub] { run_train(sub->remaining()); });
}

}  // namespace sft::cli
