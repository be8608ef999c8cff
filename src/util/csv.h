// The project's one CSV reader. It runs CPython's csv.reader state machine (Modules/_csv.c, default dialect:
// delimiter ',', quotechar '"', doublequote, no escapechar) over the lines a Python program would hand it, with the
// two places where the project's readers need different semantics as options:
//
//   - which bytes end a record outside quotes, and how the file is cut into lines:
//       PythonBinaryLines  the file iterated as binary lines (split after each LF) and decoded, as the MMLU loading
//                          script does: CR and LF outside quotes end a record, CR/LF inside quotes are kept verbatim
//                          (so "\r\n" inside a quoted field stays "\r\n");
//       PythonTextMode     open(path) in text mode (universal newlines): every "\r\n" and lone "\r" becomes "\n"
//                          first, inside quotes too;
//       Rfc4180            LF or CRLF end a record (a lone CR is data), as pandas / RFC 4180 readers do;
//   - strictness: Python's default (strict=False) keeps a quote inside an unquoted field and text after a closing
//     quote as literal text and returns an unterminated quoted field at end of file; strict mode records the first
//     two as the record's `error` (the caller decides) and throws on the third (everything after it would be misread).
//
// Blank lines give a record with no fields (csv.reader yields []). A newline character followed by other text on
// the same line outside quotes (a lone CR in the Python modes) throws, as csv.Error does.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sft::csv {

enum class LineEnds { PythonBinaryLines, PythonTextMode, Rfc4180 };

struct Options {
  LineEnds line_ends = LineEnds::PythonBinaryLines;
  bool strict = false;
  bool strip_bom = false;  // drop a leading UTF-8 BOM (pandas/utf-8-sig); Python's "utf-8" keeps it as U+FEFF
};

struct Record {
  std::vector<std::string> fields;
  int64_t line = 0;   // 1-based line on which the record starts
  std::string error;  // strict mode only: what is malformed in this record (empty when well formed)
};

// name is used in error messages ("<name> record N (line L): ...").
std::vector<Record> read_records(std::string_view text, const std::string& name, const Options& opts);

}  // namespace sft::csv
