// Task loading and prompt construction on the real fixture data (tests/fixtures/eval/data), plus CSV edge cases and
// the metric formulas. Prompt strings are checked against the lm-eval 0.4.13 templates (quoted in tasks.cpp); the
// full prompts are also compared with lm-eval itself in test_lm_eval_parity.py.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "data/temp_dir.h"
#include "source_dir.h"
#include "eval/evaluator.h"
#include "eval/task_data.h"
#include "eval/tasks.h"
#include "util/error.h"

namespace {

using namespace sft::eval;
const std::filesystem::path kData = std::filesystem::path(sft::test::source_dir()) / "tests/fixtures/eval/data";

TEST(Tasks, MmluPromptZeroAndFewShot) {
  TaskOptions o;
  o.data_dir = kData;
  o.limit = 3;
  Task t = build_task("mmlu_marketing", o);
  ASSERT_EQ(t.docs.size(), 3u);
  EXPECT_EQ(t.n_original, 234);
  EXPECT_EQ(t.group, "mmlu_other");
  const std::string desc = "The following are multiple choice questions (with answers) about marketing.\n\n";
  EXPECT_EQ(t.contexts[0], desc +
                               "This is a hierarchy of effects or sequential model used to explain how advertising "
                               "works:\nA. ADD.\nB. AIDA.\nC. PESTLE.\nD. SWOT.\nAnswer:");
  EXPECT_EQ(t.docs[0].gold, 1);
  EXPECT_EQ(t.docs[0].choices, (std::vector<std::string>{"A", "B", "C", "D"}));
  o.num_fewshot = 5;
  Task f = build_task("mmlu_marketing", o);
  // Five dev shots, each "query Answer-letter\n\n", identical for every question (first_n sampler).
  EXPECT_EQ(f.contexts[0].substr(0, desc.size()), desc);
  EXPECT_EQ(f.contexts[1].substr(0, f.contexts[1].size() - f.docs[1].query.size()),
            f.contexts[0].substr(0, f.contexts[0].size() - f.docs[0].query.size()));
  size_t shots = 0;
  for (size_t p = 0; (p = f.contexts[0].find("\nAnswer: ", p)) != std::string::npos; ++p) ++shots;
  EXPECT_EQ(shots, 5u);
}

TEST(Tasks, ArcAndHellaswagFormats) {
  TaskOptions o;
  o.data_dir = kData;
  o.arc_split = "dev";
  o.limit = 2;
  Task a = build_task("arc_easy", o);
  EXPECT_EQ(a.contexts[0], "Question: Which technology was developed most recently?\nAnswer:");
  EXPECT_EQ(a.docs[0].choices[0], "cellular telephone");
  EXPECT_EQ(a.docs[0].gold, 0);
  EXPECT_TRUE(a.has_acc_norm);
  Task h = build_task("hellaswag", o);
  // "Roof shingle removal: A man is sitting on a roof. He" (ctx_b "he" capitalized).
  EXPECT_EQ(h.contexts[0], "Roof shingle removal: A man is sitting on a roof. He");
  EXPECT_EQ(h.docs[0].gold, 3);
  // Few-shot from the evaluated split: the evaluated document never appears among its own examples.
  o.num_fewshot = 5;
  o.limit = 20;
  Task hf = build_task("hellaswag", o);
  for (size_t i = 0; i < hf.docs.size(); ++i) {
    const std::string own = hf.docs[i].query + " " + hf.docs[i].choices[hf.docs[i].gold] + "\n\n";
    EXPECT_EQ(hf.contexts[i].find(own), std::string::npos) << i;
  }
  EXPECT_NE(hf.contexts[0], hf.contexts[1]);  // random sampler: different shots per document
}

TEST(Tasks, MissingDataNamesTheFile) {
  TaskOptions o;
  o.data_dir = kData;
  try {
    build_task("arc_easy", o);  // test split is not in the fixtures
    FAIL();
  } catch (const sft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("ARC-Easy-Test.jsonl"), std::string::npos) << e.what();
  }
  EXPECT_THROW(expand_task_names("mmlu,nonsense"), sft::Error);
  EXPECT_EQ(expand_task_names("mmlu").size(), 57u);
  EXPECT_EQ(expand_task_names("mmlu_stem,arc_easy").back(), "arc_easy");
}

