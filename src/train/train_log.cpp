#include "train/train_log.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/json_number.h"

namespace sft::train {

std::string log_row_json(const LogRow& r) {
  nlohmann::ordered_json j;
  j["step"] = r.step;
  j["epoch"] = r.epoch;
  if (r.eval_loss) {
    j["eval_loss"] = *r.eval_loss;
  } else {
    j["loss"] = r.loss;
    j["learning_rate"] = r.learning_rate;
    j["grad_norm"] = r.grad_norm;
    j["tokens_per_second"] = r.tokens_per_second;
    j["model_flops_per_second"] = r.model_flops_per_second;
    j["num_tokens"] = r.tokens;
  }
  return j.dump();
}

LogRow log_row_from_json(const std::string& text) {
  auto j = nlohmann::json::parse(text);
  LogRow r;
  r.step = json_integer(j.at("step"), "log_history: step", 0);  // a float there would be UB in get<int64_t>()
  r.epoch = j.value("epoch", 0.0);
  if (j.contains("eval_loss")) {
    r.eval_loss = j["eval_loss"].get<double>();
  } else {
    r.loss = j.value("loss", 0.0);
    r.learning_rate = j.value("learning_rate", 0.0);
    r.grad_norm = j.value("grad_norm", 0.0);
    r.tokens_per_second = j.value("tokens_per_second", 0.0);
    r.model_flops_per_second = j.value("model_flops_per_second", 0.0);
    r.tokens = j.contains("num_tokens") ? json_integer(j.at("num_tokens"), "log_history: num_tokens", 0) : 0;
  }
  return r;
}

void append_line(const std::filesystem::path& file, const std::string& line) {
  std::ofstream out(file, std::ios::app);
  SFT_CHECK(out.good(), file.string(), ": cannot open for appending");
  out << line << '\n';
  out.flush();
  SFT_CHECK(out.good(), file.string(), ": write failed");
}

namespace {
std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}
std::string fmt_px(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}
std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}
}  // namespace

std::string loss_curve_svg(const std::vector<LogRow>& rows, const std::string& title) {
  const double W = 720, H = 420, left = 70, right = 20, top = 40, bottom = 50;
  std::vector<std::pair<double, double>> train, eval;
  for (const auto& r : rows) {
    if (r.eval_loss) eval.emplace_back(static_cast<double>(r.step), *r.eval_loss);
    else if (std::isfinite(r.loss)) train.emplace_back(static_cast<double>(r.step), r.loss);
  }
  double xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  bool any = false;
  for (const auto* series : {&train, &eval}) {
    for (const auto& [x, y] : *series) {
      if (!any) { xmin = xmax = x; ymin = ymax = y; any = true; }
      xmin = std::min(xmin, x); xmax = std::max(xmax, x);
      ymin = std::min(ymin, y); ymax = std::max(ymax, y);
    }
  }
  xmin = std::min(xmin, 0.0);
  if (xmax <= xmin) xmax = xmin + 1;
  if (ymax <= ymin) { ymax += 0.5; ymin -= 0.5; }
  const double pad = 0.05 * (ymax - ymin);
  ymin -= pad; ymax += pad;
  auto X = [&](double x) { return left + (x - xmin) / (xmax - xmin) * (W - left - right); };
  auto Y = [&](double y) { return top + (ymax - y) / (ymax - ymin) * (H - top - bottom); };

  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W
    << ' ' << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << xml_escape(title) << "</text>\n";
  // Axes with 5 ticks each.
  s << "<line x1=\"" << left << "\" y1=\"" << H - bottom << "\" x2=\"" << W - right << "\" y2=\"" << H - bottom
    << "\" stroke=\"black\"/>\n";
  s << "<line x1=\"" << left << "\" y1=\"" << top << "\" x2=\"" << left << "\" y2=\"" << H - bottom
    << "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 5; ++i) {
    const double xv = xmin + (xmax - xmin) * i / 5, yv = ymin + (ymax - ymin) * i / 5;
    s << "<line x1=\"" << fmt_px(X(xv)) << "\" y1=\"" << H - bottom << "\" x2=\"" << fmt_px(X(xv)) << "\" y2=\""
      << H - bottom + 5 << "\" stroke=\"black\"/>";
    s << "<text x=\"" << fmt_px(X(xv)) << "\" y=\"" << H - bottom + 18 << "\" text-anchor=\"middle\">"
      << fmt(std::round(xv)) << "</text>\n";
    s << "<line x1=\"" << left - 5 << "\" y1=\"" << fmt_px(Y(yv)) << "\" x2=\"" << W - right << "\" y2=\""
      << fmt_px(Y(yv)) << "\" stroke=\"#ddd\"/>";
    s << "<text x=\"" << left - 8 << "\" y=\"" << fmt_px(Y(yv) + 4) << "\" text-anchor=\"end\">" << fmt(yv)
      << "</text>\n";
  }
  s << "<text x=\"" << (left + W - right) / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">step</text>\n";
  s << "<text x=\"16\" y=\"" << (top + H - bottom) / 2 << "\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
    << (top + H - bottom) / 2 << ")\">loss</text>\n";
  auto polyline = [&](const std::vector<std::pair<double, double>>& pts, const char* color) {
    if (pts.empty()) return;
    s << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
    for (const auto& [x, y] : pts) s << fmt_px(X(x)) << ',' << fmt_px(Y(y)) << ' ';
    s << "\"/>\n";
    for (const auto& [x, y] : pts)
      s << "<circle cx=\"" << fmt_px(X(x)) << "\" cy=\"" << fmt_px(Y(y)) << "\" r=\"2.5\" fill=\"" << color << "\"/>";
    s << '\n';
  };
  polyline(train, "#1f77b4");
  polyline(eval, "#d62728");
  s << "<text x=\"" << W - right - 150 << "\" y=\"" << top + 14 << "\" fill=\"#1f77b4\">&#9632; training loss</text>\n";
  if (!eval.empty())
    s << "<text x=\"" << W - right - 150 << "\" y=\"" << top + 30 << "\" fill=\"#d62728\">&#9632; eval loss</text>\n";
  s << "</svg>\n";
  return s.str();
}

}  // namespace sft::train
