// The base-vs-tuned report of `sft eval --compare`: a Markdown file and a self-contained HTML file (inline CSS and
// SVG, no scripts, nothing fetched) with the lm-eval results tables, per-task deltas with 95% confidence intervals
// from the stderr, and the tuned model's training loss curve when its trainer_log.jsonl is present.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "eval/evaluator.h"
#include "report/loss_curve.h"

namespace sft::eval {

// One (task or group, metric) of the comparison.
struct CompareEntry {
  std::string task, metric;
  double base = 0, tuned = 0;
  std::optional<double> base_se, tuned_se;  // lm-eval's stderr of each score (nullopt = N/A)
  double delta() const { return tuned - base; }
  // Half-width of the 95% interval of the delta: 1.96 * sqrt(se_base^2 + se_tuned^2) — the two scores treated as
  // independent (conservative: both models answer the same questions, so the paired interval would be narrower).
  std::optional<double> ci95() const;
  bool significant() const;  // the interval excludes 0
};
std::vector<CompareEntry> compare_entries(const EvalResults& base, const EvalResults& tuned);

// trainer_log.jsonl of a model folder made by `sft train` (training rows and eval rows; report/loss_curve.h reads it);
// empty when absent.
using report::LossPoint;
std::vector<LossPoint> read_trainer_log(const std::filesystem::path& model_dir);
// The report toolkit's loss curve of the tuned model; "" when there is no finite point.
std::string loss_curve_svg(const std::vector<LossPoint>& points);
// Bars for base and tuned with the tuned score's 95% whiskers, per entry.
std::string delta_svg(const std::vector<CompareEntry>& entries);

struct CompareReportInput {
  std::string base_name, tuned_name;
  std::string base_table, tuned_table;  // lm-eval-style Markdown tables (results_table)
  std::vector<CompareEntry> entries;
  std::vector<LossPoint> loss;
};
// report.md: references delta.svg and loss_curve.svg written beside it (when loss is non-empty).
std::string compare_report_markdown(const CompareReportInput& in);
// report.html: the same content, charts inlined.
std::string compare_report_html(const CompareReportInput& in);

}  // namespace sft::eval
