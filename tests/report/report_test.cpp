// The report toolkit (src/report): escaping, number formats, Markdown tables and their HTML, the trainer_log.jsonl
// reader (hostile input: a model folder's file) and the loss-curve SVG.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>

#include "report/loss_curve.h"
#include "report/text.h"
#include "util/error.h"

namespace sft::report {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct TempDir {
  fs::path dir = fs::temp_directory_path() / ("sft_report_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(dir); }
  ~TempDir() { fs::remove_all(dir); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(dir / name, std::ios::binary) << text;
    return dir / name;
  }
};

TEST(ReportText, EscapesForHtmlAndXml) {
  EXPECT_EQ(xml_escape("a<b>&\"c' é"), "a&lt;b&gt;&amp;&quot;c' é");
  EXPECT_EQ(xml_escape(""), "");
}

TEST(ReportText, MarkdownCodeSpanSurvivesBackticks) {
  EXPECT_EQ(markdown_code("out/model"), "`out/model`");
  EXPECT_EQ(markdown_code("a`b"), "``a`b``");
  EXPECT_EQ(markdown_code("a``b"), "```a``b```");
  EXPECT_EQ(markdown_code("`x"), "`` `x ``");  // a span starting with a backtick is padded
  EXPECT_EQ(markdown_code(""), "``");
}

TEST(ReportText, FixedPointNumbers) {
  EXPECT_EQ(fixed(0.123456, 4), "0.1235");
  EXPECT_EQ(fixed(2.0, 1), "2.0");
  EXPECT_EQ(signed_fixed(0.06, 4), "+0.0600");
  EXPECT_EQ(signed_fixed(-0.01, 4), "-0.0100");
}

TEST(ReportText, MarkdownTableIsPaddedLikePytablewriter) {
  // Widths count code points (Python len): "é↑" is 2 wide although it is 5 bytes.
  const std::string t = markdown_table({"Task", "Value", ""}, {{"arc_easy", "0.5000", "é↑"}, {"x", "1", "±"}},
                                       {false, true, false});
  EXPECT_EQ(t,
            "|  Task  |Value |   |\n"
            "|--------|-----:|---|\n"
            "|arc_easy|0.5000|é↑ |\n"
            "|x       |     1|±  |\n")
      << t;
}

TEST(ReportText, MarkdownTablesBecomeHtml) {
  const std::string md = "intro <b>\n|Tasks|Value|\n|-----|----:|\n| a<b | 0.5 |\n\ntail\n";
  EXPECT_EQ(markdown_tables_to_html(md, "res"),
            "<p>intro &lt;b&gt;</p>\n"
            "<table class=\"res\">\n<tr><th>Tasks</th><th>Value</th></tr>\n<tr><td>a&lt;b</td><td>0.5</td></tr>\n"
            "</table>\n<p>tail</p>\n");
}

TEST(TrainerLog, ReadsRowsSkipsBlankLinesAndNamesBadLines) {
  TempDir t;
  EXPECT_TRUE(read_trainer_log(t.dir / "absent.jsonl").empty());
  const fs::path f = t.write("log.jsonl", "{\"step\": 3, \"epoch\": 0.5, \"loss\": 2.25, \"grad_norm\": 1}\n \r\n"
                                          "{\"step\": 3, \"eval_loss\": 2.5}\n{\"step\": 4, \"loss\": \"n/a\"}\n");
  const auto pts = read_trainer_log(f);
  ASSERT_EQ(pts.size(), 3u);
  EXPECT_EQ(pts[0].step, 3);
  EXPECT_DOUBLE_EQ(*pts[0].loss, 2.25);
  EXPECT_FALSE(pts[0].eval_loss);
  EXPECT_DOUBLE_EQ(*pts[1].eval_loss, 2.5);
  EXPECT_FALSE(pts[2].loss);  // a non-number loss is no point, not an error
  const std::string bad_json = error_of([&] { read_trainer_log(t.write("b.jsonl", "{\"step\": 1}\n{oops\n")); });
  EXPECT_NE(bad_json.find("b.jsonl line 2: malformed JSON"), std::string::npos) << bad_json;
  const std::string no_step = error_of([&] { read_trainer_log(t.write("c.jsonl", "{\"step\": 1.5}\n")); });
  EXPECT_NE(no_step.find("c.jsonl line 1: no integer \"step\""), std::string::npos) << no_step;
  const std::string array = error_of([&] { read_trainer_log(t.write("d.jsonl", "[1, 2]\n")); });
  EXPECT_NE(array.find("d.jsonl line 1"), std::string::npos) << array;
  const std::string huge = error_of([&] { read_trainer_log(t.write("e.jsonl", "{\"step\": 18446744073709551615}\n")); });
  EXPECT_NE(huge.find("e.jsonl line 1: \"step\""), std::string::npos) << huge;
  fs::create_directories(t.dir / "folder.jsonl");
  const std::string folder = error_of([&] { read_trainer_log(t.dir / "folder.jsonl"); });
  EXPECT_NE(folder.find("folder.jsonl: not a regular file"), std::string::npos) << folder;
}

// The polyline points of the SVG, series by series.
std::vector<std::vector<std::pair<double, double>>> polylines(const std::string& svg) {
  std::vector<std::vector<std::pair<double, double>>> out;
  const std::regex poly("<polyline[^>]*points=\"([^\"]*)\"");
  const std::regex pt("(-?[0-9.]+),(-?[0-9.]+)");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), poly); it != std::sregex_iterator(); ++it) {
    const std::string pts = (*it)[1].str();
    out.emplace_back();
    for (auto p = std::sregex_iterator(pts.begin(), pts.end(), pt); p != std::sregex_iterator(); ++p)
      out.back().emplace_back(std::stod((*p)[1].str()), std::stod((*p)[2].str()));
  }
  return out;
}

