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

// Reads a task file with the row's reader. A missing file is an error naming it (local files only).
std::vector<SourceRow> read_task_file(const TaskSpec& spec, const std::filesystem::path& file);

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
