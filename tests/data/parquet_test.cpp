// Parquet and Arrow IPC datasets (data/parquet_reader.cpp). The files are written here with Arrow itself (the same
// library version the reader links): every row format read from Parquet and Arrow equals the same rows read from
// JSON lines; origins name the row group (or record batch) and row; a wrong column type, a corrupt footer, a truncated
// file, nulls and invalid UTF-8 are one-line errors naming the file (and row). In a build without Arrow: the error
// that says so. `datasets`-written files and TRL parity: test_trl_formats.py. parquet_rows_as_json (every column as
// JSON, for the eval task files): each Arrow type against the JSON a dataset's to_json writes for it.
#include <gtest/gtest.h>

#include <functional>

#include "data/dataset.h"
#include "data/parquet_rows.h"
#include "temp_dir.h"
#include "util/error.h"

#if SFT_HAVE_ARROW
#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/writer.h>
#include <arrow/json/from_string.h>
#include <parquet/arrow/writer.h>
#endif

using namespace sft::data;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const sft::Error& e) {
    return e.what();
  }
  return "(no error)";
}

ReadOptions keep_all() {
  ReadOptions o;
  o.keep_empty_responses = true;
  return o;
}

}  // namespace

#if SFT_HAVE_ARROW

namespace {

std::shared_ptr<arrow::DataType> messages_type() {
  return arrow::list(arrow::struct_({arrow::field("content", arrow::utf8()), arrow::field("role", arrow::utf8())}));
}

// A table from (name, type, JSON array of values) columns.
std::shared_ptr<arrow::Table> table(
    const std::vector<std::tuple<std::string, std::shared_ptr<arrow::DataType>, std::string>>& columns) {
  std::vector<std::shared_ptr<arrow::Field>> fields;
  std::vector<std::shared_ptr<arrow::Array>> arrays;
  for (const auto& [name, type, values] : columns) {
    fields.push_back(arrow::field(name, type));
    arrays.push_back(arrow::json::ArrayFromJSONString(type, values).ValueOrDie());
  }
  return arrow::Table::Make(arrow::schema(fields), arrays);
}

std::string parquet_bytes(const arrow::Table& t, int64_t row_group_size) {
  auto sink = arrow::io::BufferOutputStream::Create().ValueOrDie();
  const arrow::Status st = parquet::arrow::WriteTable(t, arrow::default_memory_pool(), sink, row_group_size);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return sink->Finish().ValueOrDie()->ToString();
}

std::string ipc_bytes(const arrow::Table& t, bool file_format, int64_t batch_rows) {
  auto sink = arrow::io::BufferOutputStream::Create().ValueOrDie();
  auto writer = file_format ? arrow::ipc::MakeFileWriter(sink, t.schema()).ValueOrDie()
                            : arrow::ipc::MakeStreamWriter(sink, t.schema()).ValueOrDie();
  EXPECT_TRUE(writer->WriteTable(t, batch_rows).ok());
  EXPECT_TRUE(writer->Close().ok());
  return sink->Finish().ValueOrDie()->ToString();
}

// What a reader produced, comparable across file types (origins left out).
std::vector<std::string> summary(const ReadResult& r) {
  std::vector<std::string> out;
  for (const Example& e : r.examples) {
    std::string s = std::string(row_format_name(e.format)) + "|" + e.instruction + "|" + e.input + "|" + e.output + "|" +
                    e.text + "|" + e.prompt + "|" + e.completion;
    for (const auto* list : {&e.messages, &e.prompt_messages, &e.completion_messages})
      for (const Message& m : *list) s += "|" + m.role + ":" + m.content;
    out.push_back(s);
  }
  return out;
}

}  // namespace

