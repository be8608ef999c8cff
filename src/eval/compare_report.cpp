#include "eval/compare_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "eval/report.h"
#include "report/loss_curve.h"
#include "report/text.h"

namespace sft::eval {
namespace {

std::string f4(double v) { return report::fixed(v, 4); }
std::string sf4(double v) { return report::signed_fixed(v, 4); }
std::string num(double v) { return report::fixed(v, 1); }
using report::xml_escape;

std::string score_with_se(double v, const std::optional<double>& se) {
  return f4(v) + (se ? " ± " + f4(*se) : "");
}
std::string ci_text(const CompareEntry& e) {
  const auto ci = e.ci95();
  if (!ci) return "N/A";
  std::string text = "[";
  text += sf4(e.delta() - *ci);
  text += ", ";
  text += sf4(e.delta() + *ci);
  return text + "]";
}
std::string verdict(const CompareEntry& e) {
  if (!e.ci95()) return "";
  if (!e.significant()) return "within noise";
  return e.delta() > 0 ? "better" : "worse";
}

}  // namespace

std::optional<double> CompareEntry::ci95() const {
  if (!base_se || !tuned_se) return std::nullopt;
  return 1.96 * std::sqrt(*base_se * *base_se + *tuned_se * *tuned_se);
}
bool CompareEntry::significant() const {
  const auto ci = ci95();
  return ci && (delta() - *ci > 0 || delta() + *ci < 0);
}

std::vector<CompareEntry> compare_entries(const EvalResults& base, const EvalResults& tuned) {
  std::vector<CompareEntry> out;
  auto add = [&](const std::string& name, const std::vector<Metric>& b, const std::vector<Metric>& t) {
    for (size_t i = 0; i < b.size() && i < t.size(); ++i)
      out.push_back({name, b[i].filter == "none" ? b[i].name : b[i].name + "," + b[i].filter, b[i].value, t[i].value,
                     b[i].stderr_, t[i].stderr_});
  };
  // Same headline rows as compare_rows: top-level groups, and tasks not summarised by a group.
  for (size_t i = 0; i < base.groups.size() && i < tuned.groups.size(); ++i)
    if (base.groups[i].depth == 0) add(base.groups[i].alias, base.groups[i].metrics, tuned.groups[i].metrics);
  for (size_t i = 0; i < base.tasks.size() && i < tuned.tasks.size(); ++i)
    if (base.groups.empty() || base.tasks[i].task.group.empty())
      add(base.tasks[i].task.alias, base.tasks[i].metrics, tuned.tasks[i].metrics);
  return out;
}

std::vector<LossPoint> read_trainer_log(const std::filesystem::path& model_dir) {
  return report::read_trainer_log(model_dir / "trainer_log.jsonl");
}

std::string loss_curve_svg(const std::vector<LossPoint>& points) {
  const bool any = std::any_of(points.begin(), points.end(), [](const LossPoint& p) {
    return (p.loss && std::isfinite(*p.loss)) || (p.eval_loss && std::isfinite(*p.eval_loss));
  });
  return any ? report::loss_curve_svg(points, "loss of the tuned model (trainer_log.jsonl)") : "";
}

std::string delta_svg(const std::vector<CompareEntry>& entries) {
  const int label_w = 230, bar_w = 380, row_h = 46, top = 50, left = 10;
  const int height = top + static_cast<int>(entries.size()) * row_h + 24;
  const int width = left + label_w + bar_w + 150;
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) + "\" height=\"" +
                  std::to_string(height) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<rect x=\"10\" y=\"10\" width=\"12\" height=\"12\" fill=\"#a0aec0\"/><text x=\"28\" y=\"21\">base</text>";
  s += "<rect x=\"80\" y=\"10\" width=\"12\" height=\"12\" fill=\"#2b6cb0\"/><text x=\"98\" y=\"21\">tuned "
       "(whisker: base ± 95% CI of the delta)</text>\n";
  auto X = [&](double v) { return left + label_w + std::clamp(v, 0.0, 1.0) * bar_w; };
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    const int y = top + static_cast<int>(i) * row_h;
    s += "<text x=\"" + std::to_string(left) + "\" y=\"" + std::to_string(y + 22) + "\">" + xml_escape(e.task + " " + e.metric) +
         "</text>\n";
    s += "<rect x=\"" + num(X(0)) + "\" y=\"" + std::to_string(y + 4) + "\" width=\"" + num(X(e.base) - X(0)) +
         "\" height=\"14\" fill=\"#a0aec0\"/>\n";
    s += "<rect x=\"" + num(X(0)) + "\" y=\"" + std::to_string(y + 20) + "\" width=\"" + num(X(e.tuned) - X(0)) +
         "\" height=\"14\" fill=\"#2b6cb0\"/>\n";
    if (const auto ci = e.ci95()) {
      const double a = X(e.base + e.delta() - *ci), b = X(e.base + e.delta() + *ci), yy = y + 27;
      s += "<line x1=\"" + num(a) + "\" x2=\"" + num(b) + "\" y1=\"" + num(yy) + "\" y2=\"" + num(yy) +
           "\" stroke=\"#1a202c\" stroke-width=\"1.5\"/>";
      s += "<line x1=\"" + num(a) + "\" x2=\"" + num(a) + "\" y1=\"" + num(yy - 5) + "\" y2=\"" + num(yy + 5) +
           "\" stroke=\"#1a202c\"/><line x1=\"" + num(b) + "\" x2=\"" + num(b) + "\" y1=\"" + num(yy - 5) +
           "\" y2=\"" + num(yy + 5) + "\" stroke=\"#1a202c\"/>\n";
    }
    s += "<text x=\"" + num(X(1) + 8) + "\" y=\"" + std::to_string(y + 22) + "\">" + sf4(e.delta()) +
         (e.significant() ? (e.delta() > 0 ? " ▲" : " ▼") : "") + "</text>\n";
  }
  return s + "</svg>\n";
}

