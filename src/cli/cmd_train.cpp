// `sft train`: flags (cli/train_flags.cpp, the settings table of train/train_settings.h) -> train::Job::open (data,
// device, model; train/job.h) -> Job::run, printing what the job reports (cli/train_console.h).
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/train_console.h"
#include "cli/train_flags.h"
#include "parallel/communicator.h"
#include "train/job.h"
#include "util/error.h"

namespace sft::cli {

namespace {

void train_in_this_process(const ParsedTrainArgs& parsed, std::unique_ptr<parallel::Communicator>& comm) {
  const train::TrainConfig& cfg = parsed.cfg;
  // Rank 0 alone prints (the table, the report); the others keep stderr for their errors.
  if (comm->rank() != 0) {
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
  ConsoleObserver obs(cfg.disable_tqdm);
  const std::unique_ptr<train::Job> job = train::Job::open(cfg, comm, obs);
  const train::TrainSummary summary = job->run(obs);
  obs.clear_bar();
  print_summary(summary);
}

void run_train(const std::vector<std::string>& args) {
  ParsedTrainArgs parsed = parse_train_args(args);
  if (parsed.help) {
    std::fputs(train_flags_help().c_str(), stdout);
    return;
  }
  parsed.cfg.validate();
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