// The --data_dir layout's file choice: the reader's file, else <split>.parquet, else every hub shard in order.
TEST(Tasks, LocateSplitFilesPrefersTheReaderFileThenParquetThenAllShards) {
  sft::data::testing::TempDir tmp;
  const auto dir = tmp.path();
  const auto primary = dir / "validation.jsonl", stem = dir / "validation";
  EXPECT_TRUE(locate_split_files(primary, stem).empty());
  // Names that are not this split's shards are ignored.
  for (const char* other : {"validation-0-of-2.parquet", "validation_x-00000-of-00001.parquet",
                            "train-00000-of-00001.parquet", "validation-00000-of-00001.parquet.tmp"})
    tmp.write(other, "x");
  EXPECT_TRUE(locate_split_files(primary, stem).empty());
  const auto s1 = tmp.write("validation-00001-of-00002.parquet", "x");
  try {
    locate_split_files(primary, stem);
    FAIL();
  } catch (const sft::Error& e) {
    EXPECT_EQ(std::string(e.what()), (dir / "validation-00000-of-00002.parquet").string() +
                                         " is missing (the split has 2 shards; all of them are read)");
  }
  const auto s0 = tmp.write("validation-00000-of-00002.parquet", "x");
  EXPECT_EQ(locate_split_files(primary, stem), (std::vector<std::filesystem::path>{s0, s1}));
  EXPECT_EQ(split_files_name({s0, s1}), (dir / "validation-*-of-00002.parquet").string());
  tmp.write("validation-00002-of-00003.parquet", "x");
  EXPECT_THROW(locate_split_files(primary, stem), sft::Error);  // shards of two different counts
  const auto single = tmp.write("validation.parquet", "x");
  EXPECT_EQ(locate_split_files(primary, stem), std::vector<std::filesystem::path>{single});
  tmp.write("validation.jsonl", "{}");
  EXPECT_EQ(locate_split_files(primary, stem), std::vector<std::filesystem::path>{primary});
  EXPECT_EQ(split_files_name({primary}), primary.string());
}

TEST(Metrics, AccNormUsesCodePointLengthAndFirstMax) {
  Doc d;
  d.choices = {"ab", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", "xyzw"};  // "éééé" is 4 code points, 8 bytes
  d.gold = 1;
  std::vector<LoglikelihoodResult> r(3);
  r[0].logprob = -3.0;  // norm -1.5
  r[1].logprob = -4.0;  // norm -1.0 (with byte length it would be -0.5: still best; make a tie case below)
  r[2].logprob = -4.0;  // norm -1.0: tie with choice 1 -> first wins
  auto res = score_doc(d, r, 0);
  EXPECT_EQ(res.acc, 0.0);       // argmax ll = choice 0
  EXPECT_EQ(res.acc_norm, 1.0);  // tie between 1 and 2 -> 1
}

TEST(Metrics, StderrAndPooledMatchFormulas) {
  std::mt19937 rng(5);
  std::vector<std::vector<double>> groups;
  std::vector<Metric> per;
  std::vector<int64_t> sizes;
  std::vector<double> all;
  for (int g = 0; g < 4; ++g) {
    std::vector<double> v(static_cast<size_t>(5 + g * 7));
    for (auto& x : v) x = static_cast<double>(rng() % 2);
    per.push_back(mean_metric("acc", v));
    sizes.push_back(static_cast<int64_t>(v.size()));
    all.insert(all.end(), v.begin(), v.end());
    double m = 0, ss = 0;
    for (double x : v) m += x / static_cast<double>(v.size());
    for (double x : v) ss += (x - m) * (x - m);
    EXPECT_NEAR(*per.back().stderr_, std::sqrt(ss / static_cast<double>(v.size() - 1) / static_cast<double>(v.size())),
                1e-12);
  }
  Metric pooled = pooled_metric("acc", per, sizes);
  double mean_all = 0, num = 0, N = 0;
  for (double x : all) mean_all += x / static_cast<double>(all.size());
  EXPECT_NEAR(pooled.value, mean_all, 1e-12);  // size-weighted mean == mean over all docs
  for (size_t i = 0; i < per.size(); ++i) {
    double n = static_cast<double>(sizes[i]);
    num += (n - 1) * (*per[i].stderr_) * (*per[i].stderr_) * n;
    N += n;
  }
  EXPECT_NEAR(*pooled.stderr_, std::sqrt(num / (N - 4) / N), 1e-12);
  EXPECT_FALSE(mean_metric("acc", {1.0}).stderr_.has_value());  // lm-eval reports N/A below two docs
}

}  // namespace
