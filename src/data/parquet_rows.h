// Every row of a Parquet file as a JSON object of all its columns: for readers whose rows keep their own schema (the
// eval task files, a Hugging Face dataset's rows as they are on the hub), not training examples (parquet_reader.cpp
// reads those through the row formats). Values convert as `datasets`' to_json writes them, so a Parquet split and its
// JSON lines give the same objects:
//   strings (utf8, large, view; dictionary-encoded too) -> string     booleans -> true/false      null -> null
//   signed / unsigned integers of any width -> integer                float32 / float64 -> number
//   list, large list, fixed-size list -> array                        struct -> object (every field, file order)
// Columns of other types (binary, temporal, decimal, map, float16, union, ...) have no such form here: they are not
// decoded and are listed in `skipped_columns`, so a caller can refuse a column it needs and ignore the others.
// Hostile input: the type is checked before any value is read (nesting at most max_depth levels), every row group is
// validated in full by Arrow (offsets, lengths, UTF-8) before conversion, and every failure is a one-line sft::Error
// naming the file (and row, 1-based over the whole file). Without Arrow in the build: an error that says so.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sft::data {

struct JsonRows {
  std::vector<nlohmann::json> rows;  // file order: row groups concatenated; row k (0-based) is the file's row k + 1
  struct Skipped {
    std::string column, reason;  // reason: "Arrow type binary has no JSON form here", "nested deeper than 32 levels"
  };
  std::vector<Skipped> skipped_columns;
};

JsonRows parquet_rows_as_json(const std::string& bytes, const std::string& name, int max_depth = 32);

}  // namespace sft::data
