// parallel layer without MPI: launch detection from each launcher's environment and the single-process communicator
// (how rows are dealt to ranks: row_balance_test.cpp).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "parallel/communicator.h"
#include "util/error.h"

namespace {

using Vars = std::vector<std::pair<std::string, std::string>>;

// Sets environment variables for one test and restores the previous values.
class ScopedEnv {
 public:
  explicit ScopedEnv(const Vars& vars) {
    for (const char* k : kAll) {
      const char* v = std::getenv(k);
      saved_.push_back({k, v ? std::string(v) : std::string("\x01")});
      unsetenv(k);
    }
    for (auto& [k, v] : vars) setenv(k.c_str(), v.c_str(), 1);
  }
  ~ScopedEnv() {
    for (auto& [k, v] : saved_) {
      if (v == "\x01") unsetenv(k.c_str());
      else setenv(k.c_str(), v.c_str(), 1);
    }
  }
  static constexpr const char* kAll[] = {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
                                         "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID",
                                         "SLURM_STEP_ID", "SLURM_NTASKS_PER_NODE", "PMI_SIZE", "PMI_RANK"};

 private:
  std::vector<std::pair<std::string, std::string>> saved_;
};

TEST(Launch, PlainProcessIsWorldOne) {
  ScopedEnv env(Vars{});
  const auto li = sft::parallel::detect_launch();
  EXPECT_FALSE(li.distributed);
  EXPECT_EQ(li.world_size, 1);
  EXPECT_EQ(li.launcher, "none");
  auto c = sft::parallel::make_communicator_from_environment();
  EXPECT_EQ(c->name(), "single");
}

TEST(Launch, OpenMpiEnvironment) {
  ScopedEnv env(Vars{{"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                 {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}});
  const auto li = sft::parallel::detect_launch();
  EXPECT_TRUE(li.distributed);
  EXPECT_EQ(li.world_size, 4);
  EXPECT_EQ(li.rank, 3);
  EXPECT_EQ(li.local_rank, 1);
  EXPECT_EQ(li.local_size, 2);
}

TEST(Launch, SrunStepButNotBatchShell) {
  {
    ScopedEnv env(Vars{{"SLURM_NTASKS", "8"}, {"SLURM_PROCID", "5"}, {"SLURM_LOCALID", "1"}, {"SLURM_STEP_ID", "0"},
                   {"SLURM_NTASKS_PER_NODE", "4"}});
    const auto li = sft::parallel::detect_launch();
    EXPECT_TRUE(li.distributed);
    EXPECT_EQ(li.launcher, "srun (Slurm)");
    EXPECT_EQ(li.rank, 5);
    EXPECT_EQ(li.world_size, 8);
    EXPECT_EQ(li.local_rank, 1);
    EXPECT_EQ(li.local_size, 4);
  }
  {  // the batch script's own shell: the allocation has 8 tasks, but no rank was started
    ScopedEnv env(Vars{{"SLURM_NTASKS", "8"}, {"SLURM_PROCID", "0"}, {"SLURM_STEP_ID", "batch"}});
    EXPECT_FALSE(sft::parallel::detect_launch().distributed);
  }
}

TEST(Launch, BadValueIsAnError) {
  ScopedEnv env(Vars{{"OMPI_COMM_WORLD_SIZE", "two"}});
  EXPECT_THROW(sft::parallel::detect_launch(), sft::Error);
}

TEST(SingleProcess, CollectivesAreIdentity) {
  auto c = sft::parallel::make_single_process_communicator();
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->world_size(), 1);
  double d[2] = {1.5, -2.0};
  c->all_reduce_sum(d, 2);
  EXPECT_EQ(d[1], -2.0);
  float in[3] = {1, 2, 3}, out[3] = {0, 0, 0};
  c->reduce_scatter_sum(in, out, 3);
  EXPECT_EQ(out[2], 3.0f);
  EXPECT_EQ(sft::parallel::broadcast_string(*c, "state"), "state");
}

}  // namespace