TEST(Parquet, EveryFormatReadsAsFromJsonLines) {
  struct Case {
    std::shared_ptr<arrow::Table> t;
    std::string jsonl;
  };
  const std::vector<Case> cases = {
      {table({{"text", arrow::utf8(), R"(["a", "", "é\nb", "d", "e", "f", "g"])"}}),
       "{\"text\":\"a\"}\n{\"text\":\"\"}\n{\"text\":\"é\\nb\"}\n{\"text\":\"d\"}\n{\"text\":\"e\"}\n{\"text\":\"f\"}\n"
       "{\"text\":\"g\"}\n"},
      {table({{"prompt", arrow::large_utf8(), R"(["p1", "p2"])"}, {"completion", arrow::utf8(), R"(["c1", ""])"},
              {"id", arrow::int64(), "[1, 2]"}}),
       "{\"prompt\":\"p1\",\"completion\":\"c1\"}\n{\"prompt\":\"p2\",\"completion\":\"\"}\n"},
      {table({{"messages", messages_type(),
               R"([[{"role":"system","content":"S"},{"role":"user","content":"U"},{"role":"assistant","content":"A"}],
                   [{"role":"user","content":"u"},{"role":"assistant","content":"a"}]])"}}),
       R"({"messages":[{"role":"system","content":"S"},{"role":"user","content":"U"},{"role":"assistant","content":"A"}]})"
       "\n" R"({"messages":[{"role":"user","content":"u"},{"role":"assistant","content":"a"}]})" "\n"},
      {table({{"prompt", messages_type(), R"([[{"role":"user","content":"q"}]])"},
              {"completion", messages_type(), R"([[{"role":"assistant","content":"r"}]])"}}),
       R"({"prompt":[{"role":"user","content":"q"}],"completion":[{"role":"assistant","content":"r"}]})" "\n"},
      {table({{"instruction", arrow::utf8(), R"(["i1", "i2"])"}, {"input", arrow::utf8(), R"([null, "in"])"},
              {"output", arrow::utf8(), R"(["o1", "o2"])"}}),
       "{\"instruction\":\"i1\",\"output\":\"o1\"}\n{\"instruction\":\"i2\",\"input\":\"in\",\"output\":\"o2\"}\n"},
  };
  for (const Case& c : cases) {
    const auto want = summary(parse_jsonl(c.jsonl, "f.jsonl", keep_all()));
    ASSERT_FALSE(want.empty());
    EXPECT_EQ(summary(parse_parquet(parquet_bytes(*c.t, 3), "f.parquet", keep_all())), want) << c.jsonl;
    EXPECT_EQ(summary(parse_arrow_ipc(ipc_bytes(*c.t, false, 2), "f.arrow", keep_all())), want) << c.jsonl;
    EXPECT_EQ(summary(parse_arrow_ipc(ipc_bytes(*c.t, true, 2), "f.arrow", keep_all())), want) << c.jsonl;
  }
  // Other keys of a message (tool calls, weights...) are ignored whatever their type, as in JSON.
  auto extra = arrow::list(arrow::struct_({arrow::field("role", arrow::utf8()), arrow::field("content", arrow::utf8()),
                                           arrow::field("weight", arrow::float64()),
                                           arrow::field("tool_calls", arrow::list(arrow::int64()))}));
  auto with_extra = table({{"messages", extra,
                            R"([[{"role":"user","content":"u","weight":0.5,"tool_calls":[1,2]},
                                 {"role":"assistant","content":"a","weight":null,"tool_calls":null}]])"}});
  const auto plain = summary(
      parse_jsonl(R"({"messages":[{"role":"user","content":"u"},{"role":"assistant","content":"a"}]})", "f.jsonl",
                  keep_all()));
  EXPECT_EQ(summary(parse_parquet(parquet_bytes(*with_extra, 10), "f.parquet", keep_all())), plain);
  EXPECT_EQ(summary(parse_arrow_ipc(ipc_bytes(*with_extra, false, 10), "f.arrow", keep_all())), plain);
  // Dictionary-encoded strings (pandas categoricals) read as strings.
  auto dict = arrow::DictionaryArray::FromArrays(
                  arrow::dictionary(arrow::int32(), arrow::utf8()),
                  arrow::json::ArrayFromJSONString(arrow::int32(), "[1, 0, 1]").ValueOrDie(),
                  arrow::json::ArrayFromJSONString(arrow::utf8(), R"(["x", "y"])").ValueOrDie())
                  .ValueOrDie();
  auto t = arrow::Table::Make(arrow::schema({arrow::field("text", dict->type())}), {dict});
  EXPECT_EQ(summary(parse_arrow_ipc(ipc_bytes(*t, false, 10), "f.arrow", keep_all())),
            summary(parse_jsonl("{\"text\":\"y\"}\n{\"text\":\"x\"}\n{\"text\":\"y\"}\n", "f.jsonl", keep_all())));
}

TEST(Parquet, OriginsNameRowGroupAndRow) {
  auto t = table({{"text", arrow::utf8(), R"(["a", "b", "c", "d", "e", "f", "g"])"}});
  const ReadResult r = parse_parquet(parquet_bytes(*t, 3), "d.parquet", keep_all());
  ASSERT_EQ(r.examples.size(), 7u);
  EXPECT_EQ(r.examples[0].origin, "d.parquet row group 1 row 1 (row 1)");
  EXPECT_EQ(r.examples[4].origin, "d.parquet row group 2 row 2 (row 5)");
  EXPECT_EQ(r.examples[6].origin, "d.parquet row group 3 row 1 (row 7)");
  const ReadResult a = parse_arrow_ipc(ipc_bytes(*t, false, 4), "d.arrow", keep_all());
  EXPECT_EQ(a.examples[5].origin, "d.arrow record batch 2 row 2 (row 6)");
}

TEST(Parquet, RowErrorsNameRowGroupRowAndField) {
  auto t = table({{"prompt", arrow::utf8(), R"(["p", "p", "p", "p"])"}, {"completion", arrow::utf8(), R"(["c", "c", "c", null])"}});
  EXPECT_EQ(error_of([&] { parse_parquet(parquet_bytes(*t, 2), "d.parquet", keep_all()); }),
            "d.parquet row group 2 row 2 (row 4): missing \"completion\"");
  ReadOptions skip = keep_all();
  skip.skip_bad_rows = true;
  const ReadResult r = parse_parquet(parquet_bytes(*t, 2), "d.parquet", skip);
  EXPECT_EQ(r.examples.size(), 3u);
  EXPECT_EQ(r.rows_skipped, 1);
  // Invalid UTF-8 in a string column (Arrow does not validate what a file holds).
  auto bad = arrow::Table::Make(arrow::schema({arrow::field("text", arrow::binary())}),
                                {arrow::json::ArrayFromJSONString(arrow::binary(), R"(["ok", "x\u00ff"])").ValueOrDie()});
  // binary is not a string column: refused by type; a utf8 column holding bad bytes is refused by row.
  EXPECT_NE(error_of([&] { parse_parquet(parquet_bytes(*bad, 10), "d.parquet", keep_all()); })
                .find("d.parquet: column \"text\" has Arrow type binary; expected a string"),
            std::string::npos);
  arrow::StringBuilder sb;
  ASSERT_TRUE(sb.Append("fine").ok());
  ASSERT_TRUE(sb.Append(std::string("bad \xC3\x28 bytes")).ok());
  auto strings = sb.Finish().ValueOrDie();
  auto t2 = arrow::Table::Make(arrow::schema({arrow::field("text", arrow::utf8())}), {strings});
  // Arrow's full validation (offsets, UTF-8) runs on every batch before a value is read: damage there names the
  // batch and stops the read, even with skip_bad_rows (as an unterminated JSON array does).
  EXPECT_EQ(error_of([&] { parse_arrow_ipc(ipc_bytes(*t2, false, 10), "d.arrow", skip); }),
            "d.arrow record batch 1: damaged data (In column 0: Invalid: Invalid UTF8 sequence at string index 1); "
            "this cannot be skipped");
}

TEST(Parquet, WrongColumnTypesAreFileErrors) {
  auto t = table({{"prompt", arrow::utf8(), R"(["p"])"}, {"completion", arrow::int64(), "[5]"}});
  EXPECT_EQ(error_of([&] { parse_parquet(parquet_bytes(*t, 10), "d.parquet", keep_all()); }),
            "d.parquet: column \"completion\" has Arrow type int64; expected a string or a list of messages (struct "
            "with string \"role\" and \"content\")");
  auto m = table({{"messages", arrow::list(arrow::utf8()), R"([["a"]])"}});
  EXPECT_EQ(error_of([&] { parse_parquet(parquet_bytes(*m, 10), "d.parquet", keep_all()); }),
            "d.parquet: column \"messages\" has Arrow type list<element: string>; expected a list of messages (struct "
            "with string \"role\" and \"content\")");
  auto none = table({{"question", arrow::utf8(), R"(["q"])"}});
  EXPECT_NE(error_of([&] { parse_parquet(parquet_bytes(*none, 10), "d.parquet", keep_all()); })
                .find("d.parquet: no known columns: expected instruction and output (alpaca)"),
            std::string::npos);
  // Mixed formats across rows of one file, as in JSON.
  auto mixed = table({{"prompt", arrow::utf8(), R"(["p", null])"}, {"completion", arrow::utf8(), R"(["c", null])"},
                      {"text", arrow::utf8(), R"([null, "t"])"}});
  EXPECT_NE(error_of([&] { parse_parquet(parquet_bytes(*mixed, 10), "d.parquet", keep_all()); })
                .find("d.parquet row group 1 row 2 (row 2): mixed formats"),
            std::string::npos);
}

TEST(Parquet, CorruptOrTruncatedFilesAreOneLineErrors) {
  auto t = table({{"text", arrow::utf8(), R"(["a", "b", "c"])"}});
  const std::string good = parquet_bytes(*t, 2);
  auto check = [](const std::string& bytes, const std::string& want) {
    const std::string msg = error_of([&] { parse_parquet(bytes, "d.parquet", keep_all()); });
    EXPECT_EQ(msg.rfind(want, 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  };
  std::string bad_magic = good;
  bad_magic[bad_magic.size() - 1] = 'X';  // the footer's "PAR1"
  check(bad_magic, "d.parquet: not a readable Parquet file: ");
  std::string bad_len = good;  // the footer length (4 bytes before the magic) points before the file start
  bad_len[bad_len.size() - 5] = '\x7f';
  check(bad_len, "d.parquet: not a readable Parquet file: ");
  std::string bad_footer = good;  // garbage in the Thrift footer itself
  for (size_t k = bad_footer.size() - 40; k < bad_footer.size() - 8; ++k) bad_footer[k] = '\xee';
  check(bad_footer, "d.parquet");
  check(good.substr(0, good.size() / 2), "d.parquet: not a readable Parquet file: ");
  check("", "d.parquet: not a readable Parquet file: ");
  check("PAR1", "d.parquet: not a readable Parquet file: ");
  const std::string ipc = ipc_bytes(*t, false, 2);
  const std::string msg = error_of([&] { parse_arrow_ipc(ipc.substr(0, ipc.size() - 20), "d.arrow", keep_all()); });
  EXPECT_EQ(msg.rfind("d.arrow: not a readable Arrow IPC stream: ", 0), 0u) << msg;
  EXPECT_EQ(error_of([&] { parse_arrow_ipc("not arrow at all", "d.arrow", keep_all()); })
                .rfind("d.arrow: not a readable Arrow IPC stream: ", 0),
            0u);
}

TEST(Parquet, ReadDatasetByExtension) {
  sft::data::testing::TempDir tmp;
  auto t = table({{"prompt", arrow::utf8(), R"(["p"])"}, {"completion", arrow::utf8(), R"(["c"])"}});
  const ReadResult r = read_dataset(tmp.write("train.PARQUET", parquet_bytes(*t, 10)), keep_all());
  ASSERT_EQ(r.examples.size(), 1u);
  EXPECT_EQ(r.examples[0].format, RowFormat::PromptCompletion);
  EXPECT_EQ(read_dataset(tmp.write("data-00000-of-00001.arrow", ipc_bytes(*t, false, 10)), keep_all()).examples.size(),
            1u);
  EXPECT_TRUE(parquet_supported());
}


// parquet_rows.h: every column of every row as the JSON the same row has in a dataset's JSON lines.
TEST(ParquetRows, EveryColumnAsJsonInFileOrder) {
  auto targets = arrow::struct_({arrow::field("choices", arrow::list(arrow::utf8())),
                                 arrow::field("labels", arrow::list(arrow::int32()))});
  auto t = table({{"question", arrow::utf8(), R"(["q1", "", "é\nq3"])"},
                  {"mc1_targets", targets,
                   R"([{"choices": ["a", "b"], "labels": [1, 0]}, {"choices": [], "labels": []}, null])"},
                  {"answer", arrow::int64(), "[3, -9007199254740993, null]"},
                  {"small", arrow::int8(), "[-1, 0, 127]"},
                  {"big", arrow::uint64(), "[18446744073709551615, 0, 1]"},
                  {"score", arrow::float64(), "[0.5, -2.25, 1e300]"},
                  {"half", arrow::float32(), "[0.5, 1.5, -4]"},
                  {"flag", arrow::boolean(), "[true, false, null]"},
                  {"nothing", arrow::null(), "[null, null, null]"},
                  {"nested", arrow::list(arrow::list(arrow::int16())), "[[[1], [2, 3]], [], null]"},
                  {"pair", arrow::fixed_size_list(arrow::large_utf8(), 2), R"([["x", "y"], ["", "z"], ["u", "v"]])"},
                  {"endings", arrow::large_list(arrow::utf8()), R"([["e1", "e2"], ["e3"], []])"}});
  const char* want[] = {
      R"({"question": "q1", "mc1_targets": {"choices": ["a", "b"], "labels": [1, 0]}, "answer": 3, "small": -1,
          "big": 18446744073709551615, "score": 0.5, "half": 0.5, "flag": true, "nothing": null,
          "nested": [[1], [2, 3]], "pair": ["x", "y"], "endings": ["e1", "e2"]})",
      R"({"question": "", "mc1_targets": {"choices": [], "labels": []}, "answer": -9007199254740993, "small": 0,
          "big": 0, "score": -2.25, "half": 1.5, "flag": false, "nothing": null, "nested": [], "pair": ["", "z"],
          "endings": ["e3"]})",
      R"({"question": "é\nq3", "mc1_targets": null, "answer": null, "small": 127, "big": 1, "score": 1e300,
          "half": -4.0, "flag": null, "nothing": null, "nested": null, "pair": ["u", "v"], "endings": []})"};
  for (int64_t group : {1, 2, 10}) {  // row groups split the rows anywhere
    const JsonRows r = parquet_rows_as_json(parquet_bytes(*t, group), "t.parquet");
    ASSERT_EQ(r.rows.size(), 3u);
    EXPECT_TRUE(r.skipped_columns.empty());
    for (size_t k = 0; k < 3; ++k) EXPECT_EQ(r.rows[k], nlohmann::json::parse(want[k])) << k << " " << r.rows[k].dump();
    EXPECT_TRUE(r.rows[0]["big"].is_number_unsigned());
  }
  // Dictionary-encoded strings (written by Arrow as dictionary columns, read back as such) read as strings.
  auto dict = arrow::DictionaryArray::FromArrays(
                  arrow::dictionary(arrow::int32(), arrow::utf8()),
                  arrow::json::ArrayFromJSONString(arrow::int32(), "[1, 0, 1]").ValueOrDie(),
                  arrow::json::ArrayFromJSONString(arrow::utf8(), R"(["x", "y"])").ValueOrDie())
                  .ValueOrDie();
  auto d = arrow::Table::Make(arrow::schema({arrow::field("answer", dict->type())}), {dict});
  const JsonRows r = parquet_rows_as_json(parquet_bytes(*d, 2), "d.parquet");
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.rows[0], nlohmann::json::parse(R"({"answer": "y"})"));
  EXPECT_EQ(r.rows[1], nlohmann::json::parse(R"({"answer": "x"})"));
}

