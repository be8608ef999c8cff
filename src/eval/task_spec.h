// A task is a row of data: lm-eval 0.4.13's task YAML (tasks/<family>/*.yaml) with the dataset swapped for local
// files. task_table.cpp holds the rows; tasks.cpp turns a row + files into documents, prompts and few-shot blocks,
// evaluator.cpp scores them by the row's output type, metrics and filters. Adding a multiple-choice task is one row.
//
// Column by column (lm-eval's YAML key in brackets):
//   name [task], alias [task_alias], version [metadata.version]
//   files       eval / few-shot file under --data_dir, e.g. "piqa/validation.jsonl" (the HF dataset's rows, field
//               names unchanged); {subject} / {Split} / {split} are filled per MMLU subject / --arc_split
//   reader      how a file becomes rows: HF JSONL, or the original MMLU CSV / AllenAI ARC / rowanz HellaSwag files
//               converted to the HF schema the YAML expects
//   parquet     where the HF dataset's own Parquet split may stand in when the reader's file is absent: a path
//               without extension ("piqa/validation" -> piqa/validation.parquet or the hub's
//               validation-00000-of-00001.parquet shards); empty = the reader's file without its extension. Parquet
//               rows are already in the HF schema, whatever the reader
//   fields      the fields the templates read, with their types (and a required substring or value set): a row
//               without them is an error naming file, row and field — never a silently different prompt
//   process_docs  a named document transform lm-eval runs in Python (hellaswag's utils.process_docs), or none
//   doc_to_text / doc_to_choice / doc_to_target   as in the YAML: a field name, or Jinja rendered by src/template
//               and read back with lm-eval's rules (isdigit -> int, literal_eval for lists)
//   doc_to_labels  mc2 only: the 0/1 label per choice (truthfulqa's mc2_targets.labels)
//   output      multiple_choice, multiple_choice with partial evaluation (doc_to_text gives the gold index and each
//               choice is a context followed by the shared doc_to_target, Winogrande), mc2 log-likelihoods
//               (process_results_mc2), generate_until
//   metrics [metric_list], filters [filter_list], generation [generation_kwargs]
//   few-shot    sampler [fewshot_config.sampler], when the evaluated doc is passed to the sampler
//               (`fewshot_split == test_split` in ConfigurableTask.fewshot_context), description,
//               target_delimiter, fewshot_delimiter, default num_fewshot (0 pinned = --num_fewshot is ignored)
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sft::eval {

enum class OutputType { MultipleChoice, MultipleChoicePartial, LoglikelihoodMc2, GenerateUntil };
enum class Sampler { FirstN, Random };
// Whether lm-eval passes the evaluated document to the sampler (draw n+1, drop it, keep n).
enum class ExcludeEvalDoc { Never, WhenPoolIsEvalSplit, Always };
enum class Reader { Jsonl, MmluCsv, ArcAllenAi, HellaswagRowanz };
enum class FieldType { String, Int, StringOrInt, StringList, IntList, Object };

struct FieldSpec {
  std::string path;  // "question", "choices.text" (dots walk objects)
  FieldType type = FieldType::String;
  std::string must_contain;            // non-empty: the string must contain it (GSM8K answers: "####")
  std::vector<std::string> one_of;     // non-empty: the value (as text) must be one of these
  bool non_empty = false;              // lists: at least one element
};

enum class MetricKind {
  Acc,         // argmax(ll) == gold (first maximum wins, as np.argmax)
  AccNorm,     // argmax(ll / len(choice in code points)) == gold
  Mc2,         // normalised probability mass of the true answers (truthfulqa utils.process_results_mc2)
  ExactMatch,  // generate_until: filtered answer == target after regexes_to_ignore / ignore_case / ignore_punctuation
};
struct MetricSpec {
  std::string name;  // lm-eval's metric name: "acc", "acc_norm", "exact_match"
  MetricKind kind = MetricKind::Acc;
  bool ignore_case = false, ignore_punctuation = false;
  std::vector<std::string> regexes_to_ignore;  // applied in order with re.sub(r, "", x) to prediction and reference
};

struct FilterStep {
  enum class Kind { Regex, TakeFirst } kind = Kind::TakeFirst;
  std::string pattern;                 // regex: re.findall pattern
  int group_select = 0;                // index into the matches (negative from the end)
  std::string fallback = "[invalid]";  // no match
};
struct FilterSpec {
  std::string name;  // "strict-match", "flexible-extract"; results are keyed "<metric>,<name>"
  std::vector<FilterStep> steps;
};

struct GenerationSpec {
  std::vector<std::string> until;  // stop strings (the tokenizer's eos text is added as lm-eval's HFLM does)
  int64_t max_gen_toks = 256;      // HFLM's default
};

struct TaskSpec {
  std::string name;  // "{subject}" expands over subjects (MMLU)
  std::vector<std::string> subjects;
  double version = 1.0;
  std::string eval_file, fewshot_file;
  std::string eval_parquet, fewshot_parquet;  // HF Parquet stems ({subject}, {split} = test/validation); "" = derived
  bool fewshot_falls_back_to_eval = false;  // no few-shot file here: the evaluated split is the pool
  Reader reader = Reader::Jsonl;
  std::vector<FieldSpec> fields;
  std::string process_docs;  // "" or "hellaswag"
  std::string doc_to_text, doc_to_choice, doc_to_target, doc_to_labels;
  OutputType output = OutputType::MultipleChoice;
  std::vector<MetricSpec> metrics;
  std::vector<FilterSpec> filters;  // generate_until: empty = take_first under the name "none"
  GenerationSpec generation;
  Sampler sampler = Sampler::Random;
  ExcludeEvalDoc exclude_eval_doc = ExcludeEvalDoc::Never;
  std::string description;  // "{subject_words}" = the MMLU subject with spaces
  std::string target_delimiter = " ", fewshot_delimiter = "\n\n";
  std::optional<int> num_fewshot;  // the YAML's num_fewshot: default shots; 0 = pinned (lm-eval ignores the flag)
  std::string group;               // "{category}" = the MMLU subject's category group (mmlu_stem ...)
};

// A group row: its member tasks or groups with the shots the group runs them at and the metric it averages.
struct GroupMember {
  std::string name;  // a task or a group ("mmlu")
  int num_fewshot = 0;
  std::string metric, filter = "none";
};
struct GroupSpec {
  std::string name;
  std::vector<std::string> aliases;
  std::string alias;          // shown in tables
  std::string summary_metric;  // the group's own metric: the unweighted mean of the members' metrics
  std::vector<GroupMember> members;
};

// The table (task_table.cpp).
const std::vector<TaskSpec>& task_table();
const std::vector<GroupSpec>& group_table();
// The row of a leaf task name (mmlu_<subject> finds the MMLU row; subject set), or nullptr.
const TaskSpec* find_task_spec(const std::string& name, std::string* subject = nullptr);
const GroupSpec* find_group_spec(const std::string& name);
// The names --help and error messages list, from the table: "mmlu, mmlu_<subject> (57), ..., leaderboard_v1 ...".
std::string task_names_help();

}  // namespace sft::eval
