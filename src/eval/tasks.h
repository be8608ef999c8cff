// Evaluation tasks with lm-evaluation-harness 0.4.13's exact prompts, few-shot selection and local data loading.
//
// --data_dir layout (original formats; nothing is downloaded):
//   mmlu/test/<subject>_test.csv, mmlu/dev/<subject>_dev.csv   hendrycks CSV, no header: question,A,B,C,D,answer
//   arc/ARC-{Easy,Challenge}-{Test,Dev,Train}.jsonl             AllenAI ARC JSONL (question.stem/choices, answerKey)
//   hellaswag/hellaswag_{val,train}.jsonl                       rowanz JSONL (activity_label, ctx_a, ctx_b, endings)
//
// Splits: MMLU evaluates test with dev as the first-n few-shot pool (as lm-eval). ARC evaluates Test (lm-eval's
// test_split) or Dev (TaskOptions::arc_split = "dev"); HellaSwag evaluates val. ARC/HellaSwag few-shot examples come
// from the Train file as in lm-eval; when it is absent the evaluated split itself is the pool and the document being
// evaluated is removed from its own examples (lm-eval's rule when fewshot_split == test_split: sample n+1 with
// random.Random(seed), drop the eval doc, keep n).
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace sft::eval {

// One multiple-choice document after lm-eval's doc_to_text / doc_to_choice / doc_to_target.
struct Doc {
  std::string key;    // identity for "x != eval_doc" (all fields of the source row, serialised)
  std::string query;  // doc_to_text
  std::vector<std::string> choices;
  int gold = 0;
};

struct TaskOptions {
  std::filesystem::path data_dir;
  int num_fewshot = 0;
  int64_t limit = -1;       // first N eval docs (-1 = all)
  uint64_t fewshot_seed = 1234;  // lm-eval's default fewshot_random_seed
  std::string arc_split = "test";  // "test" | "dev"
};

// A task ready to score: its documents and, for each, the exact context string lm-eval would build.
struct Task {
  std::string name;       // "mmlu_marketing", "arc_easy", "hellaswag"
  std::string alias;      // lm-eval task_alias ("marketing" for MMLU subjects)
  std::string group;      // "mmlu_stem" etc. for MMLU subjects, "" otherwise
  int version = 1;
  bool has_acc_norm = false;
  int num_fewshot = 0;
  int64_t n_original = 0;  // docs in the split before --limit
  std::string eval_file, fewshot_file;
  std::vector<Doc> docs;             // eval docs after --limit
  std::vector<std::string> contexts;  // description + few-shot block + query, one per doc
  std::string target_delimiter = " ";
};

// Expands "mmlu", "mmlu_<subject>", "mmlu_stem" (etc.), "arc_easy", "arc_challenge", "hellaswag" (comma list) into
// leaf task names, in lm-eval's order. Throws on unknown names, listing the valid ones.
std::vector<std::string> expand_task_names(const std::string& comma_list);
// Loads data and builds every context. Throws sft::Error naming the missing file / bad row.
Task build_task(const std::string& name, const TaskOptions& opts);

// Loaders in the original formats (exposed for tests).
std::vector<Doc> load_mmlu_csv(const std::filesystem::path& csv);
std::vector<Doc> load_arc_jsonl(const std::filesystem::path& jsonl);
std::vector<Doc> load_hellaswag_jsonl(const std::filesystem::path& jsonl);

}  // namespace sft::eval
