#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "report/text.h"

namespace sft::eval {
namespace {

using json = nlohmann::json;

std::string fmt4(double v) { return report::fixed(v, 4); }
std::string fmt_signed4(double v) { return report::signed_fixed(v, 4); }
using report::xml_escape;

void metric_rows(std::vector<std::vector<std::string>>& rows, const std::string& name, const std::string& version,
                 const std::string& nshot, const std::vector<Metric>& metrics) {
  for (const auto& m : metrics)
    rows.push_back({name, version, m.filter, nshot, m.name, "↑", fmt4(m.value), "±",
                    m.stderr_ ? fmt4(*m.stderr_) : "   N/A"});
}

}  // namespace

std::string results_table(const EvalResults& r) {
  const std::vector<bool> align = {false, true, false, true, false, false, true, false, true};
  std::vector<std::vector<std::string>> rows;
  // Groups first with their subtasks indented below (lm-eval's hierarchical order), then the other tasks.
  bool have_groups = !r.groups.empty();
  if (have_groups) {
    for (const auto& g : r.groups) {
      if (g.depth != 0) continue;
      metric_rows(rows, g.alias, std::to_string(g.version), "", g.metrics);
      for (const auto& sg : r.groups) {
        if (sg.depth != 1 || sg.parent != g.name) continue;
        metric_rows(rows, " - " + sg.alias, std::to_string(sg.version), "", sg.metrics);
        for (const auto& t : r.tasks)
          if (t.task.group == sg.name)
            metric_rows(rows, "  - " + t.task.alias, std::to_string(t.task.version), std::to_string(t.task.num_fewshot),
                        t.metrics);
      }
    }
  }
  for (const auto& t : r.tasks)
    if (!have_groups || t.task.group.empty())
      metric_rows(rows, t.task.alias, std::to_string(t.task.version), std::to_string(t.task.num_fewshot), t.metrics);
  std::string out = markdown_table({"Tasks", "Version", "Filter", "n-shot", "Metric", "", "Value", "", "Stderr"}, rows,
                                   align);
  if (have_groups) {
    std::vector<std::vector<std::string>> grows;
    for (const auto& g : r.groups)
      metric_rows(grows, (g.depth ? " - " : "") + g.alias, std::to_string(g.version), "", g.metrics);
    out += "\n" + markdown_table({"Groups", "Version", "Filter", "n-shot", "Metric", "", "Value", "", "Stderr"}, grows,
                                 align);
  }
  return out;
}

json results_json(const EvalResults& r, const json& run_config) {
  json j;
  j["results"] = json::object();
  j["groups"] = json::object();
  j["group_subtasks"] = json::object();
  j["versions"] = json::object();
  j["n-shot"] = json::object();
  j["n-samples"] = json::object();
  j["higher_is_better"] = json::object();
  auto metrics_obj = [](json& o, const std::vector<Metric>& ms) {
    for (const auto& m : ms) {
      o[m.name + "," + m.filter] = m.value;
      if (m.stderr_) o[m.name + "_stderr," + m.filter] = *m.stderr_;
      else o[m.name + "_stderr," + m.filter] = "N/A";
    }
  };
  for (const auto& t : r.tasks) {
    json o;
    o["alias"] = t.task.alias;
    metrics_obj(o, t.metrics);
    o["sample_len"] = t.docs.size();
    j["results"][t.task.name] = o;
    j["versions"][t.task.name] = t.task.version;
    j["n-shot"][t.task.name] = t.task.num_fewshot;
    j["n-samples"][t.task.name] = {{"original", t.task.n_original}, {"effective", t.docs.size()}};
    json hib;
    for (const auto& m : t.metrics) hib[m.name] = true;
    j["higher_is_better"][t.task.name] = hib;
  }
  for (const auto& g : r.groups) {
    json o;
    o["alias"] = g.alias;
    metrics_obj(o, g.metrics);
    o["sample_len"] = g.size;
    j["results"][g.name] = o;
    j["groups"][g.name] = o;
    j["versions"][g.name] = g.version;
    json subs = json::array();
    if (!g.members.empty()) {
      for (const auto& m : g.members) subs.push_back(m);
    } else if (g.depth == 0) {
      for (const auto& sg : r.groups)
        if (sg.depth == 1 && sg.parent == g.name) subs.push_back(sg.name);
    } else {
      for (const auto& t : r.tasks)
        if (t.task.group == g.name) subs.push_back(t.task.name);
    }
    j["group_subtasks"][g.name] = subs;
  }
  j["config"] = run_config;
  j["sft"] = {{"total_seconds", r.seconds},
              {"tokens_forwarded", r.stats.tokens_forwarded},
              {"tokens_requested", r.stats.tokens_requested},
              {"resumed_docs", r.resumed_docs},
              {"cpu_seconds", r.cpu_seconds},
              {"engine_seconds", r.scoring_seconds},
              {"tokens_generated", r.stats.tokens_generated},
              {"model_flops", r.stats.model_flops}};
  json per_task = json::object();
  for (const auto& t : r.tasks)
    per_task[t.task.name] = {{"seconds", t.seconds}, {"eval_file", t.task.eval_file},
                             {"fewshot_file", t.task.fewshot_file}};
  j["sft"]["tasks"] = per_task;
  return j;
}

std::string samples_jsonl(const TaskResult& t) {
  std::string out;
  for (const auto& d : t.docs) {
    const auto& doc = t.task.docs[static_cast<size_t>(d.doc_id)];
    if (t.task.output == OutputType::GenerateUntil) {  // one line per filter, as lm-eval logs them
      const json gen_kwargs = {{"until", t.task.generation.until}, {"max_gen_toks", t.task.generation.max_gen_toks},
                               {"do_sample", false}};
      for (size_t f = 0; f < d.filtered.size(); ++f) {
        json o = {{"doc_id", d.doc_id}, {"target", doc.target},
                  {"arguments", json::array({json::array({t.task.contexts[static_cast<size_t>(d.doc_id)], gen_kwargs})})},
                  {"resps", json::array({json::array({d.generation.text})})},
                  {"filtered_resps", json::array({d.filtered[f].second})}, {"filter", d.filtered[f].first},
                  {"generated_tokens", d.generation.tokens}};
        for (const auto& [key, v] : d.scores)
          if (key.substr(key.find(',') + 1) == d.filtered[f].first) o[key.substr(0, key.find(','))] = v;
        out += o.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
      }
      continue;
    }
    json args = json::array(), resps = json::array();
    const auto reqs = t.task.requests(static_cast<size_t>(d.doc_id));
    for (size_t i = 0; i < reqs.size(); ++i) {
      args.push_back({reqs[i].first, reqs[i].second});
      resps.push_back({d.lls[i], static_cast<bool>(d.is_greedy[i])});
    }
    json o = {{"doc_id", d.doc_id}, {"target", doc.gold}, {"arguments", args}, {"resps", resps}, {"acc", d.acc}};
    if (t.task.has_acc_norm) o["acc_norm"] = d.acc_norm;
    out += o.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  return out;
}

std::vector<CompareRow> compare_rows(const EvalResults& base, const EvalResults& tuned) {
  std::vector<CompareRow> rows;
  auto add = [&](const std::string& name, const std::vector<Metric>& b, const std::vector<Metric>& t) {
    for (size_t i = 0; i < b.size() && i < t.size(); ++i)
      rows.push_back({name, b[i].filter == "none" ? b[i].name : b[i].name + "," + b[i].filter, b[i].value, t[i].value});
  };
  // Headline rows: groups (top level) and non-MMLU tasks; MMLU subjects only when no group summarises them.
  for (size_t i = 0; i < base.groups.size() && i < tuned.groups.size(); ++i)
    if (base.groups[i].depth == 0) add(base.groups[i].alias, base.groups[i].metrics, tuned.groups[i].metrics);
  for (size_t i = 0; i < base.tasks.size() && i < tuned.tasks.size(); ++i)
    if (base.groups.empty() || base.tasks[i].task.group.empty())
      add(base.tasks[i].task.alias, base.tasks[i].metrics, tuned.tasks[i].metrics);
  return rows;
}

std::string compare_table(const std::vector<CompareRow>& rows) {
  std::vector<std::vector<std::string>> cells;
  for (const auto& r : rows) cells.push_back({r.task, r.metric, fmt4(r.base), fmt4(r.tuned), fmt_signed4(r.tuned - r.base)});
  return markdown_table({"Task", "Metric", "Base", "Tuned", "Delta"}, cells, {false, false, true, true, true});
}

std::string compare_svg(const std::vector<CompareRow>& rows, const std::string& base_name,
                        const std::string& tuned_name) {
  // Grouped horizontal bars, one pair per (task, metric), scale 0..1 (accuracies).
  const int label_w = 220, bar_w = 400, row_h = 44, top = 50, left = 10;
  const int height = top + static_cast<int>(rows.size()) * row_h + 20;
  const int width = left + label_w + bar_w + 80;
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) + "\" height=\"" +
                  std::to_string(height) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<rect x=\"" + std::to_string(left) + "\" y=\"10\" width=\"12\" height=\"12\" fill=\"#9aa5b1\"/><text x=\"" +
       std::to_string(left + 18) + "\" y=\"21\">base: " + xml_escape(base_name) + "</text>\n";
  s += "<rect x=\"" + std::to_string(left) + "\" y=\"28\" width=\"12\" height=\"12\" fill=\"#2b6cb0\"/><text x=\"" +
       std::to_string(left + 18) + "\" y=\"39\">tuned: " + xml_escape(tuned_name) + "</text>\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    int y = top + static_cast<int>(i) * row_h;
    const auto& r = rows[i];
    s += "<text x=\"" + std::to_string(left) + "\" y=\"" + std::to_string(y + 22) + "\">" +
         xml_escape(r.task + " " + r.metric) + "</text>\n";
    auto bar = [&](double v, int dy, const char* color) {
      double cl = std::clamp(v, 0.0, 1.0);
      s += "<rect x=\"" + std::to_string(left + label_w) + "\" y=\"" + std::to_string(y + dy) + "\" width=\"" +
           std::to_string(static_cast<int>(std::lround(cl * bar_w))) + "\" height=\"16\" fill=\"" + color + "\"/>";
      s += "<text x=\"" + std::to_string(left + label_w + static_cast<int>(std::lround(cl * bar_w)) + 4) + "\" y=\"" +
           std::to_string(y + dy + 12) + "\">" + fmt4(v) + "</text>\n";
    };
    bar(r.base, 4, "#9aa5b1");
    bar(r.tuned, 22, "#2b6cb0");
  }
  s += "</svg>\n";
  return s;
}

std::string compare_markdown(const std::vector<CompareRow>& rows, const std::string& base_name,
                             const std::string& tuned_name, const std::string& svg_file_name,
                             const std::string& base_table, const std::string& tuned_table) {
  std::string md = "# Evaluation: tuned vs base\n\n";
  md += "- base: " + report::markdown_code(base_name) + "\n- tuned: " + report::markdown_code(tuned_name) + "\n\n";
  md += compare_table(rows) + "\n";
  md += "![base vs tuned](" + svg_file_name + ")\n\n";
  md += "## Base model\n\n" + base_table + "\n## Tuned model\n\n" + tuned_table;
  return md;
}

}  // namespace sft::eval
