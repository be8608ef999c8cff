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
};

// progress(task_index, doc_index, docs_in_task) is called after every doc (the CLI prints from it).
using Progress = std::function<void(size_t, int64_t, int64_t)>;
EvalResults evaluate(Scorer& scorer, std::vector<Task> tasks, const Progress& progress = {});

// Helpers exposed for tests.
DocResult score_doc(const Doc& doc, const std::vector<LoglikelihoodResult>& results, int64_t doc_id);
Metric mean_metric(const std::string& name, const std::vector<double>& values);
Metric pooled_metric(const std::string& name, const std::vector<Metric>& per_task, const std::vector<int64_t>& sizes);
std::vector<GroupResult> mmlu_groups(const std::vector<TaskResult>& tasks);

}  // namespace sft::eval
