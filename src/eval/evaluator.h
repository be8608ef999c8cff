// Runs tasks through the Scorer and computes lm-eval's metrics, by the task row's output type:
//  - multiple choice (and partial evaluation): acc = [argmax(ll) == gold], acc_norm = [argmax(ll / len(choice)) ==
//    gold] with len in code points of the choice WITHOUT the target delimiter (ConfigurableTask.process_results);
//    np.argmax: first maximum wins;
//  - mc2 (truthfulqa utils.process_results_mc2): p = exp(ll), p / sum(p), summed over the true answers;
//  - generate_until: each filter's answer (filters.h) against doc_to_target with the metric's exact_match options;
//  - per task and metric: mean, and stderr = sample stddev (n-1) / sqrt(n) ("N/A" below 2 docs);
//  - MMLU groups (mmlu, mmlu_stem, ...): mean weighted by task size over the LEAF tasks that ran, stderr =
//    pooled_sample_stderr(stderrs, sizes) = sqrt(sum((n_i-1) * se_i^2 * n_i) / (N - k) / N) (lm_eval/api/group.py);
//  - summary groups of the table (leaderboard_v1): the plain mean of the members' headline metrics, stderr =
//    sqrt(sum se_i^2) / k (the members' scores treated as independent).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "eval/scorer.h"
#include "eval/tasks.h"

namespace sft::eval {

struct DocResult {
  int64_t doc_id = 0;
  std::vector<double> lls;
  std::vector<bool> is_greedy;
  double acc = 0, acc_norm = 0;  // multiple choice; mc2: acc is the true answers' probability mass
  Generation generation;         // generate_until
  // Per "metric,filter" key (lm-eval's results keys): this document's score, and for generate_until the filtered
  // answer of each filter.
  std::vector<std::pair<std::string, double>> scores;
  std::vector<std::pair<std::string, std::string>> filtered;  // filter name -> answer
};

struct Metric {
  std::string name;             // "acc", "acc_norm", "exact_match", "average"
  double value = 0;
  std::optional<double> stderr_;  // nullopt = "N/A"
  std::string filter = "none";  // generate_until: the filter that produced the answers
};

struct TaskResult {
  Task task;
  std::vector<DocResult> docs;
  std::vector<Metric> metrics;
  double seconds = 0;
};

struct GroupResult {
  std::string name, alias;  // "mmlu"/"mmlu", "mmlu_stem"/"stem", "leaderboard_v1"
  int version = 2;
  int64_t size = 0;
  int depth = 0;            // 0 = top group, 1 = subgroup (for the table's indentation)
  std::string parent;       // the group a subgroup belongs to ("mmlu" for mmlu_stem)
  std::vector<std::string> members;  // summary groups: the tasks / groups averaged
  std::vector<Metric> metrics;
};

struct EvalResults {
  std::vector<TaskResult> tasks;
  std::vector<GroupResult> groups;
  double seconds = 0;
  double scoring_seconds = 0;  // wall time inside the model engines (scoring and generation)
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
  double docs_per_s = 0;                 // this task's scored (not resumed) documents per second so far
  double eta_s = -1;                     // remaining seconds: this task at its rate, later tasks at the overall rate
};
using Progress = std::function<void(const ProgressInfo&)>;

struct EvalOptions {
  BatchLimits batch;          // --batch_size
  GenerateLimits generation;  // generate_until batches
  std::vector<int32_t> eos_ids;  // the generation config's eos ids (generate_until stops on them)
  int64_t chunk_docs = 64;    // documents per score_docs() call (progress / cache granularity)
  int64_t chunk_generations = 64;  // documents per generate_until call (sorted by length inside; progress per batch)
  // --use_cache DIR: per-task results cache (see results_cache.h); empty = none. `cache_identity` names the model
  // and settings the scores depend on (the CLI builds it); the requests themselves are hashed in here.
  std::string cache_dir, cache_identity;
  std::vector<std::string> groups;  // summary groups of the table to report (plan_tasks().groups)
};
EvalResults evaluate(Scorer& scorer, std::vector<Task> tasks, const Progress& progress = {},
                     const EvalOptions& opts = {});

// Helpers exposed for tests.
DocResult score_doc(const Doc& doc, const std::vector<LoglikelihoodResult>& results, int64_t doc_id);
double mc2_score(const Doc& doc, const std::vector<LoglikelihoodResult>& results);
Metric mean_metric(const std::string& name, const std::vector<double>& values);
Metric pooled_metric(const std::string& name, const std::vector<Metric>& per_task, const std::vector<int64_t>& sizes);
std::vector<GroupResult> mmlu_groups(const std::vector<TaskResult>& tasks);
// A summary group's row from the task and group results (throws naming a member that did not run).
GroupResult summary_group(const GroupSpec& spec, const std::vector<TaskResult>& tasks,
                          const std::vector<GroupResult>& groups);

}  // namespace sft::eval
