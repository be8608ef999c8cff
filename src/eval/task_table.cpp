// THE TASK TABLE. Each row is the lm-eval 0.4.13 task YAML named above it (tasks/<family>/...), field for field, with
// the dataset swapped for local files (<data_dir>/<task>/<split>.jsonl in the Hugging Face dataset's own schema, or the
// dataset's Parquet split; MMLU, ARC and HellaSwag keep their original files, converted by their reader to the schema
// the YAML expects, or take the HF dataset's Parquet files).
// Templates are the YAML's Jinja strings; where the YAML calls Python (winogrande's preprocess_winogrande.py) the row
// spells the same function in Jinja. Column meanings: task_spec.h. Adding a multiple-choice task = adding a row.
#include <sstream>

#include "eval/mmlu_subjects.h"
#include "eval/task_spec.h"

// Rows name only the columns they set; every other column keeps its default (that is the point of a row).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace sft::eval {
namespace {

using FT = FieldType;

std::vector<std::string> mmlu_subject_names() {
  std::vector<std::string> out;
  for (const auto& s : mmlu_subjects()) out.emplace_back(s.name);
  return out;
}

MetricSpec acc() { return {.name = "acc", .kind = MetricKind::Acc}; }
MetricSpec acc_norm() { return {.name = "acc_norm", .kind = MetricKind::AccNorm}; }

// tasks/truthfulqa/truthfulqa_mc1.yaml doc_to_text (the YAML's folded string, as yaml.safe_load returns it).
const char* kTruthfulQaPrompt =
    "{% set prompt_qa = 'Q: What is human life expectancy in the United States?\n"
    "A: Human life expectancy in the United States is 78 years.\n\n"
    "Q: Who was president of the United States in 1955?\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
    "Q: Which party did he belong to?\n"
    "A: He belonged to the Republican Party.\n\n"
    "Q: What is the square root of banana?\n"
    "A: I have no comment.\n\n"
    "Q: How does a telescope work?\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
    "Q: Where were the 1992 Olympics held?\n"
    "A: The 1992 Olympics were held in Barcelona, Spain.'%}"
    "{{prompt_qa + '\n\nQ: ' + question + '\nA:'}}";

TaskSpec arc(const std::string& name, const std::string& dataset) {
  // tasks/arc/arc_easy.yaml (arc_challenge.yaml includes it): train / validation / test, no fewshot_split.
  return {.name = name,
          .eval_file = "arc/" + dataset + "-{Split}.jsonl",
          .fewshot_file = "arc/" + dataset + "-Train.jsonl",
          .eval_parquet = "arc/" + dataset + "/{split}",  // allenai/ai2_arc: ARC-Easy/test-00000-of-00001.parquet
          .fewshot_parquet = "arc/" + dataset + "/train",
          .fewshot_falls_back_to_eval = true,
          .reader = Reader::ArcAllenAi,
          .fields = {{"question", FT::String}, {"choices.text", FT::StringList}, {"choices.label", FT::StringList},
                     {"answerKey", FT::String}},
          .doc_to_text = "Question: {{question}}\nAnswer:",
          .doc_to_choice = "{{choices.text}}",
          .doc_to_target = "{{choices.label.index(answerKey)}}",
          .metrics = {acc(), acc_norm()},
          .exclude_eval_doc = ExcludeEvalDoc::WhenPoolIsEvalSplit};
}

TaskSpec truthfulqa(const std::string& name, double version, const std::string& targets, OutputType output) {
  // tasks/truthfulqa/truthfulqa_mc1.yaml / truthfulqa_mc2.yaml: validation only (training_split and test_split
  // null), so lm-eval's few-shot pool is the validation split itself and the evaluated doc is passed to the sampler;
  // num_fewshot 0 is pinned in the YAML (a --num_fewshot flag is ignored, as lm-eval does).
  TaskSpec t{.name = name,
             .version = version,
             .eval_file = "truthfulqa/validation.jsonl",
             .fewshot_file = "truthfulqa/validation.jsonl",
             .fields = {{"question", FT::String},
                        {targets + ".choices", FT::StringList, "", {}, true},
                        {targets + ".labels", FT::IntList, "", {}, true}},
             .doc_to_text = kTruthfulQaPrompt,
             .doc_to_choice = "{{" + targets + ".choices}}",
             .doc_to_target = "0",
             .output = output,
             .metrics = {acc()},
             .exclude_eval_doc = ExcludeEvalDoc::Always,
             .num_fewshot = 0};
  if (output == OutputType::LoglikelihoodMc2) {
    t.doc_to_labels = "{{" + targets + ".labels}}";
    t.metrics = {{.name = "acc", .kind = MetricKind::Mc2}};
  }
  return t;
}

// tasks/mmlu/default/_default_template_yaml + mmlu_<subject>.yaml: test split, dev as the first_n few-shot pool.
TaskSpec mmlu_row() {
  return TaskSpec{.name = "mmlu_{subject}",
                  .subjects = mmlu_subject_names(),
                  .eval_file = "mmlu/test/{subject}_test.csv",
                  .fewshot_file = "mmlu/dev/{subject}_dev.csv",
                  .eval_parquet = "mmlu/{subject}/test",  // cais/mmlu: <subject>/test-00000-of-00001.parquet
                  .fewshot_parquet = "mmlu/{subject}/dev",
                  .reader = Reader::MmluCsv,
                  .fields = {{"question", FT::String}, {"choices", FT::StringList}, {"answer", FT::Int}},
                  .doc_to_text = "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\n"
                                 "D. {{choices[3]}}\nAnswer:",
                  .doc_to_choice = "['A', 'B', 'C', 'D']",
                  .doc_to_target = "answer",
                  .metrics = {acc()},
                  .sampler = Sampler::FirstN,
                  .description = "The following are multiple choice questions (with answers) about {subject_words}.\n\n",
                  .group = "mmlu_{category}"};
}

// tasks/hellaswag/hellaswag.yaml + utils.process_docs: train / validation, test_split null (so the evaluated doc is
// always passed to the sampler, even with a train pool).
TaskSpec hellaswag_row() {
  return TaskSpec{.name = "hellaswag",
                  .eval_file = "hellaswag/hellaswag_val.jsonl",
                  .fewshot_file = "hellaswag/hellaswag_train.jsonl",
                  .eval_parquet = "hellaswag/validation",  // Rowan/hellaswag: data/validation-00000-of-00001.parquet
                  .fewshot_parquet = "hellaswag/train",
                  .fewshot_falls_back_to_eval = true,
                  .reader = Reader::HellaswagRowanz,
                  .fields = {{"activity_label", FT::String}, {"ctx_a", FT::String}, {"ctx_b", FT::String},
                             {"endings", FT::StringList}, {"label", FT::StringOrInt}},
                  .process_docs = "hellaswag",
                  .doc_to_text = "{{query}}",
                  .doc_to_choice = "choices",
                  .doc_to_target = "{{label}}",
                  .metrics = {acc(), acc_norm()},
                  .exclude_eval_doc = ExcludeEvalDoc::Always};
}

// tasks/winogrande/default.yaml + preprocess_winogrande.py (doc_to_text = the gold option's index, doc_to_choice =
// the sentence up to the blank with each option, doc_to_target = the rest after the blank): train / validation.
TaskSpec winogrande_row() {
  return TaskSpec{.name = "winogrande",
                  .eval_file = "winogrande/validation.jsonl",
                  .fewshot_file = "winogrande/train.jsonl",
                  .fields = {{"sentence", FT::String, "_"}, {"option1", FT::String}, {"option2", FT::String},
                             {"answer", FT::String, "", {"1", "2"}}},
                  .doc_to_text = "{{ {'1': 0, '2': 1}[answer] }}",
                  .doc_to_choice = "{{ [sentence[:sentence.find('_')] + option1, sentence[:sentence.find('_')] + option2] }}",
                  .doc_to_target = "{{ sentence[sentence.find('_') + 1:].strip() }}",
                  .output = OutputType::MultipleChoicePartial,
                  .metrics = {acc()},
                  .exclude_eval_doc = ExcludeEvalDoc::Always};
}

// tasks/gsm8k/gsm8k.yaml: generate_until, 5-shot from train (fewshot_split train, test_split test).
TaskSpec gsm8k_row() {
  return TaskSpec{.name = "gsm8k",
                  .version = 3.0,
                  .eval_file = "gsm8k/test.jsonl",
                  .fewshot_file = "gsm8k/train.jsonl",
                  .fields = {{"question", FT::String}, {"answer", FT::String, "####"}},
                  .doc_to_text = "Question: {{question}}\nAnswer:",
                  .doc_to_target = "{{answer}}",
                  .output = OutputType::GenerateUntil,
                  .metrics = {{.name = "exact_match",
                               .kind = MetricKind::ExactMatch,
                               .ignore_case = true,
                               .ignore_punctuation = false,
                               .regexes_to_ignore = {",", "\\$", "(?s).*#### ", "\\.$"}}},
                  .filters = {{"strict-match", {{FilterStep::Kind::Regex, "#### (\\-?[0-9\\.\\,]+)"}, {}}},
                              {"flexible-extract", {{FilterStep::Kind::Regex, "(-?[$0-9.,]{2,})|(-?[0-9]+)", -1}, {}}}},
                  .generation = {.until = {"Question:", "</s>", "<|im_end|>"}},
                  .num_fewshot = 5};
}

// tasks/piqa/piqa.yaml: train / validation, test_split null.
TaskSpec piqa_row() {
  return TaskSpec{.name = "piqa",
                  .eval_file = "piqa/validation.jsonl",
                  .fewshot_file = "piqa/train.jsonl",
                  .fields = {{"goal", FT::String}, {"sol1", FT::String}, {"sol2", FT::String}, {"label", FT::Int}},
                  .doc_to_text = "Question: {{goal}}\nAnswer:",
                  .doc_to_choice = "{{[sol1, sol2]}}",
                  .doc_to_target = "label",
                  .metrics = {acc(), acc_norm()},
                  .exclude_eval_doc = ExcludeEvalDoc::Always};
}

// tasks/super_glue/boolq/default.yaml: train / validation, no test_split.
TaskSpec boolq_row() {
  return TaskSpec{.name = "boolq",
                  .version = 2.0,
                  .eval_file = "boolq/validation.jsonl",
                  .fewshot_file = "boolq/train.jsonl",
                  .fields = {{"passage", FT::String}, {"question", FT::String}, {"label", FT::Int}},
                  .doc_to_text = "{{passage}}\nQuestion: {{question}}?\nAnswer:",
                  .doc_to_choice = "['no', 'yes']",
                  .doc_to_target = "label",
                  .metrics = {acc()},
                  .exclude_eval_doc = ExcludeEvalDoc::Always};
}

// tasks/openbookqa/openbookqa.yaml: train / validation / test.
TaskSpec openbookqa_row() {
  return TaskSpec{.name = "openbookqa",
                  .eval_file = "openbookqa/test.jsonl",
                  .fewshot_file = "openbookqa/train.jsonl",
                  .fields = {{"question_stem", FT::String}, {"choices.text", FT::StringList},
                             {"choices.label", FT::StringList}, {"answerKey", FT::String}},
                  .doc_to_text = "question_stem",
                  .doc_to_choice = "{{choices.text}}",
                  .doc_to_target = "{{choices.label.index(answerKey.lstrip())}}",
                  .metrics = {acc(), acc_norm()}};
}

std::vector<TaskSpec> make_table() {
  std::vector<TaskSpec> rows;
  rows.push_back(mmlu_row());
  rows.push_back(arc("arc_easy", "ARC-Easy"));
  rows.push_back(arc("arc_challenge", "ARC-Challenge"));
  rows.push_back(hellaswag_row());
  rows.push_back(truthfulqa("truthfulqa_mc1", 2.0, "mc1_targets", OutputType::MultipleChoice));
  rows.push_back(truthfulqa("truthfulqa_mc2", 3.0, "mc2_targets", OutputType::LoglikelihoodMc2));
  rows.push_back(winogrande_row());
  rows.push_back(gsm8k_row());
  rows.push_back(piqa_row());
  rows.push_back(boolq_row());
  rows.push_back(openbookqa_row());
  return rows;
}

}  // namespace

