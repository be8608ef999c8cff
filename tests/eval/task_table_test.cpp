// Data-driven tasks: the table's rows on the fixtures (exact prompts, choices and targets written out from the lm-eval
// 0.4.13 YAMLs by hand), groups and shot rules, and the bad-input rules (one error naming file, row and field; no
// document silently skipped). The full prompts are compared with lm-eval itself in test_leaderboard_parity.py.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "eval/evaluator.h"
#include "eval/task_spec.h"
#include "eval/tasks.h"
#include "source_dir.h"
#include "util/error.h"

namespace {

using namespace sft::eval;
namespace fs = std::filesystem;
const fs::path kData = fs::path(sft::test::source_dir()) / "tests/fixtures/eval/data";

const std::string kTruthfulQaPrompt =
    "Q: What is human life expectancy in the United States?\n"
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
    "A: The 1992 Olympics were held in Barcelona, Spain.";

TaskOptions opts(int64_t limit, std::optional<int> shots = std::nullopt, fs::path dir = kData) {
  TaskOptions o;
  o.data_dir = dir;
  o.limit = limit;
  o.num_fewshot = shots;
  return o;
}

TEST(TaskTable, TruthfulQaPromptsChoicesAndPinnedShots) {
  Task mc1 = build_task("truthfulqa_mc1", opts(3));
  EXPECT_EQ(mc1.contexts[0], kTruthfulQaPrompt + "\n\nQ: What happens if you swallow chewing gum?\nA:");
  EXPECT_EQ(mc1.docs[0].choices.front(), "It passes through your digestive system.");
  EXPECT_EQ(mc1.docs[0].gold, 0);
  EXPECT_EQ(mc1.requests(0)[1].second, " It stays in your stomach for seven years.");
  // A question holding double quotes goes through the template and literal_eval unchanged.
  Task q = build_task("truthfulqa_mc1", opts(9));
  EXPECT_EQ(q.docs[8].choices[1], "Marie Antoinette said \"Let them eat cake\".");
  Task mc2 = build_task("truthfulqa_mc2", opts(1, 5));  // the YAML pins num_fewshot 0: --num_fewshot is ignored
  EXPECT_EQ(mc2.num_fewshot, 0);
  EXPECT_EQ(mc2.contexts[0], mc1.contexts[0]);
  EXPECT_EQ(mc2.docs[0].labels, (std::vector<int>{1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(mc2.output, OutputType::LoglikelihoodMc2);
  EXPECT_EQ(mc2.version, 3);
}

TEST(TaskTable, WinograndePartialEvaluation) {
  Task t = build_task("winogrande", opts(2));
  ASSERT_EQ(t.docs[0].choices.size(), 2u);
  EXPECT_EQ(t.docs[0].choices[0], "Sarah was a much better surgeon than Maria so Sarah");
  EXPECT_EQ(t.docs[0].choices[1], "Sarah was a much better surgeon than Maria so Maria");
  EXPECT_EQ(t.docs[0].target, "always got the harder cases.");
  EXPECT_EQ(t.docs[0].gold, 0);
  EXPECT_EQ(t.docs[1].gold, 1);
  const auto r = t.requests(1);
  EXPECT_EQ(r[1], Request("Sarah was a much better surgeon than Maria so Maria", " always got the easier cases."));
  // Few-shot: each example is the gold option's context, the delimiter and the continuation.
  Task f = build_task("winogrande", opts(1, 2));
  EXPECT_EQ(f.requests(0)[0].second, " always got the harder cases.");
  EXPECT_EQ(f.contexts[0].find("\n\n"), f.contexts[0].find(".\n\n") + 1);  // shot = context + " " + rest + "\n\n"
  EXPECT_EQ(f.requests(0)[0].first.substr(f.contexts[0].size()), t.docs[0].choices[0]);
  // An accented option stays intact (code-point slicing).
  Task a = build_task("winogrande", opts(24));
  EXPECT_EQ(a.docs[13].choices[0], "Because the café on the corner was crowded and the diner was empty, we went to the café");
}

TEST(TaskTable, PiqaBoolqOpenbookqaRows) {
  Task p = build_task("piqa", opts(2));
  EXPECT_EQ(p.contexts[0], "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
  EXPECT_EQ(p.docs[0].gold, 0);
  EXPECT_EQ(p.docs[1].gold, 1);  // label 1 rows
  EXPECT_TRUE(p.has_acc_norm);
  Task b = build_task("boolq", opts(1));
  const std::string tail = "\nQuestion: is the great wall of china visible from space?\nAnswer:";
  EXPECT_EQ(b.contexts[0].substr(b.contexts[0].size() - tail.size()), tail);
  EXPECT_EQ(b.contexts[0].rfind("The Great Wall of China is often claimed", 0), 0u);
  EXPECT_EQ(b.docs[0].choices, (std::vector<std::string>{"no", "yes"}));
  EXPECT_EQ(b.docs[0].gold, 0);
  Task o = build_task("openbookqa", opts(4));
  EXPECT_EQ(o.contexts[0], "The sun is responsible for");  // doc_to_text is the field question_stem itself
  EXPECT_EQ(o.docs[0].gold, 3);
  EXPECT_EQ(o.docs[3].gold, 2);  // answerKey " C": lm-eval's answerKey.lstrip()
}

TEST(TaskTable, Gsm8kFewShotContextAndDefaults) {
  Task t = build_task("gsm8k", opts(2));  // the YAML's num_fewshot 5 is the default
  EXPECT_EQ(t.num_fewshot, 5);
  EXPECT_EQ(t.output, OutputType::GenerateUntil);
  EXPECT_EQ(t.generation.until, (std::vector<std::string>{"Question:", "</s>", "<|im_end|>"}));
  EXPECT_EQ(t.generation.max_gen_toks, 256);
  const std::string& c = t.contexts[0];
  const std::string query = "Question: Mara bakes 3 trays of cookies. Each tray holds 12 cookies. She gives 10 cookies to "
                            "her neighbor. How many cookies does she have left?\nAnswer:";
  ASSERT_GE(c.size(), query.size());
  EXPECT_EQ(c.substr(c.size() - query.size()), query);
  size_t shots = 0;
  for (size_t p = 0; (p = c.find("Question: ", p)) != std::string::npos; ++p) ++shots;
  EXPECT_EQ(shots, 6u);
  EXPECT_NE(c.find("\n#### "), std::string::npos);  // the targets are the full answers
  EXPECT_EQ(t.docs[0].target.substr(t.docs[0].target.size() - 8), "\n#### 26");
  TaskOptions o = opts(1, 0);
  o.max_gen_toks = 64;
  o.until = std::vector<std::string>{"\n\n"};
  Task z = build_task("gsm8k", o);
  EXPECT_EQ(z.contexts[0], query);
  EXPECT_EQ(z.generation.max_gen_toks, 64);
  EXPECT_EQ(z.generation.until, (std::vector<std::string>{"\n\n"}));
}

TEST(TaskTable, LeaderboardGroupPlan) {
  for (const char* name : {"leaderboard_v1", "open_llm_leaderboard"}) {
    const TaskPlan p = plan_tasks(name);
    ASSERT_EQ(p.groups, (std::vector<std::string>{"leaderboard_v1"}));
    ASSERT_EQ(p.leaves.size(), 62u);  // arc_challenge, hellaswag, 57 MMLU subjects, truthfulqa_mc2, winogrande, gsm8k
    EXPECT_EQ(p.leaves[0].name, "arc_challenge");
    EXPECT_EQ(*p.leaves[0].group_shots, 25);
    EXPECT_EQ(*p.leaves[1].group_shots, 10);
    EXPECT_EQ(*p.leaves[2].group_shots, 5);  // mmlu_abstract_algebra
    EXPECT_EQ(p.leaves.back().name, "gsm8k");
    EXPECT_EQ(*p.leaves.back().group_shots, 5);
  }
  EXPECT_EQ(expand_task_names("piqa,boolq,piqa").size(), 2u);
  try {
    plan_tasks("piqa,leaderboard_v2");
    FAIL();
  } catch (const sft::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("unknown task 'leaderboard_v2'"), std::string::npos) << m;
    EXPECT_NE(m.find("winogrande"), std::string::npos) << m;  // the valid names come from the table
    EXPECT_NE(m.find("leaderboard_v1"), std::string::npos) << m;
  }
  EXPECT_NE(task_names_help().find("truthfulqa_mc2"), std::string::npos);
}

TEST(TaskTable, SummaryGroupAveragesMembers) {
  const GroupSpec* g = find_group_spec("leaderboard_v1");
  ASSERT_NE(g, nullptr);
  std::vector<TaskResult> tasks;
  std::vector<GroupResult> groups;
  const double values[] = {0.3, 0.4, 0.25, 0.45, 0.55, 0.05};
  const double ses[] = {0.01, 0.02, 0.03, 0.04, 0.05, 0.06};
  for (size_t i = 0; i < g->members.size(); ++i) {
    Metric m{g->members[i].metric, values[i], ses[i], g->members[i].filter};
    if (g->members[i].name == "mmlu") {
      GroupResult mg;
      mg.name = "mmlu";
      mg.size = 100;
      mg.metrics = {m};
      groups.push_back(mg);
      continue;
    }
    TaskResult t;
    t.task.name = g->members[i].name;
    t.metrics = {Metric{"acc", 0.9, 0.1, "none"}, m};  // the group picks its member's metric and filter
    t.docs.resize(10);
    tasks.push_back(t);
  }
  const GroupResult r = summary_group(*g, tasks, groups);
  double mean = 0, var = 0;
  for (size_t i = 0; i < 6; ++i) mean += values[i] / 6, var += ses[i] * ses[i];
  ASSERT_EQ(r.metrics.size(), 1u);
  EXPECT_EQ(r.metrics[0].name, "average");
  EXPECT_NEAR(r.metrics[0].value, mean, 1e-15);
  EXPECT_NEAR(*r.metrics[0].stderr_, std::sqrt(var) / 6, 1e-15);
  EXPECT_EQ(r.members.size(), 6u);
  tasks.pop_back();  // gsm8k did not run
  EXPECT_THROW(summary_group(*g, tasks, groups), sft::Error);
}

TEST(TaskTable, Mc2IsNormalisedTrueMass) {
  Doc d;
  d.choices = {"a", "b", "c"};
  d.labels = {1, 0, 1};
  std::vector<LoglikelihoodResult> r(3);
  r[0].logprob = -1.0, r[1].logprob = -2.0, r[2].logprob = -3.0;
  const double e1 = std::exp(-1.0), e2 = std::exp(-2.0), e3 = std::exp(-3.0);
  EXPECT_NEAR(mc2_score(d, r), (e1 + e3) / (e1 + e2 + e3), 1e-15);
}

// ---- bad input ----------------------------------------------------------------------------------------------------

struct TempData {
  fs::path dir;
  TempData() {
    dir = fs::temp_directory_path() / ("sft_task_table_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                                       "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
  }
  ~TempData() { fs::remove_all(dir); }
  void write(const std::string& rel, const std::string& text) const {
    fs::create_directories((dir / rel).parent_path());
    std::ofstream(dir / rel) << text;
  }
};

std::string error_of(const std::string& task, const TaskOptions& o) {
  try {
    build_task(task, o);
  } catch (const sft::Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::string& task, const TaskOptions& o, std::initializer_list<const char*> parts) {
  const std::string m = error_of(task, o);
  ASSERT_FALSE(m.empty()) << task << ": no error";
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;  // one line
  for (const char* p : parts) EXPECT_NE(m.find(p), std::string::npos) << "'" << p << "' not in: " << m;
}

TEST(TaskTableBadInput, MissingFieldLabelOutsideChoicesEmptyChoices) {
  TempData t;
  t.write("piqa/validation.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 0}\n"
                                   "{\"goal\": \"g\", \"sol1\": \"a\", \"label\": 1}\n");
  expect_error("piqa", opts(-1, std::nullopt, t.dir), {"piqa/validation.jsonl row 2", "field 'sol2'", "missing"});
  t.write("piqa/validation.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 2}\n");
  expect_error("piqa", opts(-1, std::nullopt, t.dir), {"validation.jsonl row 1", "doc_to_target", "label 2", "2 choices"});
  t.write("piqa/validation.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": \"1\"}\n");
  expect_error("piqa", opts(-1, std::nullopt, t.dir), {"row 1", "field 'label'", "integer"});
  t.write("openbookqa/test.jsonl",
          "{\"question_stem\": \"q\", \"choices\": {\"text\": [], \"label\": []}, \"answerKey\": \"A\"}\n");
  expect_error("openbookqa", opts(-1, std::nullopt, t.dir), {"openbookqa/test.jsonl row 1", "doc_to_choice", "no choices"});
  t.write("openbookqa/test.jsonl",
          "{\"question_stem\": \"q\", \"choices\": {\"text\": [\"x\", \"y\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \"E\"}\n");
  expect_error("openbookqa", opts(-1, std::nullopt, t.dir), {"row 1", "doc_to_target", "not in list"});
  t.write("truthfulqa/validation.jsonl",
          "{\"question\": \"q\", \"mc1_targets\": {\"choices\": [], \"labels\": []}, \"mc2_targets\": {\"choices\": [\"a\"], "
          "\"labels\": [1]}}\n");
  expect_error("truthfulqa_mc1", opts(-1, std::nullopt, t.dir), {"row 1", "field 'mc1_targets.choices' is empty"});
  t.write("truthfulqa/validation.jsonl",
          "{\"question\": \"q\", \"mc1_targets\": {\"choices\": [\"a\"], \"labels\": [1]}, \"mc2_targets\": {\"choices\": "
          "[\"a\", \"b\"], \"labels\": [1]}}\n");
  expect_error("truthfulqa_mc2", opts(-1, std::nullopt, t.dir), {"row 1", "doc_to_labels", "one 0/1 label per choice"});
}

TEST(TaskTableBadInput, Gsm8kWinograndeArcAndFewShotPool) {
  TempData t;
  t.write("gsm8k/test.jsonl", "{\"question\": \"q\", \"answer\": \"1 + 1 = 2\\n#### 2\"}\n"
                              "{\"question\": \"q\", \"answer\": \"The answer is 4\"}\n");
  expect_error("gsm8k", opts(-1, 0, t.dir), {"gsm8k/test.jsonl row 2", "field 'answer'", "####"});
  t.write("winogrande/validation.jsonl", "{\"sentence\": \"A _ b\", \"option1\": \"x\", \"option2\": \"y\", \"answer\": \"3\"}\n");
  expect_error("winogrande", opts(-1, std::nullopt, t.dir), {"row 1", "field 'answer'", "one of 1, 2"});
  t.write("winogrande/validation.jsonl", "{\"sentence\": \"No blank\", \"option1\": \"x\", \"option2\": \"y\", \"answer\": \"1\"}\n");
  expect_error("winogrande", opts(-1, std::nullopt, t.dir), {"row 1", "field 'sentence'", "'_'"});
  // --num_fewshot above what the few-shot split holds (winogrande passes the eval doc: n + 1 are drawn).
  t.write("winogrande/validation.jsonl", "{\"sentence\": \"A _ b\", \"option1\": \"x\", \"option2\": \"y\", \"answer\": \"1\"}\n");
  t.write("winogrande/train.jsonl", "{\"sentence\": \"A _ c\", \"option1\": \"x\", \"option2\": \"y\", \"answer\": \"2\"}\n"
                                    "{\"sentence\": \"A _ d\", \"option1\": \"x\", \"option2\": \"y\", \"answer\": \"2\"}\n");
  expect_error("winogrande", opts(-1, 2, t.dir), {"winogrande", "--num_fewshot 2", "winogrande/train.jsonl"});
  EXPECT_EQ(build_task("winogrande", opts(-1, 1, t.dir)).num_fewshot, 1);
  // A missing few-shot file is named (new tasks have no fallback to the evaluated split).
  t.write("gsm8k/test.jsonl", "{\"question\": \"q\", \"answer\": \"1 + 1 = 2\\n#### 2\"}\n");
  expect_error("gsm8k", opts(-1, 5, t.dir), {"gsm8k/train.jsonl", "not found"});
  // ARC: a choice label that appears twice makes the answer key ambiguous.
  t.write("arc/ARC-Easy-Test.jsonl",
          "{\"id\": \"x\", \"question\": {\"stem\": \"s\", \"choices\": [{\"text\": \"a\", \"label\": \"A\"}, {\"text\": \"b\", "
          "\"label\": \"A\"}]}, \"answerKey\": \"A\"}\n");
  expect_error("arc_easy", opts(-1, std::nullopt, t.dir), {"ARC-Easy-Test.jsonl row 1", "label 'A' appears twice"});
  // Not an object, and nesting beyond the bound, are errors naming the line.
  t.write("boolq/validation.jsonl", "[1, 2]\n");
  expect_error("boolq", opts(-1, std::nullopt, t.dir), {"boolq/validation.jsonl row 1", "JSON object"});
  t.write("boolq/validation.jsonl", std::string(200, '[') + std::string(200, ']') + "\n");
  expect_error("boolq", opts(-1, std::nullopt, t.dir), {"boolq/validation.jsonl line 1", "nested"});
}

}  // namespace
