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
#include "dist/communicator.h"
#ifdef SFT_HAVE_CUDA
#include "dist/nccl/nccl_communicator.h"
#endif
#include "model/model.h"
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

// Prints the loss table; on a terminal also a one-line progress bar with ETA, repainted in place.
class ConsoleObserver final : public train::TrainObserver {
 public:
  ConsoleObserver() : tty_(isatty(STDOUT_FILENO) == 1) {}

  void on_begin(const train::TrainPlan& p) override {
    std::printf("training: %lld optimizer steps (%lld warmup), %lld micro-batches per epoch, %lld parameters\n",
                static_cast<long long>(p.total_steps), static_cast<long long>(p.warmup_steps),
                static_cast<long long>(p.batches_per_epoch), static_cast<long long>(p.num_parameters));
    if (p.start_step > 0) std::printf("resuming at step %lld\n", static_cast<long long>(p.start_step));
    start_step_ = p.start_step;
    std::printf("%-8s%-15s%-15s%-11s%-10s%s\n", "Step", "Training Loss", "Learning Rate", "Grad Norm", "Tokens/s",
                "Model GFLOP/s");
    std::fflush(stdout);
  }
  void on_step(int64_t step, int64_t total, double loss, double elapsed) override {
    if (!tty_) return;
    const double done = static_cast<double>(step - start_step_), left = static_cast<double>(total - step);
    const double eta = done > 0 ? elapsed / done * left : NAN;
    const int width = 30, fill = static_cast<int>(width * static_cast<double>(step) / static_cast<double>(total));
    std::string bar(static_cast<size_t>(fill), '#');
    bar.resize(width, '.');
    std::printf("\r\033[K[%s] %lld/%lld loss %.4f elapsed %s ETA %s", bar.c_str(), static_cast<long long>(step),
                static_cast<long long>(total), loss, format_duration(elapsed).c_str(), format_duration(eta).c_str());
    std::fflush(stdout);
    bar_shown_ = true;
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
  bool tty_;
  bool bar_shown_ = false;
  int64_t start_step_ = 0;
};

void train_in_this_process(ParsedTrainArgs& parsed, std::unique_ptr<dist::Communicator>& comm) {
  train::TrainConfig& cfg = parsed.cfg;
  const bool root = comm->rank() == 0;
  // Rank 0 alone prints (the table, the report); the others keep stderr for their errors.
  if (!root) {
    std::fflush(stdout);
    SFT_CHECK(std::freopen("/dev/null", "w", stdout) != nullptr, "cannot silence stdout of rank ", comm->rank());
  }
  if (comm->world_size() > 1) {
    const dist::LaunchInfo li = dist::detect_launch();
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
  if (root) train::prepare_output_dir(cfg, !resume_dir.empty());
  comm->barrier();  // nobody writes into output_dir before rank 0 has cleaned it

  // Data parallel: plain "cuda" means the GPU of the rank's local rank (one rank per GPU); "cuda:N" is kept.
  backend::DeviceSpec device = backend::parse_device(cfg.device);
  if (comm->world_size() > 1 && cfg.device == "cuda") device.index = comm->local_rank();
  auto be = backend::make_backend(device);
  if (comm->world_size() > 1 && device.kind == backend::DeviceSpec::Kind::Cuda) {
#ifdef SFT_HAVE_CUDA
    comm = dist::make_nccl_communicator(std::move(comm), device.index);
#else
    throw Error("--device " + cfg.device + " with several ranks needs a CUDA build (NCCL)");
#endif
  }
  const fs::path base = cfg.model_name_or_path;
  tok::Tokenizer tokenizer = tok::Tokenizer::load(base);
  data::TokenizerEncoder encoder(tokenizer);

  const data::PrepareOptions po = train::prepare_options(cfg);
  data::PreparedData prepared = data::prepare_dataset(po, encoder);
  if (prepared.train_read.rows_skipped > 0) {
    std::printf("skipped %lld bad rows of %lld (--skip_bad_rows):\n",
                static_cast<long long>(prepared.train_read.rows_skipped),
                static_cast<long long>(prepared.train_read.rows_seen));
    for (const auto& m : prepared.train_read.skip_messages) std::printf("  %s\n", m.c_str());
  }
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
  auto m = model::Model::load(resume_dir.empty() ? base : resume_dir, *be, precision);

  train::TrainJob job;
  job.cfg = cfg;
  job.model = m.get();
  job.train = &train_loader;
  job.eval = eval_loader.get();
  job.base_model_dir = base;
  job.resume_dir = resume_dir;
  job.comm = comm.get();
  ConsoleObserver obs;
  const train::TrainSummary s = train::run_training(job, obs);
  obs.clear_bar();
  std::printf("done: %lld steps in %s, final loss %.4f; model saved to %s (loss curve: loss_curve.svg)\n",
              static_cast<long long>(s.steps), format_duration(s.seconds).c_str(), s.final_loss,
              s.output_dir.string().c_str());
  if (s.world_size > 1)
    std::printf("data parallel: rank 0 spent %.2f s in collectives (%.1f ms per optimizer step) of %.1f s\n",
                s.comm_seconds, s.steps > 0 ? 1e3 * s.comm_seconds / static_cast<double>(s.steps) : 0.0, s.seconds);
}

void run_train(const std::vector<std::string>& args) {
  ParsedTrainArgs parsed = parse_train_args(args);
  if (parsed.help) {
    std::fputs(train_flags_help().c_str(), stdout);
    return;
  }
  parsed.cfg.validate();
  // mpirun / srun: one rank of several (MPI initialised here); a plain launch: world 1.
  std::unique_ptr<dist::Communicator> comm = dist::make_communicator_from_environment();
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
