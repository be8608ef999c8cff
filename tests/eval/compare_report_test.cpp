// The --compare report: confidence intervals of deltas, trainer_log.jsonl reading, Markdown/HTML content.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "eval/compare_report.h"
#include "util/error.h"

namespace sft::eval {
namespace {

TEST(CompareReport, IntervalFromStderr) {
  CompareEntry e{"arc_easy", "acc", 0.50, 0.56, 0.01, 0.02};
  ASSERT_TRUE(e.ci95().has_value());
  EXPECT_NEAR(*e.ci95(), 1.96 * std::sqrt(0.01 * 0.01 + 0.02 * 0.02), 1e-12);
  EXPECT_TRUE(e.significant());  // 0.06 - 0.0438 > 0
  CompareEntry small{"hellaswag", "acc", 0.50, 0.52, 0.02, 0.02};
  EXPECT_FALSE(small.significant());  // 0.02 < 1.96 * 0.0283
  CompareEntry worse{"mmlu", "acc", 0.50, 0.40, 0.01, 0.01};
  EXPECT_TRUE(worse.significant());
  CompareEntry na{"x", "acc", 0.5, 0.6, std::nullopt, 0.01};
  EXPECT_FALSE(na.ci95().has_value());
  EXPECT_FALSE(na.significant());
}

TEST(CompareReport, ReadsTrainerLogAndNamesBadLines) {
  const auto dir = std::filesystem::temp_directory_path() / ("sft_cmp_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  EXPECT_TRUE(read_trainer_log(dir).empty());  // no log: no curve
  {
    std::ofstream f(dir / "trainer_log.jsonl");
    f << R"({"step": 10, "epoch": 0.5, "loss": 2.0})" << "\n\n" << R"({"step": 10, "eval_loss": 2.2})" << "\n";
  }
  auto pts = read_trainer_log(dir);
  ASSERT_EQ(pts.size(), 2u);
  EXPECT_EQ(pts[0].step, 10);
  EXPECT_DOUBLE_EQ(*pts[0].loss, 2.0);
  EXPECT_FALSE(pts[0].eval_loss.has_value());
  EXPECT_DOUBLE_EQ(*pts[1].eval_loss, 2.2);
  EXPECT_NE(loss_curve_svg(pts).find("<polyline"), std::string::npos);
  {
    std::ofstream f(dir / "trainer_log.jsonl");
    f << R"({"step": 1, "loss": 1})" << "\n{oops\n";
  }
  try {
    read_trainer_log(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("trainer_log.jsonl line 2"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(CompareReport, MarkdownAndHtmlCarryTablesDeltasAndCurve) {
  CompareReportInput in;
  in.base_name = "base<dir>";
  in.tuned_name = "tuned";
  in.base_table = "|Tasks|Version|\n|-----|------:|\n|arc_easy|1|\n";
  in.tuned_table = in.base_table;
  in.entries = {{"arc_easy", "acc", 0.50, 0.56, 0.01, 0.02}, {"hellaswag", "acc_norm", 0.5, 0.49, 0.02, 0.02}};
  in.loss = {{1, 3.0, std::nullopt}, {2, 2.0, 2.5}};
  const std::string md = compare_report_markdown(in);
  EXPECT_NE(md.find("|arc_easy "), std::string::npos) << md;
  EXPECT_NE(md.find("+0.0600"), std::string::npos);
  EXPECT_NE(md.find("better"), std::string::npos);
  EXPECT_NE(md.find("within noise"), std::string::npos);
  EXPECT_NE(md.find("loss_curve.svg"), std::string::npos);
  EXPECT_NE(md.find("3.0000 at step 1"), std::string::npos);
  const std::string html = compare_report_html(in);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("base&lt;dir&gt;"), std::string::npos);  // escaped
  EXPECT_NE(html.find("<td>arc_easy</td>"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("eval loss"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  in.loss.clear();
  EXPECT_NE(compare_report_markdown(in).find("No trainer_log.jsonl"), std::string::npos);
}

}  // namespace
}  // namespace sft::eval
