#include "eval/evaluator.h"

#include <chrono>
#include <cmath>

#include "eval/mmlu_subjects.h"
#include "eval/py_text.h"
#include "util/error.h"

namespace sft::eval {

DocResult score_doc(const Doc& doc, const std::vector<LoglikelihoodResult>& results, int64_t doc_id) {
  SFT_CHECK(results.size() == doc.choices.size(), "score_doc: ", results.size(), " results for ", doc.choices.size(),
            " choices");
  DocResult r;
  r.doc_id = doc_id;
  size_t pred = 0, pred_norm = 0;
  double best = -INFINITY, best_norm = -INFINITY;
  for (size_t i = 0; i < results.size(); ++i) {
    double ll = results[i].logprob;
    double norm = ll / static_cast<double>(py_len(doc.choices[i]));
    r.lls.push_back(ll);
    r.is_greedy.push_back(results[i].is_greedy);
    if (ll > best) best = ll, pred = i;  // strict '>' keeps the first maximum, as np.argmax
    if (norm > best_norm) best_norm = norm, pred_norm = i;
  }
  r.acc = static_cast<int>(pred) == doc.gold ? 1.0 : 0.0;
  r.acc_norm = static_cast<int>(pred_norm) == doc.gold ? 1.0 : 0.0;
  return r;
}

Metric mean_metric(const std::string& name, const std::vector<double>& v) {
  Metric m;
  m.name = name;
  SFT_CHECK(!v.empty(), "metric ", name, " over zero documents");
  double sum = 0;
  for (double x : v) sum += x;
  m.value = sum / static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - m.value) * (x - m.value);
    m.stderr_ = std::sqrt(ss / static_cast<double>(v.size() - 1)) / std::sqrt(static_cast<double>(v.size()));
  }
  return m;
}

Metric pooled_metric(const std::string& name, const std::vector<Metric>& per_task, const std::vector<int64_t>& sizes) {
  Metric m;
  m.name = name;
  double weighted = 0, total = 0, pooled = 0;
  bool all_stderr = true;
  for (size_t i = 0; i < per_task.size(); ++i) {
    double n = static_cast<double>(sizes[i]);
    weighted += per_task[i].value * n;
    total += n;
    if (per_task[i].stderr_) pooled += (n - 1) * (*per_task[i].stderr_) * (*per_task[i].stderr_) * n;
    else all_stderr = false;
  }
  m.value = weighted / total;
  double dof = total - static_cast<double>(per_task.size());
  if (all_stderr && dof > 0) m.stderr_ = std::sqrt(pooled / dof / total);
  return m;
}

std::vector<GroupResult> mmlu_groups(const std::vector<TaskResult>& tasks) {
  std::vector<GroupResult> out;
  auto make = [&](const std::string& name, const std::string& alias, int depth, auto pred) {
    std::vector<Metric> accs;
    std::vector<int64_t> sizes;
    for (const auto& t : tasks)
      if (pred(t)) {
        accs.push_back(t.metrics.at(0));
        sizes.push_back(static_cast<int64_t>(t.docs.size()));
      }
    if (accs.empty()) return;
    GroupResult g;
    g.name = name;
    g.alias = alias;
    g.depth = depth;
    for (auto s : sizes) g.size += s;
    g.metrics.push_back(pooled_metric("acc", accs, sizes));
    out.push_back(std::move(g));
  };
  int n_mmlu = 0;
  for (const auto& t : tasks) n_mmlu += !t.task.group.empty();
  if (n_mmlu < 2) return out;  // a single subject is its own result
  make("mmlu", "mmlu", 0, [](const TaskResult& t) { return !t.task.group.empty(); });
  for (const char* cat : {"humanities", "other", "social_sciences", "stem"}) {
    std::string g = std::string("mmlu_") + cat;
    make(g, mmlu_category_alias(cat), 1, [&](const TaskResult& t) { return t.task.group == g; });
  }
  return out;
}

EvalResults evaluate(Scorer& scorer, std::vector<Task> tasks, const Progress& progress) {
  EvalResults res;
  auto t0 = std::chrono::steady_clock::now();
  for (size_t ti = 0; ti < tasks.size(); ++ti) {
    TaskResult tr;
    tr.task = std::move(tasks[ti]);
    auto ts = std::chrono::steady_clock::now();
    const auto& task = tr.task;
    std::vector<double> acc, acc_norm;
    for (size_t d = 0; d < task.docs.size(); ++d) {
      std::vector<std::string> conts;
      for (const auto& c : task.docs[d].choices) conts.push_back(task.target_delimiter + c);
      auto lls = scorer.score(task.contexts[d], conts);
      tr.docs.push_back(score_doc(task.docs[d], lls, static_cast<int64_t>(d)));
      acc.push_back(tr.docs.back().acc);
      acc_norm.push_back(tr.docs.back().acc_norm);
      if (progress) progress(ti, static_cast<int64_t>(d) + 1, static_cast<int64_t>(task.docs.size()));
    }
    tr.metrics.push_back(mean_metric("acc", acc));
    if (task.has_acc_norm) tr.metrics.push_back(mean_metric("acc_norm", acc_norm));
    tr.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    res.tasks.push_back(std::move(tr));
  }
  res.groups = mmlu_groups(res.tasks);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.stats = scorer.stats();
  return res;
}

}  // namespace sft::eval
