// Internal to the data layer: one parsed row (a JSON object, or a Parquet/Arrow row converted to one) -> Example, for
// every row format, and the sink that keeps, skips or excludes rows. dataset.cpp (JSON, JSONL, CSV) and
// parquet_reader.cpp (Parquet, Arrow IPC) share them, so a format reads the same from every file type.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"

namespace sft::data::detail {

// The response a row would train on is empty (whitespace only): alpaca-cleaned has such rows (an empty `output`).
// Instruction: output; Conversational: every assistant turn; Text: the text; PromptCompletion: the completion;
// ConversationalPromptCompletion: every completion message.
bool has_empty_response(const Example& ex);

// Collects rows, or converts row errors into skips, in one place for every file type.
class RowSink {
 public:
  RowSink(const ReadOptions& opts, ReadResult& out) : opts_(opts), out_(out) {}
  void fail(const std::string& msg);
  void add(Example&& ex);

 private:
  const ReadOptions& opts_;
  ReadResult& out_;
};

// Decides each row's format (ReadOptions::dataset_format, or by its fields) and fills the Example. A file holds one
// format: alpaca and conversational rows may share a file (both are templated, as before TRL's formats existed), any
// other mix is an error naming the row, its fields and the row that set the file's format.
class RowParser {
 public:
  explicit RowParser(const ReadOptions& opts) : opts_(opts) {}
  // "" on success (ex's format and fields set), else the reason; the caller prefixes the origin.
  std::string parse(const nlohmann::json& row, const std::string& origin, Example& ex);
  // Every field some format may read, in a fixed order (the columns the Parquet/Arrow readers convert).
  std::vector<std::string> known_fields() const;

 private:
  std::optional<RowFormat> detect(const nlohmann::json& row) const;
  std::string parse_as(RowFormat f, const nlohmann::json& row, Example& ex) const;
  std::string fields_of(RowFormat f) const;  // e.g. "\"prompt\" and \"completion\""

  const ReadOptions& opts_;
  std::optional<RowFormat> first_format_;
  std::string first_origin_;
};

}  // namespace sft::data::detail