TEST(ParquetRows, ColumnsWithoutAJsonFormAreSkippedAndNamed) {
  auto t = table({{"question", arrow::utf8(), R"(["q"])"},
                  {"image", arrow::binary(), R"(["\u0001"])"},
                  {"when", arrow::timestamp(arrow::TimeUnit::MILLI), "[0]"},
                  {"deep", arrow::list(arrow::list(arrow::list(arrow::int64()))), "[[[[1]]]]"},
                  {"inner", arrow::struct_({arrow::field("bytes", arrow::binary())}), R"([{"bytes": "x"}])"}});
  const JsonRows r = parquet_rows_as_json(parquet_bytes(*t, 10), "t.parquet", 3);  // a column may nest 2 levels
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0], nlohmann::json::parse(R"({"question": "q"})"));
  ASSERT_EQ(r.skipped_columns.size(), 4u);
  EXPECT_EQ(r.skipped_columns[0].column, "image");
  EXPECT_EQ(r.skipped_columns[0].reason, "Arrow type binary has no JSON form here");
  EXPECT_EQ(r.skipped_columns[1].column, "when");
  EXPECT_EQ(r.skipped_columns[2].column, "deep");
  EXPECT_EQ(r.skipped_columns[2].reason, "nested too deeply");
  EXPECT_EQ(r.skipped_columns[3].column, "inner");
  // Nothing readable: an error that lists why (no row count without data behind it).
  auto only_binary = table({{"image", arrow::binary(), R"(["a"])"}});
  EXPECT_EQ(error_of([&] { parquet_rows_as_json(parquet_bytes(*only_binary, 10), "b.parquet"); }),
            "b.parquet: no column can be read (image: Arrow type binary has no JSON form here)");
}

