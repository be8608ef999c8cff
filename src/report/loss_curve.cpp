#include "report/loss_curve.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include <nlohmann/json.hpp>

#include "report/text.h"
#include "util/error.h"
#include "util/json_number.h"

namespace sft::report {

namespace fs = std::filesystem;

namespace {

constexpr uintmax_t kMaxLogBytes = uintmax_t{256} << 20;  // a 1e6-step run logs ~200 bytes a row: far below

LossPoint parse_log_line(const std::string& line, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const std::exception& e) {
    throw Error(where + ": malformed JSON (" + e.what() + ")");
  }
  SFT_CHECK(j.is_object() && j.contains("step") && j["step"].is_number_integer(), where, ": no integer \"step\"");
  LossPoint p;
  p.step = json_integer(j["step"], where + ": \"step\"");
  if (j.contains("loss") && j["loss"].is_number()) p.loss = j["loss"].get<double>();
  if (j.contains("eval_loss") && j["eval_loss"].is_number()) p.eval_loss = j["eval_loss"].get<double>();
  return p;
}

std::string fmt_value(double v) {  // tick labels: 6 significant digits
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}
std::string fmt_px(double v) { return fixed(v, 1); }

using Series = std::vector<std::pair<double, double>>;

struct Frame {  // the plot area and the data range it shows
  double W = 720, H = 420, left = 70, right = 20, top = 40, bottom = 50;
  double xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  double X(double x) const { return left + (x - xmin) / (xmax - xmin) * (W - left - right); }
  double Y(double y) const { return top + (ymax - y) / (ymax - ymin) * (H - top - bottom); }
};

Frame frame_for(const Series& train, const Series& eval) {
  Frame f;
  bool any = false;
  for (const Series* series : {&train, &eval}) {
    for (const auto& [x, y] : *series) {
      if (!any) {
        f.xmin = f.xmax = x;
        f.ymin = f.ymax = y;
        any = true;
      }
      f.xmin = std::min(f.xmin, x);
      f.xmax = std::max(f.xmax, x);
      f.ymin = std::min(f.ymin, y);
      f.ymax = std::max(f.ymax, y);
    }
  }
  f.xmin = std::min(f.xmin, 0.0);
  if (f.xmax <= f.xmin) f.xmax = f.xmin + 1;
  if (f.ymax <= f.ymin) {
    f.ymax += 0.5;
    f.ymin -= 0.5;
  }
  const double pad = 0.05 * (f.ymax - f.ymin);
  f.ymin -= pad;
  f.ymax += pad;
  return f;
}

void axes(std::ostringstream& s, const Frame& f) {
  const double W = f.W, H = f.H, left = f.left, right = f.right, top = f.top, bottom = f.bottom;
  s << "<line x1=\"" << left << "\" y1=\"" << H - bottom << "\" x2=\"" << W - right << "\" y2=\"" << H - bottom
    << "\" stroke=\"black\"/>\n";
  s << "<line x1=\"" << left << "\" y1=\"" << top << "\" x2=\"" << left << "\" y2=\"" << H - bottom
    << "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 5; ++i) {  // 5 ticks per axis
    const double xv = f.xmin + (f.xmax - f.xmin) * i / 5, yv = f.ymin + (f.ymax - f.ymin) * i / 5;
    s << "<line x1=\"" << fmt_px(f.X(xv)) << "\" y1=\"" << H - bottom << "\" x2=\"" << fmt_px(f.X(xv)) << "\" y2=\""
      << H - bottom + 5 << "\" stroke=\"black\"/>";
    s << "<text x=\"" << fmt_px(f.X(xv)) << "\" y=\"" << H - bottom + 18 << "\" text-anchor=\"middle\">"
      << fmt_value(std::round(xv)) << "</text>\n";
    s << "<line x1=\"" << left - 5 << "\" y1=\"" << fmt_px(f.Y(yv)) << "\" x2=\"" << W - right << "\" y2=\""
      << fmt_px(f.Y(yv)) << "\" stroke=\"#ddd\"/>";
    s << "<text x=\"" << left - 8 << "\" y=\"" << fmt_px(f.Y(yv) + 4) << "\" text-anchor=\"end\">" << fmt_value(yv)
      << "</text>\n";
  }
  s << "<text x=\"" << (left + W - right) / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">step</text>\n";
  s << "<text x=\"16\" y=\"" << (top + H - bottom) / 2 << "\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
    << (top + H - bottom) / 2 << ")\">loss</text>\n";
}

void polyline(std::ostringstream& s, const Frame& f, const Series& pts, const char* color) {
  if (pts.empty()) return;
  s << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
  for (const auto& [x, y] : pts) s << fmt_px(f.X(x)) << ',' << fmt_px(f.Y(y)) << ' ';
  s << "\"/>\n";
  for (const auto& [x, y] : pts)
    s << "<circle cx=\"" << fmt_px(f.X(x)) << "\" cy=\"" << fmt_px(f.Y(y)) << "\" r=\"2.5\" fill=\"" << color << "\"/>";
  s << '\n';
}

}  // namespace

std::vector<LossPoint> read_trainer_log(const fs::path& file) {
  std::vector<LossPoint> pts;
  std::error_code ec;
  const fs::file_status st = fs::status(file, ec);
  if (!fs::exists(st)) return pts;
  SFT_CHECK(fs::is_regular_file(st), file.string(), ": not a regular file");
  const uintmax_t size = fs::file_size(file, ec);
  SFT_CHECK(!ec && size <= kMaxLogBytes, file.string(), ": ", ec ? ec.message() : std::to_string(size) + " bytes",
            " (a training log is expected to be at most 256 MiB)");
  std::ifstream f(file, std::ios::binary);
  SFT_CHECK(f.good(), file.string(), ": cannot open for reading");
  std::string line;
  int64_t n = 0;
  while (std::getline(f, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    pts.push_back(parse_log_line(line, file.string() + " line " + std::to_string(n)));
  }
  return pts;
}

std::string loss_curve_svg(const std::vector<LossPoint>& points, const std::string& title) {
  Series train, eval;
  for (const auto& p : points) {
    if (p.loss && std::isfinite(*p.loss)) train.emplace_back(static_cast<double>(p.step), *p.loss);
    if (p.eval_loss && std::isfinite(*p.eval_loss)) eval.emplace_back(static_cast<double>(p.step), *p.eval_loss);
  }
  const Frame f = frame_for(train, eval);
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << f.W << "\" height=\"" << f.H << "\" viewBox=\"0 0 "
    << f.W << ' ' << f.H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"" << f.W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << xml_escape(title)
    << "</text>\n";
  axes(s, f);
  polyline(s, f, train, "#1f77b4");
  polyline(s, f, eval, "#d62728");
  const double legend_x = f.W - f.right - 150;
  s << "<text x=\"" << legend_x << "\" y=\"" << f.top + 14 << "\" fill=\"#1f77b4\">&#9632; training loss</text>\n";
  if (!eval.empty())
    s << "<text x=\"" << legend_x << "\" y=\"" << f.top + 30 << "\" fill=\"#d62728\">&#9632; eval loss</text>\n";
  s << "</svg>\n";
  return s.str();
}

}  // namespace sft::report
