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

// The shape of a row: alpaca instruction rows, and TRL's dataset formats (SFTTrainer's "language modeling" and
// "prompt-completion" types, each standard or conversational). docs/arch/data.md has an example of each.
enum class RowFormat {
  Instruction,     // {"instruction", "input"?, "output"}                   (alpaca; templated: --template)
  Conversational,  // {"messages": [{"role", "content"}, ...]}              (chat template or ChatML)
  Text,            // {"text"} (or ReadOptions::dataset_text_field)         (language modelling: every token trains)
  PromptCompletion,                // {"prompt": str, "completion": str}
  ConversationalPromptCompletion,  // {"prompt": [messages], "completion": [messages]}
};
const char* row_format_name(RowFormat f);  // "alpaca", "conversational", "language modelling", ...

// One dataset row. The fields its format uses are set, the others are empty:
//  - Instruction: instruction + input (empty when null/missing) + output.
//  - Conversational ({"messages":[{"role","content"}...]}): messages non-empty.
//  - Text: text. PromptCompletion: prompt, completion.
//  - ConversationalPromptCompletion: prompt_messages, completion_messages (both non-empty).
// Rows built by hand with `messages` set and the default format are conversational (is_chat()).
struct Example {
  RowFormat format = RowFormat::Instruction;
  std::string instruction, input, output;
  std::vector<Message> messages;
  std::string text;
  std::string prompt, completion;
  std::vector<Message> prompt_messages, completion_messages;
  // Where the row came from, for error messages: e.g. "train.csv record 3 (line 7)", "a.jsonl line 12",
  // "a.json element 4", "d.parquet row group 2 row 17 (row 1041)". All numbers are 1-based; CSV records do not count
  // the header row.
  std::string origin;
  bool is_chat() const { return !messages.empty(); }
};

enum class FileFormat {
  Auto,       // by extension: .json (sniffed: '[' -> JsonArray, '{' -> Jsonl), .jsonl, .csv, .parquet, .arrow
  JsonArray,  // [ {...}, {...} ]
  Jsonl,      // one JSON object per line; blank lines are skipped (but still counted for line numbers)
  Csv,        // RFC 4180, header row naming instruction/input/output in any order; extra columns ignored
  Parquet,    // Apache Parquet (Arrow C++; a build without Arrow says so): parquet_reader.h
  Arrow,      // Arrow IPC stream or file, as `datasets` caches and save_to_disk write them (data-*.arrow, cache-*.arrow)
};

// Which row format a file holds (the `dataset_format` option). Auto decides on the first row by its fields, in this
// order: "prompt" (prompt-completion; conversational when it is a list of messages), "messages" (conversational),
// "instruction" (alpaca), the text field (language modelling). Every later row must have the same format: a row of
// another format is an error naming file, row and the field that is missing or of the wrong kind.
enum class DatasetFormat { Auto, Alpaca, LanguageModeling, PromptCompletion, Conversational };
// "auto" | "alpaca" | "language_modeling" (or "text") | "prompt_completion" | "conversational" ('-' for '_' too);
// throws listing the valid names.
DatasetFormat parse_dataset_format(std::string_view name);
const char* dataset_format_name(DatasetFormat f);

struct ReadOptions {
  FileFormat format = FileFormat::Auto;
  // false: the first bad row throws sft::Error naming file and row. true: bad rows are skipped and counted.
  bool skip_bad_rows = false;
  // A row whose response is empty (instruction rows: `output` empty or only whitespace; chat rows: every assistant
  // turn empty) teaches nothing but "stop at once". false (default): such rows are excluded and counted in
  // ReadResult::rows_empty_response, the same for JSON, JSONL and CSV. true: they are kept (the target is EOS only).
  bool keep_empty_responses = false;
  DatasetFormat dataset_format = DatasetFormat::Auto;  // TRL's formats: which one the file holds (above)
  std::string dataset_text_field = "text";  // TRL's dataset_text_field: the field of language-modelling rows
};

struct ReadResult {
  std::vector<Example> examples;
  int64_t rows_seen = 0;       // rows parsed (kept + skipped + empty responses excluded)
  int64_t rows_skipped = 0;    // only with skip_bad_rows
  std::vector<std::string> skip_messages;  // the first 10 reasons, same text the error would have had
  int64_t rows_empty_response = 0;              // excluded (keep_empty_responses false)
  std::vector<std::string> empty_response_rows;  // origins of the first 5 of them
};

// Reads a dataset file (.json holding an array, or JSON lines; .jsonl; .csv; .parquet; .arrow). Errors (sft::Error, one line, naming file and 1-based row): unreadable file, unknown
// extension, malformed JSON/CSV, a row missing `instruction` or `output` (or with a non-string value), invalid UTF-8,
// a chat row whose messages are malformed or contain no assistant turn. A malformed JSON *array* cannot be resumed
// after, so it throws even with skip_bad_rows (the message says so); JSONL and CSV rows are independent.
ReadResult read_dataset(const std::filesystem::path& path, const ReadOptions& opts = {});

// Parsers on in-memory text (`name` is used in messages). read_dataset dispatches to these.
ReadResult parse_json_array(const std::string& text, const std::string& name, const ReadOptions& opts);
ReadResult parse_jsonl(const std::string& text, const std::string& name, const ReadOptions& opts);
ReadResult parse_csv(const std::string& text, const std::string& name, const ReadOptions& opts);
// Parquet / Arrow IPC bytes (parquet_reader.cpp). Without Arrow in the build: an error naming `name` that says so.
ReadResult parse_parquet(const std::string& bytes, const std::string& name, const ReadOptions& opts);
ReadResult parse_arrow_ipc(const std::string& bytes, const std::string& name, const ReadOptions& opts);
bool parquet_supported();  // this build links Apache Arrow

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
