// Instruction-dataset readers: alpaca JSON arrays, JSONL (alpaca rows or chat rows), CSV (RFC 4180) and chat JSONL.
// Data flow of the data layer: read_dataset (this file) -> tokenize_example (template.h) -> apply_truncation
// (batching.h) -> DataLoader (batching.h) -> Batch, which the trainer copies into sft::model::Batch.
// prepare.h wraps the whole chain for `sft train`.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "util/csv.h"

namespace sft::data {

struct Message {
  std::string role;  // "system" | "user" | "assistant" (other roles are rejected with the row named)
  std::string content;
};

// One dataset row. Exactly one of the two shapes is used:
//  - instruction rows: instruction + input (empty when null/missing) + output; messages is empty.
//  - chat rows ({"messages":[{"role","content"}...]}): messages non-empty; instruction/input/output empty.
struct Example {
  std::string instruction, input, output;
  std::vector<Message> messages;
  // Where the row came from, for error messages: e.g. "train.csv record 3 (line 7)", "a.jsonl line 12",
  // "a.json element 4". All numbers are 1-based; CSV records do not count the header row.
  std::string origin;
  bool is_chat() const { return !messages.empty(); }
};

enum class FileFormat {
  Auto,       // by extension: .json (sniffed: '[' -> JsonArray, '{' -> Jsonl), .jsonl, .csv
  JsonArray,  // [ {...}, {...} ]
  Jsonl,      // one JSON object per line; blank lines are skipped (but still counted for line numbers)
  Csv,        // RFC 4180, header row naming instruction/input/output in any order; extra columns ignored
};

struct ReadOptions {
  FileFormat format = FileFormat::Auto;
  // false: the first bad row throws sft::Error naming file and row. true: bad rows are skipped and counted.
  bool skip_bad_rows = false;
};

struct ReadResult {
  std::vector<Example> examples;
  int64_t rows_seen = 0;       // rows parsed (good + skipped)
  int64_t rows_skipped = 0;    // only with skip_bad_rows
  std::vector<std::string> skip_messages;  // the first 10 reasons, same text the error would have had
};

// Reads a dataset file. Errors (sft::Error, one line, naming file and 1-based row): unreadable file, unknown
// extension, malformed JSON/CSV, a row missing `instruction` or `output` (or with a non-string value), invalid UTF-8,
// a chat row whose messages are malformed or contain no assistant turn. A malformed JSON *array* cannot be resumed
// after, so it throws even with skip_bad_rows (the message says so); JSONL and CSV rows are independent.
ReadResult read_dataset(const std::filesystem::path& path, const ReadOptions& opts = {});

// Parsers on in-memory text (`name` is used in messages). read_dataset dispatches to these.
ReadResult parse_json_array(const std::string& text, const std::string& name, const ReadOptions& opts);
ReadResult parse_jsonl(const std::string& text, const std::string& name, const ReadOptions& opts);
ReadResult parse_csv(const std::string& text, const std::string& name, const ReadOptions& opts);

// RFC 4180 records for parse_csv (util/csv.h in strict Rfc4180 mode, BOM stripped): quoted fields may hold commas,
// CR/LF and "" (a quote); records end with LF or CRLF; a final record without a line end is accepted; a blank line is a
// record without fields. Each record carries the 1-based line on which it starts. An unterminated quote throws
// (everything after it would be misread); a problem local to one record (a quote inside an unquoted field, text after
// a closing quote) is reported in that record's `error`.
using CsvRecord = csv::Record;
std::vector<CsvRecord> parse_csv_records(const std::string& text, const std::string& name);

// Returns the byte offset of the first invalid UTF-8 sequence (overlongs, surrogates, > U+10FFFF included), or -1.
int64_t find_invalid_utf8(const std::string& s);

}  // namespace sft::data