TEST(ParquetRows, DamageIsAOneLineErrorNamingTheFile) {
  auto t = table({{"question", arrow::utf8(), R"(["a", "b", "c"])"}});
  const std::string good = parquet_bytes(*t, 2);
  for (const std::string& bad : {good.substr(0, good.size() / 2), std::string(), std::string("PAR1")}) {
    const std::string msg = error_of([&] { parquet_rows_as_json(bad, "d.parquet"); });
    EXPECT_EQ(msg.rfind("d.parquet: not a readable Parquet file: ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  arrow::StringBuilder sb;
  ASSERT_TRUE(sb.Append("fine").ok());
  ASSERT_TRUE(sb.Append(std::string("bad \xC3\x28 bytes")).ok());
  auto bad_utf8 = arrow::Table::Make(arrow::schema({arrow::field("question", arrow::utf8())}), {sb.Finish().ValueOrDie()});
  const std::string msg = error_of([&] { parquet_rows_as_json(parquet_bytes(*bad_utf8, 10), "u.parquet"); });
  EXPECT_EQ(msg.rfind("u.parquet row group 1: damaged data (", 0), 0u) << msg;
  EXPECT_NE(msg.find("UTF8"), std::string::npos) << msg;
}

#else  // a build without Arrow

TEST(Parquet, ABuildWithoutArrowSaysSo) {
  sft::data::testing::TempDir tmp;
  const auto p = tmp.write("train.parquet", "PAR1....PAR1");
  EXPECT_FALSE(parquet_supported());
  const std::string msg = error_of([&] { read_dataset(p, keep_all()); });
  EXPECT_EQ(msg.rfind(p.string() + ": this sft was built without Apache Arrow", 0), 0u) << msg;
  EXPECT_NE(error_of([] { parse_arrow_ipc("", "d.arrow", keep_all()); }).find("d.arrow: this sft was built without"),
            std::string::npos);
  EXPECT_NE(error_of([] { parquet_rows_as_json("", "t.parquet"); }).find("t.parquet: this sft was built without"),
            std::string::npos);
}

#endif
