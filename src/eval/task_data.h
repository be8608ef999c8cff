// From a task row and its local files to documents: the readers (file -> rows in the HF dataset's schema), field
// validation, process_docs, and the doc_to_text / doc_to_choice / doc_to_target templates rendered with
// src/template and read back with lm-eval's rules (ConfigurableTask.doc_to_text/doc_to_choice/doc_to_target):
//   - a column that names a top-level field of the document is that field's value;
//   - otherwise the Jinja template is rendered to text; doc_to_text and doc_to_target text of ASCII digits becomes an
//     int when the task has choices; doc_to_target text "[...]" is literal_eval'ed (kept as text if that fails);
//     doc_to_choice text is literal_eval'ed and must be a list of strings.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/task_spec.h"
#include "eval/tasks.h"

namespace sft::eval {

// One row of a task file in the schema the row's templates read, and where it came from (for messages).
struct SourceRow {
  nlohmann::json fields;
  int64_t row = 0;  // 1-based, counting non-blank rows/records
};

// Reads a task file with the row's reader, or, for a .parquet file, the Hugging Face dataset's rows as they are
// (data/parquet_rows.h: struct and list columns become objects and arrays, as in the dataset's JSON lines; row n is
// the file's n-th row, 1-based, as JSON lines count their non-blank lines from 1). A missing file is an error naming
// it (local files only).
std::vector<SourceRow> read_task_file(const TaskSpec& spec, const std::filesystem::path& file);

// The files holding one split under --data_dir: `primary` (the row's reader file) when present; else the HF
// dataset's Parquet split: `<parquet_stem>.parquet`, else the hub's shards `<stem>-00000-of-0000N.parquet` ...
// (all N of them, in order; a missing shard is an error naming it). Empty when none of these is present.
std::vector<std::filesystem::path> locate_split_files(const std::filesystem::path& primary,
                                                      const std::filesystem::path& parquet_stem);
// How locate_split_files' result is named in messages and results.json: the one file, or "<stem>-*-of-0000N.parquet".
std::string split_files_name(const std::vector<std::filesystem::path>& files);
// The error for a split none of whose files is present, naming the primary file and the Parquet alternatives.
[[noreturn]] void throw_missing_split(const std::string& task, const std::filesystem::path& primary,
                                      const std::filesystem::path& parquet_stem);

// Validates and renders rows into documents. Templates are parsed once.
class DocBuilder {
 public:
  DocBuilder(const TaskSpec& spec, const std::string& task_name);
  ~DocBuilder();
  DocBuilder(DocBuilder&&) noexcept;
  // Throws sft::Error "<file> row <n>: <field or column>: <what was expected>".
  Doc build(const SourceRow& row, const std::string& file) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sft::eval
