#include "eval/evaluator.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>

#include "eval/mmlu_subjects.h"
#include "eval/py_text.h"
#include "eval/results_cache.h"
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

EvalResults evaluate(Scorer& scorer, std::vector<Task> tasks, const Progress& progress, const EvalOptions& opts) {
  using clock = std::chrono::steady_clock;
  EvalResults res;
  const auto t0 = clock::now();
  const std::clock_t cpu0 = std::clock();
  auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  ProgressInfo info;
  info.n_tasks = tasks.size();
  for (const auto& t : tasks) info.total += static_cast<int64_t>(t.docs.size());
  double scoring_s = 0;
  int64_t scored = 0;
  const size_t chunk_docs = static_cast<size_t>(std::max(opts.chunk_docs, opts.batch.max_docs));
  for (size_t ti = 0; ti < tasks.size(); ++ti) {
    TaskResult tr;
    tr.task = std::move(tasks[ti]);
    const auto ts = clock::now();
    const auto& task = tr.task;
    const int64_t n = static_cast<int64_t>(task.docs.size());
    ResultsCache cache = opts.cache_dir.empty() ? ResultsCache()
                                                : ResultsCache(opts.cache_dir, opts.cache_identity, task.name);
    std::vector<std::vector<std::string>> conts(n);
    std::vector<std::string> keys(n);
    std::vector<std::vector<LoglikelihoodResult>> lls(n);
    std::vector<int64_t> todo;
    for (int64_t d = 0; d < n; ++d) {
      for (const auto& c : task.docs[d].choices) conts[d].push_back(task.target_delimiter + c);
      if (cache.enabled()) keys[d] = ResultsCache::doc_key(task.contexts[d], conts[d]);
      const auto* hit = cache.enabled() ? cache.find(keys[d]) : nullptr;
      if (hit && hit->size() == conts[d].size()) lls[d] = *hit;
      else todo.push_back(d);
    }
    info.resumed += n - static_cast<int64_t>(todo.size());
    info.done += n - static_cast<int64_t>(todo.size());
    info.task_index = ti;
    info.task = task.name;
    info.task_docs = n;
    info.task_done = n - static_cast<int64_t>(todo.size());
    auto last_save = clock::now();
    for (size_t c0 = 0; c0 < todo.size(); c0 += chunk_docs) {
      const size_t c1 = std::min(todo.size(), c0 + chunk_docs);
      std::vector<std::pair<std::string, std::vector<std::string>>> chunk;
      for (size_t i = c0; i < c1; ++i) chunk.emplace_back(task.contexts[todo[i]], conts[todo[i]]);
      const auto cs = clock::now();
      auto scored_chunk = scorer.score_docs(chunk, opts.batch);
      scoring_s += since(cs);
      for (size_t i = c0; i < c1; ++i) {
        lls[todo[i]] = std::move(scored_chunk[i - c0]);
        cache.put(keys[todo[i]], lls[todo[i]]);
      }
      scored += static_cast<int64_t>(c1 - c0);
      info.done += static_cast<int64_t>(c1 - c0);
      info.task_done += static_cast<int64_t>(c1 - c0);
      if (cache.enabled() && (c1 == todo.size() || since(last_save) > 30.0)) {  // checkpoint
        cache.save();
        last_save = clock::now();
      }
      info.elapsed_s = since(t0);
      info.docs_per_s = scoring_s > 0 ? static_cast<double>(scored) / scoring_s : 0;
      info.eta_s = info.docs_per_s > 0 ? static_cast<double>(info.total - info.done) / info.docs_per_s : -1;
      if (progress) progress(info);
    }
    if (todo.empty() && progress) {
      info.elapsed_s = since(t0);
      progress(info);
    }
    std::vector<double> acc, acc_norm;
    for (int64_t d = 0; d < n; ++d) {
      tr.docs.push_back(score_doc(task.docs[d], lls[d], d));
      acc.push_back(tr.docs.back().acc);
      acc_norm.push_back(tr.docs.back().acc_norm);
    }
    tr.metrics.push_back(mean_metric("acc", acc));
    if (task.has_acc_norm) tr.metrics.push_back(mean_metric("acc_norm", acc_norm));
    tr.seconds = since(ts);
    res.tasks.push_back(std::move(tr));
  }
  res.groups = mmlu_groups(res.tasks);
  res.seconds = since(t0);
  res.stats = scorer.stats();
  res.resumed_docs = info.resumed;
  res.cpu_seconds = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
  return res;
}

}  // namespace sft::eval
