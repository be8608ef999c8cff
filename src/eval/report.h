// Presentation of evaluation results (strings and JSON only; cli/ prints and writes them):
// lm-eval-style Markdown tables, results.json in lm-eval's layout, per-sample JSONL, and the base-vs-tuned
// comparison (table, Markdown report, SVG bar chart).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/evaluator.h"
#include "report/text.h"

namespace sft::eval {

// The "Tasks" table, followed by the "Groups" table when groups exist (as lm-eval's CLI prints them).
std::string results_table(const EvalResults& r);
// lm-eval results.json layout: results, groups, group_subtasks, configs (minimal), versions, n-shot, higher_is_better,
// n-samples, plus "config" (the run's settings, passed in) and "sft" (timing and cache statistics).
nlohmann::json results_json(const EvalResults& r, const nlohmann::json& run_config);
// One JSON object per line per doc: doc_id, target, arguments [[context, continuation], ...], resps [[ll, greedy]],
// acc (, acc_norm) — the per-sample log lm-eval writes with --log_samples.
std::string samples_jsonl(const TaskResult& t);

// A headline row per task/group and metric: base vs tuned.
struct CompareRow {
  std::string task, metric;
  double base = 0, tuned = 0;
};
std::vector<CompareRow> compare_rows(const EvalResults& base, const EvalResults& tuned);
std::string compare_table(const std::vector<CompareRow>& rows);  // task | metric | base | tuned | delta
std::string compare_svg(const std::vector<CompareRow>& rows, const std::string& base_name, const std::string& tuned_name);
std::string compare_markdown(const std::vector<CompareRow>& rows, const std::string& base_name,
                             const std::string& tuned_name, const std::string& svg_file_name,
                             const std::string& base_table, const std::string& tuned_table);

// Markdown table with pytablewriter's padding (the report toolkit's, report/text.h).
using report::markdown_table;

}  // namespace sft::eval
