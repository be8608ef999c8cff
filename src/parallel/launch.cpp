#include <cstdlib>
#include <string>

#include "parallel/communicator.h"
#include "util/error.h"

namespace sft::parallel {

namespace {

// Returns -1 when the variable is unset; throws on a value that is not a non-negative integer.
int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  SFT_CHECK(end && *end == '\0' && x >= 0 && x < (1L << 30), "environment variable ", name, "='", v,
            "' is not a rank/size number");
  return static_cast<int>(x);
}

}  // namespace

LaunchInfo detect_launch() {
  LaunchInfo li;
  li.launcher = "none";
  if (int size = env_int("OMPI_COMM_WORLD_SIZE"); size > 0) {
    li.launcher = "mpirun (Open MPI)";
    li.world_size = size;
    li.rank = std::max(0, env_int("OMPI_COMM_WORLD_RANK"));
    li.local_rank = std::max(0, env_int("OMPI_COMM_WORLD_LOCAL_RANK"));
    li.local_size = std::max(1, env_int("OMPI_COMM_WORLD_LOCAL_SIZE"));
  } else if (int size = env_int("SLURM_NTASKS"); size > 0 && env_int("SLURM_PROCID") >= 0 &&
                                                   std::getenv("SLURM_STEP_ID") != nullptr) {
    // Inside a job step started by srun. A batch script's own shell also carries SLURM_NTASKS (the allocation's
    // tasks, not processes started), but its step id is the batch/extern step: only a real step counts.
    const std::string step = std::getenv("SLURM_STEP_ID");
    if (step != "batch" && step != "extern" && step != "4294967294" && step != "4294967295") {
      li.launcher = "srun (Slurm)";
      li.world_size = size;
      li.rank = env_int("SLURM_PROCID");
      li.local_rank = std::max(0, env_int("SLURM_LOCALID"));
      const int per_node = env_int("SLURM_NTASKS_PER_NODE");
      li.local_size = per_node > 0 ? per_node : 1;
    }
  } else if (int size = env_int("PMI_SIZE"); size > 0) {
    li.launcher = "PMI";
    li.world_size = size;
    li.rank = std::max(0, env_int("PMI_RANK"));
  }
  li.distributed = li.world_size > 1;
  return li;
}

std::unique_ptr<Communicator> make_communicator_from_environment() {
  const LaunchInfo li = detect_launch();
  if (!li.distributed) return make_single_process_communicator();
  SFT_CHECK(mpi_available(), "launched as rank ", li.rank, " of ", li.world_size, " by ", li.launcher,
            " but this sft was built without MPI (install libopenmpi-dev and rebuild)");
  auto c = make_mpi_communicator();
  SFT_CHECK(c->world_size() == li.world_size, "MPI reports ", c->world_size(), " ranks but ", li.launcher,
            " started ", li.world_size, " (is sft linked against the MPI of this launcher?)");
  return c;
}

std::string broadcast_string(Communicator& comm, std::string s, int root) {
  if (comm.world_size() == 1) return s;
  int64_t n = static_cast<int64_t>(s.size());
  comm.broadcast_host(&n, sizeof n, root);
  s.resize(static_cast<size_t>(n));
  if (n > 0) comm.broadcast_host(s.data(), s.size(), root);
  return s;
}

}  // namespace sft::parallel
