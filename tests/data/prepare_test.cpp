// prepare_dataset (read -> split -> tokenize -> truncate) with the fake encoder: options, skips, errors, report text.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/prepare.h"
#include "fake_encoder.h"
#include "temp_dir.h"
#include "util/error.h"

namespace sft::data {
namespace {

namespace fs = std::filesystem;
using testing::FakeEncoder;


std::string expect_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected sft::Error";
  return "";
}

TEST(Prepare, TrainEvalFilesTruncationAndReport) {
  testing::TempDir tmp;
  PrepareOptions po;
  po.dataset_path = tmp.write("train.jsonl",
                               "{\"instruction\":\"a\",\"output\":\"short\"}\n"
                               "{\"instruction\":\"b\",\"output\":\"" + std::string(300, 'x') + "\"}\n");
  po.eval_dataset_path = tmp.write("eval.csv", "instruction,output\nq,ok\n");
  po.templ.tmpl = Template::Plain;
  po.max_seq_length = 100;
  PreparedData d = prepare_dataset(po, FakeEncoder());
  ASSERT_EQ(d.train->size(), 2u);
  ASSERT_EQ(d.eval->size(), 1u);
  EXPECT_EQ((*d.train)[1].ids.size(), 100u);  // cut to max_seq_length (truncation right)
  // "b\n" + 300 x + EOS = 303 tokens, 301 targets; 100 kept, of which 98 are targets ("b\n" masked).
  EXPECT_EQ(d.train_report.over_length, 1);
  EXPECT_EQ(d.train_report.target_tokens_dropped, 301 - 98);
  EXPECT_EQ(d.train_report.max, 303);
  EXPECT_EQ(d.train_examples[1].instruction, "b");
  EXPECT_EQ((*d.train)[1].source_index, 1);
  const std::string text = format_report(d.train_report, Truncation::Right);
  EXPECT_NE(text.find("over max_seq_length: 1 samples (50.0%); truncation right cuts 203 of"), std::string::npos)
      << text;
  EXPECT_NE(text.find("0 samples lose all their targets"), std::string::npos) << text;
  po.truncation = Truncation::Drop;
  PreparedData dropped = prepare_dataset(po, FakeEncoder());
  EXPECT_EQ(dropped.train->size(), 1u);
  EXPECT_EQ(dropped.train_report.samples_removed, 1);
}

TEST(Prepare, TemplateErrorsAreRowErrorsOrSkips) {
  testing::TempDir tmp;
  PrepareOptions po;
  po.dataset_path = tmp.write("mixed.jsonl",
                               "{\"instruction\":\"a\",\"output\":\"b\"}\n"
                               "{\"messages\":[{\"role\":\"user\",\"content\":\"u\"},{\"role\":\"assistant\",\"content\":\"v\"}]}\n");
  EXPECT_NE(expect_error([&] { prepare_dataset(po, FakeEncoder()); })
                .find("mixed.jsonl line 2: a chat row (\"messages\") needs --template chatml, not alpaca"),
            std::string::npos);
  po.read.skip_bad_rows = true;
  PreparedData d = prepare_dataset(po, FakeEncoder());
  EXPECT_EQ(d.train->size(), 1u);
  EXPECT_EQ(d.train_read.rows_skipped, 1);
  ASSERT_EQ(d.train_read.skip_messages.size(), 1u);
  // chatml takes both shapes.
  po.templ.tmpl = Template::ChatML;
  EXPECT_EQ(prepare_dataset(po, FakeEncoder()).train->size(), 2u);
}

TEST(Prepare, OptionErrors) {
  testing::TempDir tmp;
  PrepareOptions po;
  po.dataset_path = tmp.write("t.json", R"([{"instruction":"a","output":"b"},{"instruction":"c","output":"d"}])");
  po.eval_dataset_path = po.dataset_path;
  po.validation_split = parse_validation_split("1");
  EXPECT_EQ(expect_error([&] { prepare_dataset(po, FakeEncoder()); }),
            "give either an eval dataset or a validation split, not both");
  po.eval_dataset_path.clear();
  PreparedData d = prepare_dataset(po, FakeEncoder());
  EXPECT_EQ(d.train->size(), 1u);
  EXPECT_EQ(d.eval->size(), 1u);
  po.validation_split = parse_validation_split("2");
  EXPECT_NE(expect_error([&] { prepare_dataset(po, FakeEncoder()); }).find("would leave none to train on"),
            std::string::npos);
  po.validation_split = {};
  po.dataset_path = tmp.write("empty.json", "[]");
  EXPECT_NE(expect_error([&] { prepare_dataset(po, FakeEncoder()); }).find("empty.json: no usable rows"),
            std::string::npos);
}

}  // namespace
}  // namespace sft::data
