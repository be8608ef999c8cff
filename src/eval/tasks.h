// Evaluation tasks with lm-evaluation-harness 0.4.13's exact prompts, few-shot selection and local data loading. A task
// is a row of the table (task_spec.h, task_table.cpp); this file turns a row and its local files into documents and
// the context strings lm-eval would build.
//
// --data_dir layout (nothing is downloaded; docs/arch/eval.md):
//   mmlu/test/<subject>_test.csv, mmlu/dev/<subject>_dev.csv   hendrycks CSV, no header: question,A,B,C,D,answer
//   arc/ARC-{Easy,Challenge}-{Test,Dev,Train}.jsonl             AllenAI ARC JSONL (question.stem/choices, answerKey)
//   hellaswag/hellaswag_{val,train}.jsonl                       rowanz JSONL (activity_label, ctx_a, ctx_b, endings)
//   <task>/<split>.jsonl for the others, the Hugging Face dataset's rows with its field names:
//   truthfulqa/validation.jsonl, winogrande/{validation,train}.jsonl, gsm8k/{test,train}.jsonl,
//   piqa/{validation,train}.jsonl, boolq/{validation,train}.jsonl, openbookqa/{test,train}.jsonl
// Where one of these files is absent, the HF dataset's own Parquet split stands in (<task>/<split>.parquet or the
// hub's <split>-00000-of-0000N.parquet shards; mmlu/<subject>/{test,dev}, arc/ARC-*/{test,validation,train},
// hellaswag/{validation,train}): task_data.h locate_split_files.
//
// Splits and few-shot pools follow each YAML (see the table). ARC/HellaSwag few-shot examples come from the Train file
// as in lm-eval; when it is absent the evaluated split itself is the pool and the document being evaluated is removed
// from its own examples (lm-eval's rule when fewshot_split == test_split: sample n+1 with random.Random(seed), drop
// the eval doc, keep n).
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "eval/task_spec.h"

namespace sft::eval {

// One document after lm-eval's doc_to_text / doc_to_choice / doc_to_target.
struct Doc {
  std::string key;    // identity for "x != eval_doc" (all fields of the source row, serialised)
  std::string query;  // doc_to_text (multiple choice, generate_until)
  std::vector<std::string> choices;  // doc_to_choice; with partial evaluation: the per-choice contexts
  int gold = 0;       // index of the right choice (partial evaluation: doc_to_text's integer)
  std::string target;  // doc_to_target as text: partial evaluation's shared continuation, generate_until's reference
  std::vector<int> labels;  // mc2: 1 for each true answer
  int64_t row = 0;    // 1-based row of the source file (messages)
};

struct TaskOptions {
  std::filesystem::path data_dir;
  std::optional<int> num_fewshot;  // unset: the task's default (its YAML num_fewshot, else 0)
  int64_t limit = -1;       // first N eval docs (-1 = all)
  uint64_t fewshot_seed = 1234;  // lm-eval's default fewshot_random_seed
  std::string arc_split = "test";  // "test" | "dev"
  // --gen_kwargs overrides of the row's generation settings (generate_until tasks).
  std::optional<int64_t> max_gen_toks;
  std::optional<std::vector<std::string>> until;
};

// One log-likelihood request: lm-eval's (context, continuation) arguments.
using Request = std::pair<std::string, std::string>;

// A task ready to score: its documents and, for each, the exact context string lm-eval would build.
struct Task {
  std::string name;       // "mmlu_marketing", "arc_easy", "gsm8k"
  std::string alias;      // lm-eval task_alias ("marketing" for MMLU subjects)
  std::string group;      // "mmlu_stem" etc. for MMLU subjects, "" otherwise
  int version = 1;
  bool has_acc_norm = false;
  int num_fewshot = 0;
  int64_t n_original = 0;  // docs in the split before --limit
  std::string eval_file, fewshot_file;
  std::vector<Doc> docs;             // eval docs after --limit
  // Per doc: description + few-shot block + query (multiple choice, generate_until); with partial evaluation the
  // description + few-shot block that every choice's context follows.
  std::vector<std::string> contexts;
  std::string target_delimiter = " ";
  OutputType output = OutputType::MultipleChoice;
  std::vector<MetricSpec> metrics;
  std::vector<FilterSpec> filters;
  GenerationSpec generation;  // generate_until: the row's settings with --gen_kwargs applied

  // lm-eval's requests for document d (construct_requests): one per choice (or per partial context).
  std::vector<Request> requests(size_t d) const;
};

// Expands task and group names (comma list: "mmlu", "mmlu_<subject>", "mmlu_stem" (etc.), any table row, any group
// such as "leaderboard_v1") into leaf task names, in order, without duplicates. Throws on unknown names, listing the
// valid ones.
std::vector<std::string> expand_task_names(const std::string& comma_list);

// What --tasks asks for: the leaf tasks with the shots a group fixes for them, and the groups (for their summary).
struct TaskPlan {
  struct Leaf {
    std::string name;
    std::optional<int> group_shots;  // the shots of the group that brought it in (leaderboard_v1), if any
  };
  std::vector<Leaf> leaves;
  std::vector<std::string> groups;  // group rows requested (leaderboard_v1)
};
TaskPlan plan_tasks(const std::string& comma_list);

// Loads data and builds every context. Throws sft::Error naming the missing file / bad row and field.
Task build_task(const std::string& name, const TaskOptions& opts);

// Readers of the original files, through the table's rows (exposed for tests and fuzzing).
std::vector<Doc> load_mmlu_csv(const std::filesystem::path& csv);
std::vector<Doc> load_arc_jsonl(const std::filesystem::path& jsonl);
std::vector<Doc> load_hellaswag_jsonl(const std::filesystem::path& jsonl);
// Any row's reader + templates on one file (fuzzing, tests).
std::vector<Doc> load_task_docs(const std::string& task, const std::filesystem::path& file);

}  // namespace sft::eval