std::string compare_report_markdown(const CompareReportInput& in) {
  std::string s = "# sft eval: base vs tuned\n\n";
  s += "- base: " + report::markdown_code(in.base_name) + "\n- tuned: " + report::markdown_code(in.tuned_name) + "\n\n";
  s += "## Deltas\n\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& e : in.entries)
    rows.push_back({e.task, e.metric, score_with_se(e.base, e.base_se), score_with_se(e.tuned, e.tuned_se),
                    sf4(e.delta()), ci_text(e), verdict(e)});
  s += markdown_table({"Task", "Metric", "Base ± stderr", "Tuned ± stderr", "Delta", "95% CI of delta", ""}, rows,
                      {false, false, true, true, true, true, false});
  s += "\nThe interval is delta ± 1.96·sqrt(stderr_base² + stderr_tuned²) (lm-eval's stderr; the scores are treated "
       "as independent, which is conservative since both models answer the same questions). \"within noise\" = the "
       "interval contains 0.\n\n![deltas](delta.svg)\n\n";
  s += "## Results (lm-eval tables)\n\n### Base: " + report::markdown_code(in.base_name) + "\n\n" + in.base_table +
       "\n### Tuned: " + report::markdown_code(in.tuned_name) + "\n\n" + in.tuned_table + "\n";
  s += "## Training loss of the tuned model\n\n";
  if (in.loss.empty()) {
    s += "No trainer_log.jsonl in the tuned model folder.\n";
  } else {
    std::optional<LossPoint> first, last;
    for (const auto& p : in.loss)
      if (p.loss) {
        if (!first) first = p;
        last = p;
      }
    if (first && last)
      s += "Training loss " + f4(*first->loss) + " at step " + std::to_string(first->step) + " → " + f4(*last->loss) +
           " at step " + std::to_string(last->step) + ".\n\n";
    s += "![loss curve](loss_curve.svg)\n";
  }
  return s;
}

std::string compare_report_html(const CompareReportInput& in) {
  std::string s =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>sft eval: base vs tuned</title>\n"
      "<style>body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#1a202c;padding:0 1em}"
      "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #cbd5e0;padding:4px 10px;text-align:right}"
      "th{background:#edf2f7}td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}"
      ".better{color:#276749;font-weight:bold}.worse{color:#c53030;font-weight:bold}.noise{color:#718096}"
      "code{background:#edf2f7;padding:1px 4px}h2{border-bottom:1px solid #e2e8f0;padding-bottom:4px}"
      "table.res td:nth-child(-n+5),table.res th:nth-child(-n+5){text-align:left}</style></head><body>\n";
  s += "<h1>sft eval: base vs tuned</h1>\n<p>base: <code>" + xml_escape(in.base_name) + "</code><br>tuned: <code>" +
       xml_escape(in.tuned_name) + "</code></p>\n<h2>Deltas</h2>\n<table>\n<tr><th>Task</th><th>Metric</th><th>Base ± "
       "stderr</th><th>Tuned ± stderr</th><th>Delta</th><th>95% CI of delta</th><th></th></tr>\n";
  for (const auto& e : in.entries) {
    const std::string v = verdict(e);
    const std::string cls = v == "better" ? "better" : v == "worse" ? "worse" : "noise";
    s += "<tr><td>" + xml_escape(e.task) + "</td><td>" + xml_escape(e.metric) + "</td><td>" + xml_escape(score_with_se(e.base, e.base_se)) +
         "</td><td>" + xml_escape(score_with_se(e.tuned, e.tuned_se)) + "</td><td class=\"" + cls + "\">" + sf4(e.delta()) +
         "</td><td>" + xml_escape(ci_text(e)) + "</td><td class=\"" + cls + "\">" + xml_escape(v) + "</td></tr>\n";
  }
  s += "</table>\n<p>The interval is delta ± 1.96·sqrt(stderr<sub>base</sub>² + stderr<sub>tuned</sub>²) (lm-eval's "
       "stderr; conservative, the two runs share their questions). <span class=\"noise\">within noise</span> = the "
       "interval contains 0.</p>\n";
  s += delta_svg(in.entries);
  s += "<h2>Results (lm-eval tables)</h2>\n<h3>Base: <code>" + xml_escape(in.base_name) + "</code></h3>\n" +
       report::markdown_tables_to_html(in.base_table, "res") + "<h3>Tuned: <code>" + xml_escape(in.tuned_name) + "</code></h3>\n" +
       report::markdown_tables_to_html(in.tuned_table, "res");
  s += "<h2>Training loss of the tuned model</h2>\n";
  const std::string curve = loss_curve_svg(in.loss);
  s += curve.empty() ? "<p>No trainer_log.jsonl in the tuned model folder.</p>\n" : curve;
  return s + "</body></html>\n";
}

}  // namespace sft::eval
