#include "eval/evaluator.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>

#include "eval/filters.h"
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

double mc2_score(const Doc& doc, const std::vector<LoglikelihoodResult>& results) {
  SFT_CHECK(results.size() == doc.labels.size(), "mc2: ", results.size(), " results for ", doc.labels.size(), " labels");
  // np.exp(ll) / np.sum(np.exp(ll)), summed where labels == 1 (no max subtraction: the same float64 arithmetic).
  double total = 0, truth = 0;
  for (const auto& r : results) total += std::exp(r.logprob);
  for (size_t i = 0; i < results.size(); ++i)
    if (doc.labels[i] == 1) truth += std::exp(results[i].logprob) / total;
  return truth;
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
    g.parent = depth ? "mmlu" : "";
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

GroupResult summary_group(const GroupSpec& spec, const std::vector<TaskResult>& tasks,
                          const std::vector<GroupResult>& groups) {
  GroupResult g;
  g.name = spec.name;
  g.alias = spec.alias;
  g.version = 1;
  double sum = 0, var = 0;
  bool all_stderr = true;
  for (const auto& m : spec.members) {
    const Metric* found = nullptr;
    int64_t size = 0;
    for (const auto& t : tasks)
      if (t.task.name == m.name)
        for (const auto& x : t.metrics)
          if (x.name == m.metric && x.filter == m.filter) found = &x, size = static_cast<int64_t>(t.docs.size());
    for (const auto& gr : groups)
      if (gr.name == m.name)
        for (const auto& x : gr.metrics)
          if (x.name == m.metric && x.filter == m.filter) found = &x, size = gr.size;
    if (!found && m.name == "mmlu") {  // a single MMLU subject ran: it is the MMLU score
      for (const auto& t : tasks)
        if (!t.task.group.empty() && !t.metrics.empty()) found = &t.metrics[0], size = static_cast<int64_t>(t.docs.size());
    }
    SFT_CHECK(found, spec.name, ": member ", m.name, " (", m.metric, ",", m.filter, ") has no result");
    g.members.push_back(m.name);
    g.size += size;
    sum += found->value;
    if (found->stderr_) var += *found->stderr_ * *found->stderr_;
    else all_stderr = false;
  }
  const double k = static_cast<double>(spec.members.size());
  Metric avg;
  avg.name = spec.summary_metric;
  avg.value = sum / k;
  if (all_stderr) avg.stderr_ = std::sqrt(var) / k;
  g.metrics.push_back(avg);
  return g;
}

namespace {

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

// Progress bookkeeping shared by the scoring and the generation loops.
struct Tracker {
  ProgressInfo info;
  const Progress* progress = nullptr;
  clock_type::time_point t0 = clock_type::now();
  double engine_s = 0, task_engine_s = 0;  // wall seconds in the engines: all tasks / this task
  int64_t scored = 0, task_scored = 0;     // documents scored in this run: all / this task

  void start_task(size_t ti, const Task& t, int64_t resumed) {
    info.task_index = ti;
    info.task = t.name;
    info.task_docs = static_cast<int64_t>(t.docs.size());
    info.task_done = resumed;
    info.resumed += resumed;
    info.done += resumed;
    task_engine_s = 0;
    task_scored = 0;
  }
  void add(int64_t docs, double seconds) {
    engine_s += seconds, task_engine_s += seconds;
    scored += docs, task_scored += docs;
    info.done += docs, info.task_done += docs;
    report();
  }
  void report() {
    info.elapsed_s = since(t0);
    info.docs_per_s = task_engine_s > 0 ? static_cast<double>(task_scored) / task_engine_s : 0;
    const double overall = engine_s > 0 ? static_cast<double>(scored) / engine_s : 0;
    const int64_t task_left = info.task_docs - info.task_done;
    const int64_t later = info.total - info.done - task_left;
    info.eta_s = info.docs_per_s > 0 && overall > 0
                     ? static_cast<double>(task_left) / info.docs_per_s + static_cast<double>(later) / overall
                     : -1;
    if (*progress) (*progress)(info);
  }
};

ResultsCache open_cache(const EvalOptions& opts, const Task& task) {
  return opts.cache_dir.empty() ? ResultsCache() : ResultsCache(opts.cache_dir, opts.cache_identity, task.name);
}

// Log-likelihoods of every request of every document (multiple choice, partial evaluation, mc2).
std::vector<std::vector<LoglikelihoodResult>> score_task(Scorer& scorer, const Task& task, const EvalOptions& opts,
                                                         Tracker& tr, size_t ti) {
  const int64_t n = static_cast<int64_t>(task.docs.size());
  ResultsCache cache = open_cache(opts, task);
  std::vector<std::vector<Request>> reqs(n);
  std::vector<std::string> keys(n);
  std::vector<std::vector<LoglikelihoodResult>> lls(n);
  std::vector<int64_t> todo;
  for (int64_t d = 0; d < n; ++d) {
    reqs[d] = task.requests(static_cast<size_t>(d));
    if (cache.enabled()) {
      if (task.output == OutputType::MultipleChoicePartial) {
        keys[d] = ResultsCache::requests_key(reqs[d]);
      } else {  // one context: the key of earlier versions, so their caches stay valid
        std::vector<std::string> conts;
        for (const auto& r : reqs[d]) conts.push_back(r.second);
        keys[d] = ResultsCache::doc_key(task.contexts[static_cast<size_t>(d)], conts);
      }
    }
    const auto* hit = cache.enabled() ? cache.find(keys[d]) : nullptr;
    if (hit && hit->size() == reqs[d].size()) lls[d] = *hit;
    else todo.push_back(d);
  }
  tr.start_task(ti, task, n - static_cast<int64_t>(todo.size()));
  const size_t chunk_docs = static_cast<size_t>(std::max(opts.chunk_docs, opts.batch.max_docs));
  auto last_save = clock_type::now();
  for (size_t c0 = 0; c0 < todo.size(); c0 += chunk_docs) {
    const size_t c1 = std::min(todo.size(), c0 + chunk_docs);
    std::vector<std::vector<Request>> chunk;
    for (size_t i = c0; i < c1; ++i) chunk.push_back(reqs[todo[i]]);
    const auto cs = clock_type::now();
    auto scored = scorer.score_requests(chunk, opts.batch);
    const double secs = since(cs);
    for (size_t i = c0; i < c1; ++i) {
      lls[todo[i]] = std::move(scored[i - c0]);
      cache.put(keys[todo[i]], lls[todo[i]]);
    }
    if (cache.enabled() && (c1 == todo.size() || since(last_save) > 30.0)) {  // checkpoint
      cache.save();
      last_save = clock_type::now();
    }
    tr.add(static_cast<int64_t>(c1 - c0), secs);
  }
  if (todo.empty()) tr.report();
  return lls;
}

// generate_until: the generation of every document, batched, cached and resumable like the scores.
std::vector<Generation> generate_task(Scorer& scorer, const Task& task, const EvalOptions& opts, Tracker& tr,
                                      size_t ti) {
  const int64_t n = static_cast<int64_t>(task.docs.size());
  ResultsCache cache = open_cache(opts, task);
  UntilSettings settings{task.generation.until, task.generation.max_gen_toks, opts.eos_ids};
  // The settings are part of the key: another max_gen_toks or stop list never reuses a generation.
  std::string settings_text = "max_gen_toks=" + std::to_string(settings.max_gen_toks);
  for (const auto& u : settings.until) settings_text += "\x1f" + u;
  for (int32_t e : settings.eos_ids) settings_text += "\x1e" + std::to_string(e);
  std::vector<std::string> keys(n);
  std::vector<Generation> gens(n);
  std::vector<int64_t> todo;
  for (int64_t d = 0; d < n; ++d) {
    if (cache.enabled()) keys[d] = ResultsCache::requests_key({{task.contexts[static_cast<size_t>(d)], settings_text}});
    const Generation* hit = cache.enabled() ? cache.find_generation(keys[d]) : nullptr;
    if (hit) gens[d] = *hit;
    else todo.push_back(d);
  }
  tr.start_task(ti, task, n - static_cast<int64_t>(todo.size()));
  const size_t chunk = static_cast<size_t>(std::max<int64_t>(1, opts.chunk_generations));
  auto last_save = clock_type::now();
  for (size_t c0 = 0; c0 < todo.size(); c0 += chunk) {
    const size_t c1 = std::min(todo.size(), c0 + chunk);
    std::vector<std::string> contexts;
    for (size_t i = c0; i < c1; ++i) contexts.push_back(task.contexts[static_cast<size_t>(todo[i])]);
    auto batch_start = clock_type::now();
    auto out = scorer.generate_until(contexts, settings, opts.generation, [&](int64_t n) {  // progress per batch
      tr.add(n, since(batch_start));
      batch_start = clock_type::now();
    });
    for (size_t i = c0; i < c1; ++i) {
      gens[todo[i]] = std::move(out[i - c0]);
      cache.put_generation(keys[todo[i]], gens[todo[i]]);
    }
    if (cache.enabled() && (c1 == todo.size() || since(last_save) > 30.0)) {
      cache.save();
      last_save = clock_type::now();
    }
  }
  if (todo.empty()) tr.report();
  return gens;
}

// Per-document scores and the task's metrics.
void compute_metrics(TaskResult& tr, const std::vector<std::vector<LoglikelihoodResult>>& lls,
                     std::vector<Generation>& gens) {
  const Task& task = tr.task;
  const int64_t n = static_cast<int64_t>(task.docs.size());
  if (task.output == OutputType::GenerateUntil) {
    std::vector<FilterSpec> filters = task.filters;
    if (filters.empty()) filters.push_back({"none", {{}}});  // lm-eval's default: take_first, named "none"
    for (int64_t d = 0; d < n; ++d) {
      DocResult r;
      r.doc_id = d;
      r.generation = std::move(gens[static_cast<size_t>(d)]);
      tr.docs.push_back(std::move(r));
    }
    for (const auto& f : filters) {
      const AnswerFilter filter(f);
      for (const auto& spec : task.metrics) {
        const ExactMatch em(spec);
        std::vector<double> values;
        for (int64_t d = 0; d < n; ++d) {
          DocResult& r = tr.docs[static_cast<size_t>(d)];
          const std::string answer = filter.apply(r.generation.text);
          const double v = em.score(answer, task.docs[static_cast<size_t>(d)].target);
          r.filtered.emplace_back(f.name, answer);
          r.scores.emplace_back(spec.name + "," + f.name, v);
          values.push_back(v);
        }
        Metric m = mean_metric(spec.name, values);
        m.filter = f.name;
        tr.metrics.push_back(m);
      }
    }
    return;
  }
  for (int64_t d = 0; d < n; ++d) {
    const Doc& doc = task.docs[static_cast<size_t>(d)];
    DocResult r = score_doc(doc, lls[static_cast<size_t>(d)], d);
    if (task.output == OutputType::LoglikelihoodMc2) r.acc = mc2_score(doc, lls[static_cast<size_t>(d)]);
    for (const auto& spec : task.metrics)
      r.scores.emplace_back(spec.name + ",none", spec.kind == MetricKind::AccNorm ? r.acc_norm : r.acc);
    tr.docs.push_back(std::move(r));
  }
  for (const auto& spec : task.metrics) {
    std::vector<double> values;
    for (const auto& r : tr.docs) values.push_back(spec.kind == MetricKind::AccNorm ? r.acc_norm : r.acc);
    tr.metrics.push_back(mean_metric(spec.name, values));
  }
}

}  // namespace

EvalResults evaluate(Scorer& scorer, std::vector<Task> tasks, const Progress& progress, const EvalOptions& opts) {
  EvalResults res;
  const std::clock_t cpu0 = std::clock();
  Tracker tr;
  tr.progress = &progress;
  tr.info.n_tasks = tasks.size();
  for (const auto& t : tasks) tr.info.total += static_cast<int64_t>(t.docs.size());
  for (size_t ti = 0; ti < tasks.size(); ++ti) {
    TaskResult result;
    result.task = std::move(tasks[ti]);
    const auto ts = clock_type::now();
    std::vector<std::vector<LoglikelihoodResult>> lls;
    std::vector<Generation> gens;
    if (result.task.output == OutputType::GenerateUntil) gens = generate_task(scorer, result.task, opts, tr, ti);
    else lls = score_task(scorer, result.task, opts, tr, ti);
    compute_metrics(result, lls, gens);
    result.seconds = since(ts);
    res.tasks.push_back(std::move(result));
  }
  res.groups = mmlu_groups(res.tasks);
  for (const auto& name : opts.groups) {
    const GroupSpec* spec = find_group_spec(name);
    SFT_CHECK(spec, "unknown group '", name, "'");
    res.groups.push_back(summary_group(*spec, res.tasks, res.groups));
  }
  res.seconds = since(tr.t0);
  res.scoring_seconds = tr.engine_s;
  res.stats = scorer.stats();
  res.resumed_docs = tr.info.resumed;
  res.cpu_seconds = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
  return res;
}

}  // namespace sft::eval
