// Runs tasks through the Scorer and computes lm-eval's metrics:
//  - per doc: acc = [argmax(ll) == gold], acc_norm = [argmax(ll / len(choice)) == gold] with len in code points of the
//    choice WITHOUT the target delimiter (ConfigurableTask.process_results); np.argmax: first maximum wins;
//  - per task: mean, and stderr = sample stddev (n-1) / sqrt(n) ("N/A" below 2 docs);
//  - groups (mmlu, mmlu_stem, ...): mean weighted by task size over the LEAF tasks that ran, stderr =
//    pooled_sample_stderr(stderrs, sizes) = sqrt(sum((n_i-1) * se_i^2 * n_i) / (N - k) / N) (lm_eval/api/group.py).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "eval/scorer.h"
#include "eval/tasks.h"

namespace sft::eval {

struct DocResult {
  int64_t doc_id = 0;
  std::vector<double> lls;
  std::vector<bool> is_greedy;
  double acc = 0, acc_norm = 0;
};

struct Metric {
  std::string name;             // "acc", "acc_norm"
  double value = 0;
  std::optional<double> stderr_;  // nullopt = "N/A"
};

struct TaskResult {
  Task task;
  std::vector<DocResult> docs;
  std::vector<Metric> metrics;
  double seconds = 0;
};

struct GroupResult {
  std::string name, alias;  // "mmlu"/"mmlu", "mmlu_stem"/"stem"
  int version = 2;
  int64_t size = 0;
  int depth = 0;            // 0 = top group, 1 = subgroup (for the table's indentation)
  std::vector<Metric> metrics;
};

struct EvalResults {
  std::vector<TaskResult> tasks;
  std::vector<GroupResult> groups;
  double seconds = 0;
  ScorerStats stats;
  int64_t resumed_docs = 0;  // documents whose scores came from the --use_cache results cache
  double cpu_seconds = 0;    // process CPU time (all threads) spent in evaluate(): robust to a loaded machine
};

// Reported after every scored chunk of documents (the CLI prints it; the layer never prints).
struct ProgressInfo {
  size_t task_index = 0, n_tasks = 0;
  std::string task;
  int64_t task_done = 0, task_docs = 0;  // documents of this task done / in it
  int64_t done = 0, total = 0;           // documents of all tasks done / in all
  int64_t resumed = 0;                   // documents taken from the results cache so far (not scored in this run)
  double elapsed_s = 0;                  // since evaluate() started
  double docs_per_s = 0;                 // scored (not resumed) documents per second so far
  double eta_s = -1;                     // remaining seconds at that rate (-1 until known)
};
using Progress = std::function<void(const ProgressInfo&)>;

struct EvalOptions {
  BatchLimits batch;          // --batch_size
  int64_t chunk_docs = 64;    // documents per score_docs() call (progress / cache granularity)
  // --use_cache DIR: per-task results cache (see results_cache.h); empty = none. `cache_identity` names the model
  // and settings the scores depend on (the CLI builds it); the requests themselves are hashed in here.
  std::string cache_dir, cache_identity;
};
EvalResults evaluate(Scorer& scorer, std::vector<Task> tasks, const Progress& progress = {},
                     const EvalOptions& opts = {});

// Helpers exposed for tests.
DocResult score_doc(const Doc& doc, const std::vector<LoglikelihoodResult>& results, int64_t doc_id);
Metric mean_metric(const std::string& name, const std::vector<double>& values);
Metric pooled_metric(const std::string& name, const std::vector<Metric>& per_task, const std::vector<int64_t>& sizes);
std::vector<GroupResult> mmlu_groups(const std::vector<TaskResult>& tasks);

}  // namespace sft::eval
