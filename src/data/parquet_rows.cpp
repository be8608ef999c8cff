// parquet_rows.h: a Parquet file's rows as JSON objects of all their columns (Apache Arrow C++; without Arrow in the
// build the entry point is a one-line error that says so).
#include "data/parquet_rows.h"

#if SFT_HAVE_ARROW
#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <parquet/arrow/reader.h>
#include <parquet/arrow/schema.h>

#include <functional>
#include <memory>
#include <set>

#include "data/arrow_detail.h"
#include "util/utf8.h"
#endif

#include "util/error.h"

namespace sft::data {

#if SFT_HAVE_ARROW
namespace detail {
namespace {

using json = nlohmann::json;

template <class ArrayType>
json number(const arrow::Array& a, int64_t i) {
  return static_cast<const ArrayType&>(a).Value(i);
}

std::string_view string_view_at(const arrow::Array& a, int64_t i) {
  switch (a.type_id()) {
    case arrow::Type::STRING: return static_cast<const arrow::StringArray&>(a).GetView(i);
    case arrow::Type::LARGE_STRING: return static_cast<const arrow::LargeStringArray&>(a).GetView(i);
    default: return static_cast<const arrow::StringViewArray&>(a).GetView(i);
  }
}

}  // namespace

json arrow_value_to_json(const arrow::Array& a, int64_t i, std::string& err, const std::vector<std::string>* struct_keys) {
  if (a.IsNull(i)) return nullptr;
  switch (a.type_id()) {
    case arrow::Type::BOOL: return static_cast<const arrow::BooleanArray&>(a).Value(i);
    case arrow::Type::INT8: return number<arrow::Int8Array>(a, i);
    case arrow::Type::INT16: return number<arrow::Int16Array>(a, i);
    case arrow::Type::INT32: return number<arrow::Int32Array>(a, i);
    case arrow::Type::INT64: return number<arrow::Int64Array>(a, i);
    case arrow::Type::UINT8: return number<arrow::UInt8Array>(a, i);
    case arrow::Type::UINT16: return number<arrow::UInt16Array>(a, i);
    case arrow::Type::UINT32: return number<arrow::UInt32Array>(a, i);
    case arrow::Type::UINT64: return number<arrow::UInt64Array>(a, i);
    case arrow::Type::FLOAT: return static_cast<double>(static_cast<const arrow::FloatArray&>(a).Value(i));
    case arrow::Type::DOUBLE: return number<arrow::DoubleArray>(a, i);
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING:
    case arrow::Type::STRING_VIEW: {
      const std::string_view v = string_view_at(a, i);
      if (const int64_t bad = utf8::find_invalid(v); bad >= 0) {
        err = "invalid UTF-8 at byte " + std::to_string(bad) + " of a string";
        return nullptr;
      }
      return std::string(v);
    }
    case arrow::Type::DICTIONARY: {
      const auto& d = static_cast<const arrow::DictionaryArray&>(a);
      const int64_t k = d.GetValueIndex(i);
      if (k < 0 || k >= d.dictionary()->length()) {
        err = "dictionary index out of range";
        return nullptr;
      }
      return arrow_value_to_json(*d.dictionary(), k, err, struct_keys);
    }
    case arrow::Type::LIST:
    case arrow::Type::LARGE_LIST:
    case arrow::Type::FIXED_SIZE_LIST: {
      std::shared_ptr<arrow::Array> values;
      int64_t begin = 0, length = 0;
      if (a.type_id() == arrow::Type::LIST) {
        const auto& l = static_cast<const arrow::ListArray&>(a);
        values = l.values(), begin = l.value_offset(i), length = l.value_length(i);
      } else if (a.type_id() == arrow::Type::LARGE_LIST) {
        const auto& l = static_cast<const arrow::LargeListArray&>(a);
        values = l.values(), begin = l.value_offset(i), length = l.value_length(i);
      } else {
        const auto& l = static_cast<const arrow::FixedSizeListArray&>(a);
        values = l.values(), begin = l.value_offset(i), length = l.value_length(i);
      }
      json out = json::array();
      for (int64_t k = 0; k < length && err.empty(); ++k) out.push_back(arrow_value_to_json(*values, begin + k, err, struct_keys));
      return out;
    }
    case arrow::Type::STRUCT: {
      const auto& s = static_cast<const arrow::StructArray&>(a);
      json out = json::object();
      if (struct_keys) {  // only the keys the caller reads (absent ones stay absent)
        for (const std::string& key : *struct_keys)
          if (auto field = s.GetFieldByName(key)) out[key] = arrow_value_to_json(*field, i, err, struct_keys);
        return out;
      }
      for (int k = 0; k < s.num_fields() && err.empty(); ++k)  // field(k) carries the struct's offset
        out[s.type()->field(k)->name()] = arrow_value_to_json(*s.field(k), i, err, struct_keys);
      return out;
    }
    default: return nullptr;  // NA; other types never pass the callers' type checks
  }
}


}  // namespace detail

namespace {


using json = nlohmann::json;
using detail::guarded;
using detail::one_line;
using detail::value_or_throw;

// Why a column of type t cannot be converted ("" when it can); depth_left = list/struct levels still allowed.
std::string unsupported(const arrow::DataType& t, int depth_left) {
  switch (t.id()) {
    case arrow::Type::NA:
    case arrow::Type::BOOL:
    case arrow::Type::INT8:
    case arrow::Type::INT16:
    case arrow::Type::INT32:
    case arrow::Type::INT64:
    case arrow::Type::UINT8:
    case arrow::Type::UINT16:
    case arrow::Type::UINT32:
    case arrow::Type::UINT64:
    case arrow::Type::FLOAT:
    case arrow::Type::DOUBLE:
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING:
    case arrow::Type::STRING_VIEW: return "";
    case arrow::Type::DICTIONARY: return unsupported(*static_cast<const arrow::DictionaryType&>(t).value_type(), depth_left);
    case arrow::Type::LIST:
    case arrow::Type::LARGE_LIST:
    case arrow::Type::FIXED_SIZE_LIST:
      if (depth_left <= 0) return "nested too deeply";
      return unsupported(*static_cast<const arrow::BaseListType&>(t).value_type(), depth_left - 1);
    case arrow::Type::STRUCT: {
      if (depth_left <= 0) return "nested too deeply";
      std::set<std::string> names;
      for (const auto& f : t.fields()) {
        if (!names.insert(f->name()).second) return "its struct has two fields named \"" + f->name() + "\"";
        if (std::string why = unsupported(*f->type(), depth_left - 1); !why.empty()) return why;
      }
      return "";
    }
    default: return "Arrow type " + t.ToString() + " has no JSON form here";
  }
}

// The leaf column indices (Parquet's numbering) of the top-level fields `cols`, every child included.
std::vector<int> leaf_columns(const parquet::arrow::SchemaManifest& manifest, const std::vector<int>& cols) {
  std::vector<int> leaves;
  std::function<void(const parquet::arrow::SchemaField&)> walk = [&](const parquet::arrow::SchemaField& f) {
    if (f.is_leaf()) leaves.push_back(f.column_index);
    for (const auto& child : f.children) walk(child);
  };
  for (int k : cols) walk(manifest.schema_fields.at(static_cast<size_t>(k)));
  return leaves;
}

}  // namespace

JsonRows parquet_rows_as_json(const std::string& bytes, const std::string& name, int max_depth) {
  JsonRows out;
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
  // The columns to decode: every top-level field whose type has a JSON form (a row object is one level, so a
  // column may nest max_depth - 1 more).
  std::vector<int> cols;
  std::set<std::string> seen;
  for (int k = 0; k < schema->num_fields(); ++k) {
    const auto& f = schema->field(k);
    SFT_CHECK(seen.insert(f->name()).second, name, ": column \"", f->name(), "\" appears twice");
    if (std::string why = unsupported(*f->type(), max_depth - 1); !why.empty())
      out.skipped_columns.push_back({f->name(), why});
    else
      cols.push_back(k);
  }
  if (cols.empty()) {  // nothing to read (and no row count backed by data): say what the file has
    std::string what;
    for (const auto& s : out.skipped_columns) what += (what.empty() ? "" : "; ") + s.column + ": " + s.reason;
    throw Error(name + ": no column can be read" + (what.empty() ? std::string(" (the file has none)") : " (" + what + ")"));
  }
  const std::vector<int> leaves = leaf_columns(reader->manifest(), cols);
  int64_t row = 0;  // 1-based row of the whole file, for messages
  for (int g = 0; g < reader->num_row_groups(); ++g) {
    const std::string where = name + " row group " + std::to_string(g + 1);
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
    guarded(where + ": cannot decode", [&] {
      const auto table = value_or_throw(reader->ReadRowGroup(g, leaves), where + ": cannot decode");
      const arrow::Status st = table->ValidateFull();  // offsets, lengths and UTF-8, before any value is read
      SFT_CHECK(st.ok(), where, ": damaged data (", one_line(st.message()), ")");
      arrow::TableBatchReader batch_reader(*table);  // slices at the chunk boundaries of every column
      batches = value_or_throw(batch_reader.ToRecordBatches(), where + ": cannot decode");
    });
    for (const auto& batch : batches) {
      SFT_CHECK(batch->num_columns() == static_cast<int>(cols.size()), where, ": decoded ", batch->num_columns(),
                " columns, expected ", cols.size());
      for (int64_t r = 0; r < batch->num_rows(); ++r) {
        ++row;
        json obj = json::object();
        for (int c = 0; c < batch->num_columns(); ++c) {
          std::string err;
          json v = detail::arrow_value_to_json(*batch->column(c), r, err);
          if (!err.empty())
            throw Error(name + " row " + std::to_string(row) + ": column \"" + batch->schema()->field(c)->name() +
                        "\": " + err);
          obj[batch->schema()->field(c)->name()] = std::move(v);
        }
        out.rows.push_back(std::move(obj));
      }
    }
  }
  return out;
}

#else  // no Arrow in this build

JsonRows parquet_rows_as_json(const std::string&, const std::string& name, int) {
  throw Error(name + ": this sft was built without Apache Arrow, so it cannot read Parquet files (run "
                     "scripts/setup-arrow.sh and rebuild with -DSFT_PARQUET=ON, or convert the file to JSON lines)");
}

#endif

}  // namespace sft::data
