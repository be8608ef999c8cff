// util/csv.h (the one CSV reader; CPython parity on random documents is in test_csv_parity.py) and util/utf8.h.
#include <gtest/gtest.h>

#include "util/csv.h"
#include "util/error.h"
#include "util/utf8.h"

namespace {

using sft::csv::LineEnds;
using sft::csv::Options;
using sft::csv::read_records;

std::vector<std::vector<std::string>> fields(std::string_view text, Options o) {
  std::vector<std::vector<std::string>> out;
  for (auto& r : read_records(text, "t.csv", o)) out.push_back(r.fields);
  return out;
}

TEST(Csv, PythonDefaultDialect) {
  // csv.reader (strict=False): quotes, doubled quotes, newline inside quotes, a quote inside an unquoted field is
  // literal, a blank line is [], text after a closing quote continues the field.
  auto rows = fields("a,\"b,c\",\"say \"\"hi\"\"\"\r\n\"multi\nline\",x\"y,\n\nlast,\"q\"tail", {});
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"a", "b,c", "say \"hi\""}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"multi\nline", "x\"y", ""}));
  EXPECT_TRUE(rows[2].empty());
  EXPECT_EQ(rows[3], (std::vector<std::string>{"last", "qtail"}));
  // End of file inside quotes: Python returns the partial field; strict mode throws naming the record and line.
  EXPECT_EQ(fields("a,\"open", {}), (std::vector<std::vector<std::string>>{{"a", "open"}}));
  EXPECT_THROW(read_records("a,\"open", "t.csv", {LineEnds::Rfc4180, true, false}), sft::Error);
}

TEST(Csv, CrLfInsideQuotesDependsOnHowTheFileIsRead) {
  const std::string text = "\"I.\r\nII.\",x\r\n";  // college_mathematics_dev.csv row 3 has such a field
  EXPECT_EQ(fields(text, {LineEnds::PythonBinaryLines})[0][0], "I.\r\nII.");
  EXPECT_EQ(fields(text, {LineEnds::PythonTextMode})[0][0], "I.\nII.");
  EXPECT_EQ(fields(text, {LineEnds::Rfc4180, true, false})[0][0], "I.\r\nII.");
}

TEST(Csv, LoneCarriageReturn) {
  // Python modes: a CR outside quotes ends the record, and text after it on the same line is csv.Error.
  EXPECT_THROW(read_records("a\rb\n", "t.csv", {LineEnds::PythonBinaryLines}), sft::Error);
  EXPECT_EQ(fields("a\rb\n", {LineEnds::PythonTextMode}), (std::vector<std::vector<std::string>>{{"a"}, {"b"}}));
  // RFC 4180 (the training-data reader): a lone CR is data.
  EXPECT_EQ(fields("a\rb\n", {LineEnds::Rfc4180, true, false}), (std::vector<std::vector<std::string>>{{"a\rb"}}));
}

TEST(Csv, StrictRecordErrorsAndLines) {
  auto recs = read_records("\xEF\xBB\xBFh\n\"x\ny\",1\nx\"y,1\n\"q\"z,2\n", "t.csv", {LineEnds::Rfc4180, true, true});
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(recs[0].fields[0], "h");
  EXPECT_EQ(recs[1].line, 2);
  EXPECT_EQ(recs[2].line, 4);
  EXPECT_TRUE(recs[1].error.empty());
  EXPECT_NE(recs[2].error.find("quote inside an unquoted field"), std::string::npos);
  EXPECT_NE(recs[3].error.find("text after a closing quote"), std::string::npos);
}

TEST(Utf8, ValidationDecodingCounting) {
  using namespace sft::utf8;
  EXPECT_EQ(find_invalid("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), -1);
  EXPECT_EQ(find_invalid("a\xC0\xAF"), 1);        // overlong
  EXPECT_EQ(find_invalid("\xED\xA0\x80"), 0);     // surrogate
  EXPECT_EQ(find_invalid("ok\xE2\x82"), 2);       // truncated
  EXPECT_EQ(count_code_points("caf\xC3\xA9\xF0\x9F\x98\x80"), 5);
  EXPECT_EQ(count_code_points("a\xFF" "b"), 3);   // a stray byte counts once
  size_t len = 0;
  EXPECT_EQ(decode_lenient("\xE2\x82\xAC", 0, len), 0x20ACu);
  EXPECT_EQ(len, 3u);
  EXPECT_EQ(decode_lenient("\xE2\x82", 0, len), 0xE2u);
  EXPECT_EQ(len, 1u);
  std::string s;
  append(s, 0x1F600);
  EXPECT_EQ(s, "\xF0\x9F\x98\x80");
  EXPECT_EQ(repair_lossy("a\xE2\x82" "b"), "a\xEF\xBF\xBD" "b");
}

}  // namespace
