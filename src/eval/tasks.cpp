// Documents, contexts and few-shot blocks from a task row, byte-for-byte as lm-eval 0.4.13's
// ConfigurableTask.fewshot_context / build_qa_turn / multiple_input_context build them: description + for each shot
// (question + target_delimiter + answer + fewshot_delimiter) + question.
#include "eval/tasks.h"

#include <sstream>

#include "eval/mmlu_subjects.h"
#include "eval/py_random.h"
#include "eval/py_text.h"
#include "eval/task_data.h"
#include "util/error.h"

namespace sft::eval {

std::vector<Request> Task::requests(size_t d) const {
  const Doc& doc = docs.at(d);
  std::vector<Request> out;
  switch (output) {
    case OutputType::MultipleChoice:
    case OutputType::LoglikelihoodMc2:
      for (const auto& c : doc.choices) out.emplace_back(contexts[d], target_delimiter + c);
      break;
    case OutputType::MultipleChoicePartial:  // the choices are the contexts; the continuation is shared
      for (const auto& c : doc.choices) out.emplace_back(contexts[d] + c, target_delimiter + doc.target);
      break;
    case OutputType::GenerateUntil: break;
  }
  return out;
}

namespace {

TaskPlan::Leaf* find_leaf(TaskPlan& p, const std::string& n) {
  for (auto& l : p.leaves)
    if (l.name == n) return &l;
  return nullptr;
}

void add_name(TaskPlan& plan, const std::string& name, std::optional<int> shots, int depth) {
  SFT_CHECK(depth < 8, "--tasks: groups nested too deeply at '", name, "'");
  auto add = [&](const std::string& leaf) {
    if (!find_leaf(plan, leaf)) plan.leaves.push_back({leaf, shots});
  };
  if (name == "mmlu") {
    for (const auto& s : mmlu_subjects()) add(std::string("mmlu_") + s.name);
    return;
  }
  if (name == "mmlu_stem" || name == "mmlu_other" || name == "mmlu_social_sciences" || name == "mmlu_humanities") {
    for (const auto& s : mmlu_subjects())
      if (name == std::string("mmlu_") + s.category) add(std::string("mmlu_") + s.name);
    return;
  }
  if (find_task_spec(name)) {
    add(name);
    return;
  }
  if (const GroupSpec* g = find_group_spec(name)) {
    bool seen = false;
    for (const auto& x : plan.groups) seen = seen || x == g->name;
    if (!seen) plan.groups.push_back(g->name);
    for (const auto& m : g->members) add_name(plan, m.name, m.num_fewshot, depth + 1);
    return;
  }
  throw Error("unknown task '" + name + "': valid tasks are " + task_names_help());
}

std::string expand_path(std::string pattern, const std::string& subject, const TaskOptions& opts) {
  pattern = replace_all(pattern, "{subject}", subject);
  pattern = replace_all(pattern, "{split}", opts.arc_split == "dev" ? "validation" : "test");  // the HF split names
  return replace_all(pattern, "{Split}", opts.arc_split == "dev" ? "Dev" : "Test");
}

// A split's files under --data_dir (task_data.h locate_split_files): the reader's file, else the HF Parquet split
// (the row's parquet stem, or the reader's file without its extension).
struct SplitFiles {
  std::filesystem::path primary, parquet_stem;
  std::vector<std::filesystem::path> files;  // empty: none present
};
SplitFiles split_files(const std::filesystem::path& dir, const std::string& file, const std::string& parquet,
                       const std::string& subject, const TaskOptions& opts) {
  SplitFiles s;
  s.primary = dir / expand_path(file, subject, opts);
  s.parquet_stem = parquet.empty() ? std::filesystem::path(s.primary).replace_extension()
                                   : dir / expand_path(parquet, subject, opts);
  s.files = locate_split_files(s.primary, s.parquet_stem);
  return s;
}

std::vector<Doc> load_docs(const TaskSpec& spec, const std::string& task, const std::filesystem::path& file) {
  DocBuilder builder(spec, task);
  std::vector<Doc> docs;
  for (const auto& row : read_task_file(spec, file)) docs.push_back(builder.build(row, file.string()));
  return docs;
}

std::vector<Doc> load_split(const TaskSpec& spec, const std::string& task, const SplitFiles& split) {
  if (split.files.empty()) throw_missing_split(task, split.primary, split.parquet_stem);
  std::vector<Doc> docs;
  for (const auto& f : split.files) {
    std::vector<Doc> part = load_docs(spec, task, f);
    docs.insert(docs.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return docs;
}

// ContextSampler.sample for the "default" (random) sampler; eval_doc non-null when lm-eval passes it (see the table).
std::vector<const Doc*> random_shots(PyRandom& rnd, const std::vector<Doc>& pool, int n, const Doc* eval_doc) {
  std::vector<const Doc*> res;
  if (!eval_doc) {
    for (int64_t i : rnd.sample_indices(static_cast<int64_t>(pool.size()), n)) res.push_back(&pool[i]);
    return res;
  }
  for (int64_t i : rnd.sample_indices(static_cast<int64_t>(pool.size()), n + 1))
    if (pool[i].key != eval_doc->key && static_cast<int>(res.size()) < n) res.push_back(&pool[i]);
  if (static_cast<int>(res.size()) < n) {  // several copies of eval_doc were drawn: resample without any of them
    std::vector<const Doc*> rest;
    for (const auto& d : pool)
      if (d.key != eval_doc->key) rest.push_back(&d);
    res.clear();
    for (int64_t i : rnd.sample_indices(static_cast<int64_t>(rest.size()), n)) res.push_back(rest[i]);
  }
  return res;
}

// build_qa_turn for a labelled example: question, then (when the answer is not "") target delimiter + answer +
// few-shot delimiter. Multiple choice answers with the gold choice's text; partial evaluation's question is the gold
// context and its answer the shared continuation; generate_until answers with the target text.
std::string shot_text(const Doc& d, OutputType out, const TaskSpec& spec) {
  std::string q = d.query, a;
  bool has_answer = true;
  switch (out) {
    case OutputType::MultipleChoice:
    case OutputType::LoglikelihoodMc2: a = d.choices[static_cast<size_t>(d.gold)]; break;
    case OutputType::MultipleChoicePartial:
      q = d.choices[static_cast<size_t>(d.gold)];
      a = d.target;
      has_answer = !a.empty();
      break;
    case OutputType::GenerateUntil:
      a = d.target;
      has_answer = !a.empty();
      break;
  }
  return has_answer ? q + spec.target_delimiter + a + spec.fewshot_delimiter : q;
}

int resolve_shots(const TaskSpec& spec, const TaskOptions& opts) {
  // lm-eval (evaluator.simple_evaluate): a YAML num_fewshot of 0 is never overridden; otherwise the flag wins, then
  // the YAML's value, then 0.
  if (spec.num_fewshot && *spec.num_fewshot == 0) return 0;
  const int n = opts.num_fewshot ? *opts.num_fewshot : spec.num_fewshot.value_or(0);
  SFT_CHECK(n >= 0, "--num_fewshot must be >= 0, got ", n);
  return n;
}

}  // namespace

TaskPlan plan_tasks(const std::string& comma_list) {
  TaskPlan plan;
  std::stringstream ss(comma_list);
  std::string name;
  while (std::getline(ss, name, ',')) {
    name = py_strip(name);
    if (!name.empty()) add_name(plan, name, std::nullopt, 0);
  }
  SFT_CHECK(!plan.leaves.empty(), "--tasks is empty");
  return plan;
}

std::vector<std::string> expand_task_names(const std::string& comma_list) {
  std::vector<std::string> out;
  for (const auto& l : plan_tasks(comma_list).leaves) out.push_back(l.name);
  return out;
}

Task build_task(const std::string& name, const TaskOptions& opts) {
  std::string subject;
  const TaskSpec* spec = find_task_spec(name, &subject);
  SFT_CHECK(spec, "unknown task '", name, "'");
  SFT_CHECK(opts.arc_split == "test" || opts.arc_split == "dev", "--arc_split must be test or dev, got '",
            opts.arc_split, "'");
  Task t;
  t.name = name;
  t.alias = name;
  t.num_fewshot = resolve_shots(*spec, opts);
  t.version = static_cast<int>(spec->version);
  t.output = spec->output;
  t.metrics = spec->metrics;
  t.filters = spec->filters;
  t.target_delimiter = spec->target_delimiter;
  for (const auto& m : spec->metrics) t.has_acc_norm = t.has_acc_norm || m.kind == MetricKind::AccNorm;
  t.generation = spec->generation;
  if (opts.max_gen_toks) t.generation.max_gen_toks = *opts.max_gen_toks;
  if (opts.until) t.generation.until = *opts.until;
  if (const MmluSubject* s = subject.empty() ? nullptr : find_mmlu_subject(subject)) {
    t.alias = s->name;
    t.group = replace_all(spec->group, "{category}", s->category);
  }
  const auto& dir = opts.data_dir;
  const SplitFiles eval_split = split_files(dir, spec->eval_file, spec->eval_parquet, subject, opts);
  t.docs = load_split(*spec, name, eval_split);
  t.eval_file = split_files_name(eval_split.files);
  SFT_CHECK(!t.docs.empty(), name, ": no documents in ", t.eval_file);
  std::vector<Doc> pool;
  bool pool_is_eval = false;
  if (t.num_fewshot > 0) {
    const SplitFiles fewshot = split_files(dir, spec->fewshot_file, spec->fewshot_parquet, subject, opts);
    pool_is_eval = fewshot.primary == eval_split.primary ||
                   (spec->fewshot_falls_back_to_eval && fewshot.files.empty());
    t.fewshot_file = pool_is_eval ? t.eval_file : split_files_name(fewshot.files);
    pool = pool_is_eval ? t.docs : load_split(*spec, name, fewshot);
  }
  const bool exclude = spec->exclude_eval_doc == ExcludeEvalDoc::Always ||
                       (spec->exclude_eval_doc == ExcludeEvalDoc::WhenPoolIsEvalSplit && pool_is_eval);
  t.n_original = static_cast<int64_t>(t.docs.size());
  if (opts.limit >= 0 && opts.limit < t.n_original) t.docs.resize(static_cast<size_t>(opts.limit));
  if (t.num_fewshot > 0)
    SFT_CHECK(static_cast<int64_t>(pool.size()) >= t.num_fewshot + (exclude ? 1 : 0), name, ": --num_fewshot ",
              t.num_fewshot, " needs more examples than the ", pool.size(), " in ", t.fewshot_file);

  const std::string description =
      replace_all(replace_all(spec->description, "{subject_words}", replace_all(subject, "_", " ")), "{subject}",
                  subject);
  // lm-eval: task.set_fewshot_seed(seed) then one sampler call per eval doc, in document order.
  PyRandom rnd(opts.fewshot_seed);
  for (const auto& doc : t.docs) {
    std::string ctx = description;
    if (t.num_fewshot > 0) {
      if (spec->sampler == Sampler::FirstN) {  // FirstNSampler: pool[:n] (eval_doc is never passed for MMLU)
        for (int i = 0; i < t.num_fewshot; ++i) ctx += shot_text(pool[static_cast<size_t>(i)], t.output, *spec);
      } else {
        for (const Doc* s : random_shots(rnd, pool, t.num_fewshot, exclude ? &doc : nullptr))
          ctx += shot_text(*s, t.output, *spec);
      }
    }
    if (t.output != OutputType::MultipleChoicePartial) ctx += doc.query;
    t.contexts.push_back(std::move(ctx));
  }
  return t;
}

std::vector<Doc> load_task_docs(const std::string& task, const std::filesystem::path& file) {
  const TaskSpec* spec = find_task_spec(task);
  SFT_CHECK(spec, "unknown task '", task, "'");
  return load_docs(*spec, task, file);
}

std::vector<Doc> load_mmlu_csv(const std::filesystem::path& csv) { return load_task_docs("mmlu_abstract_algebra", csv); }
std::vector<Doc> load_arc_jsonl(const std::filesystem::path& jsonl) { return load_task_docs("arc_easy", jsonl); }
std::vector<Doc> load_hellaswag_jsonl(const std::filesystem::path& jsonl) { return load_task_docs("hellaswag", jsonl); }

}  // namespace sft::eval