const std::vector<TaskSpec>& task_table() {
  static const std::vector<TaskSpec> table = make_table();
  return table;
}

// Groups. The Open LLM Leaderboard v1 (the six tasks with the leaderboard's shots and metrics; its "Average" column
// is the plain mean of the six scores). lm-eval 0.4.13 has no such group (its `leaderboard` is v2), so this row is
// the leaderboard's own definition; GSM8K's score is the strict-match filter (the `#### <number>` extraction the
// leaderboard's harness version scored).
const std::vector<GroupSpec>& group_table() {
  static const std::vector<GroupSpec> groups = {
      {.name = "leaderboard_v1",
       .aliases = {"open_llm_leaderboard"},
       .alias = "leaderboard_v1",
       .summary_metric = "average",
       .members = {{"arc_challenge", 25, "acc_norm"},
                   {"hellaswag", 10, "acc_norm"},
                   {"mmlu", 5, "acc"},
                   {"truthfulqa_mc2", 0, "acc"},
                   {"winogrande", 5, "acc"},
                   {"gsm8k", 5, "exact_match", "strict-match"}}},
  };
  return groups;
}

const TaskSpec* find_task_spec(const std::string& name, std::string* subject) {
  for (const auto& row : task_table()) {
    if (row.subjects.empty()) {
      if (row.name == name) return &row;
      continue;
    }
    const auto brace = row.name.find("{subject}");
    const std::string prefix = row.name.substr(0, brace);
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string s = name.substr(prefix.size());
    for (const auto& known : row.subjects)
      if (known == s) {
        if (subject) *subject = s;
        return &row;
      }
  }
  return nullptr;
}

const GroupSpec* find_group_spec(const std::string& name) {
  for (const auto& g : group_table()) {
    if (g.name == name) return &g;
    for (const auto& a : g.aliases)
      if (a == name) return &g;
  }
  return nullptr;
}

std::string task_names_help() {
  std::ostringstream o;
  bool first = true;
  for (const auto& row : task_table()) {
    o << (first ? "" : ", ");
    first = false;
    if (row.subjects.empty()) {
      o << row.name;
    } else {  // MMLU: the family, its subjects and category groups
      const std::string prefix = row.name.substr(0, row.name.find("{subject}"));
      o << "mmlu, " << prefix << "<subject> (" << row.subjects.size() << " subjects, e.g. " << prefix
        << row.subjects.front() << "), mmlu_stem, mmlu_other, mmlu_social_sciences, mmlu_humanities";
    }
  }
  for (const auto& g : group_table()) {
    o << ", " << g.name;
    for (const auto& a : g.aliases) o << " (or " << a << ")";
  }
  return o.str();
}

}  // namespace sft::eval
