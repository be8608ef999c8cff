// Parquet and Arrow IPC datasets through Apache Arrow's C++ library (scripts/setup-arrow.sh; CMake SFT_PARQUET).
// Only the columns some row format reads are decoded; each row becomes a JSON object of them and goes through the
// same RowParser as a JSON line, so every format reads the same from every file type. Without Arrow in the build
// (SFT_HAVE_ARROW unset) the two entry points are one-line errors that say so.
#include "data/dataset.h"

#if SFT_HAVE_ARROW
#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/schema.h>
#include <parquet/file_reader.h>

#include <algorithm>
#include <exception>
#include <functional>
#include <memory>

#include "data/arrow_detail.h"
#include "data/row_parser.h"
#include "util/utf8.h"
#endif

#include "util/error.h"

namespace sft::data {

#if SFT_HAVE_ARROW
namespace {

using json = nlohmann::json;

using detail::guarded;
using detail::one_line;
using detail::value_or_throw;

bool is_string_like(const arrow::DataType& t) {
  switch (t.id()) {
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING:
    case arrow::Type::STRING_VIEW: return true;
    case arrow::Type::DICTIONARY:
      return is_string_like(*static_cast<const arrow::DictionaryType&>(t).value_type());
    default: return false;
  }
}
bool is_string_or_null(const arrow::DataType& t) { return t.id() == arrow::Type::NA || is_string_like(t); }

const arrow::DataType* list_value_type(const arrow::DataType& t) {
  switch (t.id()) {
    case arrow::Type::LIST:
    case arrow::Type::LARGE_LIST:
    case arrow::Type::FIXED_SIZE_LIST: return static_cast<const arrow::BaseListType&>(t).value_type().get();
    default: return nullptr;
  }
}

// list<struct<role: string, content: string, ...>>, as `datasets` stores a column of message lists.
bool is_message_list(const arrow::DataType& t) {
  const arrow::DataType* v = list_value_type(t);
  if (!v || v->id() != arrow::Type::STRUCT) return false;
  const auto& st = static_cast<const arrow::StructType&>(*v);
  const auto role = st.GetFieldByName("role"), content = st.GetFieldByName("content");
  return role && content && is_string_or_null(*role->type()) && is_string_or_null(*content->type());
}

// What a known column may hold; a column of any other type is an error naming file, column and type.
std::string column_type_error(const std::string& column, const arrow::DataType& t) {
  const bool message_column = column == "messages";
  const bool either = column == "prompt" || column == "completion";
  const bool ok = t.id() == arrow::Type::NA || (!message_column && is_string_like(t)) ||
                  ((message_column || either) && is_message_list(t));
  if (ok) return "";
  const char* expected = message_column ? "a list of messages (struct with string \"role\" and \"content\")"
                         : either       ? "a string or a list of messages (struct with string \"role\" and \"content\")"
                                        : "a string";
  return "column \"" + column + "\" has Arrow type " + t.ToString() + "; expected " + expected;
}

// A message struct converts with only the keys a row format reads.
const std::vector<std::string> kMessageKeys = {"role", "content"};

// The columns of `schema` that some row format reads, checked; (index in schema, name).
std::vector<std::pair<int, std::string>> read_columns(const arrow::Schema& schema, const std::string& name,
                                                      const detail::RowParser& parser, const ReadOptions& opts) {
  std::vector<std::pair<int, std::string>> cols;
  for (const std::string& field : parser.known_fields()) {
    const int k = schema.GetFieldIndex(field);  // -1 when absent or present twice
    SFT_CHECK(k >= 0 || schema.GetAllFieldIndices(field).empty(), name, ": column \"", field, "\" appears twice");
    if (k < 0) continue;
    const std::string err = column_type_error(field, *schema.field(k)->type());
    SFT_CHECK(err.empty(), name, ": ", err);
    cols.emplace_back(k, field);
  }
  if (cols.empty()) {
    std::string names;
    for (const auto& f : schema.fields()) names += (names.empty() ? "" : ", ") + f->name();
    if (names.size() > 200) {  // cut on a UTF-8 character boundary
      size_t cut = 200;
      while (cut > 0 && (static_cast<unsigned char>(names[cut]) & 0xC0) == 0x80) --cut;
      names = names.substr(0, cut) + "...";
    }
    throw Error(name + ": no known columns: expected instruction and output (alpaca), messages (conversational), "
                       "prompt and completion (prompt-completion) or " + opts.dataset_text_field +
                " (language modelling); the file has: " + one_line(names));
  }
  return cols;
}

// Rows of one batch (a row group, or an IPC record batch) -> parser -> sink. `arrays[c]` is read_columns' column c.
void add_rows(const std::vector<std::shared_ptr<arrow::Array>>& arrays,
              const std::vector<std::pair<int, std::string>>& cols, int64_t rows, const std::string& origin_prefix,
              int64_t first_in_prefix, int64_t first_row, detail::RowParser& parser, detail::RowSink& sink) {
  for (int64_t r = 0; r < rows; ++r) {
    const std::string origin = origin_prefix + " row " + std::to_string(first_in_prefix + r + 1) + " (row " +
                               std::to_string(first_row + r + 1) + ")";
    json row = json::object();
    std::string err;
    for (size_t c = 0; c < cols.size() && err.empty(); ++c) {
      row[cols[c].second] = detail::arrow_value_to_json(*arrays[c], r, err, &kMessageKeys);
      if (!err.empty()) err = "column \"" + cols[c].second + "\": " + err;
    }
    Example ex;
    ex.origin = origin;
    if (err.empty()) err = parser.parse(row, origin, ex);
    if (!err.empty()) {
      sink.fail(origin + ": " + err);
      continue;
    }
    sink.add(std::move(ex));
  }
}

// The leaf column indices (Parquet's numbering) under the top-level fields `cols`; of a message struct only "role"
// and "content" (other keys, e.g. tool calls, are neither decoded nor type-checked, as the JSON reader ignores them).
std::vector<int> leaf_columns(const parquet::arrow::SchemaManifest& manifest,
                              const std::vector<std::pair<int, std::string>>& cols) {
  std::vector<int> leaves;
  std::function<void(const parquet::arrow::SchemaField&)> walk = [&](const parquet::arrow::SchemaField& f) {
    if (f.is_leaf()) leaves.push_back(f.column_index);
    const bool message = f.field->type()->id() == arrow::Type::STRUCT;
    for (const auto& child : f.children)
      if (!message || child.field->name() == "role" || child.field->name() == "content") walk(child);
  };
  for (const auto& [k, name] : cols) walk(manifest.schema_fields.at(static_cast<size_t>(k)));
  return leaves;
}

}  // namespace

bool parquet_supported() { return true; }

ReadResult parse_parquet(const std::string& bytes, const std::string& name, const ReadOptions& opts) {
  ReadResult out;
  detail::RowSink sink(opts, out);
  detail::RowParser parser(opts);
  auto buffer = std::make_shared<arrow::io::BufferReader>(
      std::make_shared<arrow::Buffer>(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int64_t>(bytes.size())));
  std::unique_ptr<parquet::arrow::FileReader> reader;
  guarded(name + ": not a readable Parquet file", [&] {
    reader = value_or_throw(parquet::arrow::OpenFile(buffer, arrow::system_memory_pool()),
                            name + ": not a readable Parquet file");
  });
  std::shared_ptr<arrow::Schema> schema;
  guarded(name + ": cannot read the Parquet schema", [&] {
    const arrow::Status st = reader->GetSchema(&schema);
    SFT_CHECK(st.ok(), name, ": cannot read the Parquet schema: ", one_line(st.ToString()));
  });
  const auto cols = read_columns(*schema, name, parser, opts);
  const std::vector<int> leaves = leaf_columns(reader->manifest(), cols);
  int64_t first_row = 0;
  for (int g = 0; g < reader->num_row_groups(); ++g) {
    const std::string where = name + " row group " + std::to_string(g + 1);
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
    guarded(where + ": cannot decode", [&] {
      const auto table = value_or_throw(reader->ReadRowGroup(g, leaves), where + ": cannot decode");
      const arrow::Status st = table->ValidateFull();  // offsets, lengths and UTF-8, before any value is read
      SFT_CHECK(st.ok(), where, ": damaged data (", one_line(st.message()), "); this cannot be skipped");
      // Slices at the chunk boundaries of every column (a column may come in several chunks).
      arrow::TableBatchReader batch_reader(*table);
      batches = value_or_throw(batch_reader.ToRecordBatches(), where + ": cannot decode");
    });
    int64_t in_group = 0;
    for (const auto& batch : batches) {
      std::vector<std::shared_ptr<arrow::Array>> arrays;
      for (const auto& [k, col] : cols) {
        arrays.push_back(batch->GetColumnByName(col));
        SFT_CHECK(arrays.back() != nullptr, where, ": column \"", col, "\" was not decoded");
      }
      add_rows(arrays, cols, batch->num_rows(), where, in_group, first_row, parser, sink);
      in_group += batch->num_rows();
      first_row += batch->num_rows();
    }
  }
  return out;
}

ReadResult parse_arrow_ipc(const std::string& bytes, const std::string& name, const ReadOptions& opts) {
  ReadResult out;
  detail::RowSink sink(opts, out);
  detail::RowParser parser(opts);
  auto data =
      std::make_shared<arrow::Buffer>(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int64_t>(bytes.size()));
  // `datasets` writes the stream format (cache-*.arrow, save_to_disk's data-*.arrow); Feather v2 / the IPC file
  // format (magic "ARROW1" at both ends) is read too.
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  std::shared_ptr<arrow::Schema> schema;
  const bool file_format = bytes.size() >= 12 && bytes.compare(0, 6, "ARROW1") == 0;
  const std::string what = name + ": not a readable Arrow " + (file_format ? "IPC file" : "IPC stream");
  guarded(what, [&] {
    auto options = arrow::ipc::IpcReadOptions::Defaults();
    options.memory_pool = arrow::system_memory_pool();
    if (file_format) {
      auto reader = value_or_throw(
          arrow::ipc::RecordBatchFileReader::Open(std::make_shared<arrow::io::BufferReader>(data), options), what);
      schema = reader->schema();
      for (int b = 0; b < reader->num_record_batches(); ++b)
        batches.push_back(value_or_throw(reader->ReadRecordBatch(b), what));
    } else {
      auto reader = value_or_throw(
          arrow::ipc::RecordBatchStreamReader::Open(std::make_shared<arrow::io::BufferReader>(data), options), what);
      schema = reader->schema();
      batches = value_or_throw(reader->ToRecordBatches(), what);
    }
  });
  const auto cols = read_columns(*schema, name, parser, opts);
  int64_t first_row = 0;
  for (size_t b = 0; b < batches.size(); ++b) {
    const std::string where = name + " record batch " + std::to_string(b + 1);
    guarded(where + ": damaged data", [&] {
      const arrow::Status st = batches[b]->ValidateFull();  // offsets, lengths and UTF-8, before any value is read
      SFT_CHECK(st.ok(), where, ": damaged data (", one_line(st.message()), "); this cannot be skipped");
    });
    std::vector<std::shared_ptr<arrow::Array>> arrays;
    for (const auto& [k, col] : cols) arrays.push_back(batches[b]->column(k));
    add_rows(arrays, cols, batches[b]->num_rows(), where, 0, first_row, parser, sink);
    first_row += batches[b]->num_rows();
  }
  return out;
}

#else  // no Arrow in this build

bool parquet_supported() { return false; }

ReadResult parse_parquet(const std::string&, const std::string& name, const ReadOptions&) {
  throw Error(name + ": this sft was built without Apache Arrow, so it cannot read Parquet files (run "
                     "scripts/setup-arrow.sh and rebuild with -DSFT_PARQUET=ON, or convert the dataset to JSON lines)");
}
ReadResult parse_arrow_ipc(const std::string&, const std::string& name, const ReadOptions&) {
  throw Error(name + ": this sft was built without Apache Arrow, so it cannot read Arrow files (run "
                     "scripts/setup-arrow.sh and rebuild with -DSFT_PARQUET=ON, or convert the dataset to JSON lines)");
}

#endif

}  // namespace sft::data