TEST(LossCurve, TrainingAndEvalSeriesScaledIntoThePlot) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<LossPoint> pts = {{10, 3.0, std::nullopt}, {20, 2.0, 2.6}, {30, nan, std::nullopt},
                                {40, 1.5, std::nullopt}, {40, std::nullopt, INFINITY}};
  const std::string svg = loss_curve_svg(pts, "run <a & b>");
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("run &lt;a &amp; b&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
  const auto lines = polylines(svg);
  ASSERT_EQ(lines.size(), 2u);     // training, eval
  ASSERT_EQ(lines[0].size(), 3u);  // the NaN row is left out
  ASSERT_EQ(lines[1].size(), 1u);  // the infinite eval loss too
  // x grows with the step; y grows (downwards) as the loss falls; everything inside the 720 x 420 canvas.
  for (size_t i = 1; i < lines[0].size(); ++i) {
    EXPECT_GT(lines[0][i].first, lines[0][i - 1].first);
    EXPECT_GT(lines[0][i].second, lines[0][i - 1].second);
  }
  for (const auto& line : lines)
    for (const auto& [x, y] : line) {
      EXPECT_GE(x, 70);
      EXPECT_LE(x, 700);
      EXPECT_GE(y, 40);
      EXPECT_LE(y, 370);
    }
  EXPECT_NE(svg.find("eval loss"), std::string::npos);
  const std::string only_train = loss_curve_svg({{1, 2.0, std::nullopt}, {2, 2.0, std::nullopt}}, "flat");
  EXPECT_EQ(polylines(only_train).size(), 1u);
  EXPECT_EQ(only_train.find("eval loss"), std::string::npos);
  const std::string empty = loss_curve_svg({}, "empty");
  EXPECT_NE(empty.find("</svg>"), std::string::npos);
  EXPECT_TRUE(polylines(empty).empty());
}

}  // namespace
}  // namespace sft::report
