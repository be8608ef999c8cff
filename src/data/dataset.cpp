// Dataset readers. JSON arrays are split into elements by a small structural scanner (strings and nesting aware) so
// that each element is parsed on its own: errors name the element, and skip_bad_rows can continue past a bad one.
#include "data/dataset.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>

#include "data/row_parser.h"
#include "util/error.h"
#include "util/file_util.h"
#include "util/input_file.h"
#include "util/utf8.h"

namespace sft::data {
namespace {

using json = nlohmann::json;

using detail::RowParser;
using detail::RowSink;

int64_t line_of_offset(const std::string& text, size_t offset) {
  return 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(std::min(offset, text.size())), '\n');
}

std::string_view strip_bom(std::string_view s) {
  if (s.size() >= 3 && static_cast<unsigned char>(s[0]) == 0xEF && static_cast<unsigned char>(s[1]) == 0xBB &&
      static_cast<unsigned char>(s[2]) == 0xBF)
    s.remove_prefix(3);
  return s;
}

// Parses one JSON row text and appends it, or reports it.
void add_json_row(std::string_view text, const std::string& origin, RowParser& parser, RowSink& sink) {
  std::string s(text);
  int64_t bad = find_invalid_utf8(s);
  if (bad >= 0) {
    sink.fail(origin + ": invalid UTF-8 at byte " + std::to_string(bad) + " of the row");
    return;
  }
  json row;
  try {
    row = json::parse(s);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number that overflows a double (1e999)
    sink.fail(origin + ": malformed JSON: " + e.what());
    return;
  }
  Example ex;
  ex.origin = origin;
  std::string err = parser.parse(row, origin, ex);
  if (!err.empty()) {
    sink.fail(origin + ": " + err);
    return;
  }
  sink.add(std::move(ex));
}

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

int64_t find_invalid_utf8(const std::string& s) { return utf8::find_invalid(s); }

ReadResult parse_json_array(const std::string& text_in, const std::string& name, const ReadOptions& opts) {
  ReadResult out;
  RowSink sink(opts, out);
  RowParser parser(opts);
  std::string_view all = strip_bom(text_in);
  const size_t base = text_in.size() - all.size();
  const std::string& text = text_in;
  size_t i = base, n = text.size();
  auto skip_ws = [&] {
    while (i < n && is_ws(text[i])) ++i;
  };
  skip_ws();
  SFT_CHECK(i < n && text[i] == '[', name, ": malformed JSON: expected a JSON array '[' at line ",
            line_of_offset(text, i), " (a file of one object per line should be named .jsonl)");
  ++i;
  skip_ws();
  if (i < n && text[i] == ']') return out;
  int64_t element = 0;
  // Line numbers are counted incrementally (one pass over the text), not from the start for every element.
  size_t counted_to = 0;
  int64_t line = 1;
  auto line_at = [&](size_t offset) {
    for (; counted_to < offset && counted_to < n; ++counted_to) line += text[counted_to] == '\n';
    return line;
  };
  while (true) {
    ++element;
    skip_ws();
    const size_t start = i;
    // Find the end of this element: a ',' or ']' at nesting depth 0 outside strings.
    int depth = 0;
    bool in_string = false;
    // A value that already ended at depth 0 followed by the start of another one means a missing ','. Splitting
    // there silently would count two lost rows as one skipped row, so it is a structural error.
    bool value_done = false;
    size_t missing_comma_at = std::string::npos;
    for (; i < n; ++i) {
      char c = text[i];
      if (in_string) {
        if (c == '\\') ++i;
        else if (c == '"') {
          in_string = false;
          if (depth == 0) value_done = true;
        }
        continue;
      }
      if ((c == '"' || c == '{' || c == '[') && depth == 0 && value_done && missing_comma_at == std::string::npos)
        missing_comma_at = i;
      if (c == '"') in_string = true;
      else if (c == '{' || c == '[') ++depth;
      else if (c == '}' || c == ']') {
        if (depth == 0) break;
        if (--depth == 0) value_done = true;
      } else if (c == ',' && depth == 0) break;
    }
    const std::string origin = name + " element " + std::to_string(element) + " (line " +
                               std::to_string(line_at(start)) + ")";
    SFT_CHECK(missing_comma_at == std::string::npos, origin, ": malformed JSON: missing ',' between array elements ",
              "before line ", line_of_offset(text, missing_comma_at), " (this cannot be skipped)");
    // A structural failure leaves no way to find the next element: it is fatal even with skip_bad_rows.
    SFT_CHECK(i < n, origin, ": malformed JSON: the array is not closed (unterminated string, object or array; ",
              "this cannot be skipped)");
    SFT_CHECK(text[i] != '}', origin, ": malformed JSON: unbalanced '}' (this cannot be skipped)");
    add_json_row(std::string_view(text).substr(start, i - start), origin, parser, sink);
    if (text[i] == ']') {
      ++i;
      break;
    }
    ++i;  // ','
  }
  skip_ws();
  SFT_CHECK(i == n, name, ": malformed JSON: unexpected text after the closing ']' at line ", line_of_offset(text, i));
  return out;
}

ReadResult parse_jsonl(const std::string& text_in, const std::string& name, const ReadOptions& opts) {
  ReadResult out;
  RowSink sink(opts, out);
  RowParser parser(opts);
  std::string_view text = strip_bom(text_in);
  int64_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (std::all_of(line.begin(), line.end(), is_ws)) continue;
    add_json_row(line, name + " line " + std::to_string(line_no), parser, sink);
  }
  return out;
}

std::vector<CsvRecord> parse_csv_records(const std::string& text, const std::string& name) {
  return csv::read_records(text, name, csv::Options{csv::LineEnds::Rfc4180, /*strict=*/true, /*strip_bom=*/true});
}

namespace {

std::string trimmed(const std::string& h) {
  auto first = h.find_first_not_of(" \t"), last = h.find_last_not_of(" \t");
  return first == std::string::npos ? "" : h.substr(first, last - first + 1);
}

// The checks every CSV record gets before its fields are read: blank lines are no rows (pandas), then the record's
// own error, the field count and UTF-8 in the columns that are read. Returns the record's origin, or "" to skip it.
std::string checked_record(const CsvRecord& rec, size_t r, const std::string& name, const CsvRecord& header,
                           const std::vector<char>& read_column, RowSink& sink) {
  if (rec.fields.empty() || (rec.fields.size() == 1 && rec.fields[0].empty())) return "";
  const std::string origin = name + " record " + std::to_string(r) + " (line " + std::to_string(rec.line) + ")";
  if (!rec.error.empty()) {
    sink.fail(origin + ": " + rec.error);
    return "";
  }
  if (rec.fields.size() != header.fields.size()) {
    sink.fail(origin + ": malformed CSV: expected " + std::to_string(header.fields.size()) +
              " fields as in the header, found " + std::to_string(rec.fields.size()));
    return "";
  }
  for (size_t c = 0; c < rec.fields.size(); ++c) {
    if (!read_column[c]) continue;
    const int64_t off = find_invalid_utf8(rec.fields[c]);
    if (off >= 0) {
      sink.fail(origin + ": invalid UTF-8 in column \"" + header.fields[c] + "\" at byte " + std::to_string(off));
      return "";
    }
  }
  return origin;
}

// CSV rows of TRL's string formats (language modelling, prompt-completion): each record becomes a JSON object of the
// columns (names trimmed, case kept, as `datasets` reads them) and goes through the same RowParser as JSON rows.
// An empty field is an empty string. Message lists cannot be written in CSV: conversational rows fail as a string
// "messages" would in JSON.
ReadResult parse_csv_rows_as_objects(const std::vector<CsvRecord>& records, const std::string& name,
                                     const ReadOptions& opts) {
  ReadResult out;
  RowSink sink(opts, out);
  RowParser parser(opts);
  const CsvRecord& header = records[0];
  std::vector<std::string> keys;
  std::set<std::string> seen;
  const std::vector<std::string> known = parser.known_fields();
  std::vector<char> read_column;
  for (const std::string& h : header.fields) {
    keys.push_back(trimmed(h));
    SFT_CHECK(seen.insert(keys.back()).second, name, " header (line 1): column \"", keys.back(), "\" appears twice");
    read_column.push_back(std::find(known.begin(), known.end(), keys.back()) != known.end());
  }
  for (size_t r = 1; r < records.size(); ++r) {
    const std::string origin = checked_record(records[r], r, name, header, read_column, sink);
    if (origin.empty()) continue;
    nlohmann::json row = nlohmann::json::object();
    for (size_t c = 0; c < keys.size(); ++c)
      if (read_column[c]) row[keys[c]] = records[r].fields[c];
    Example ex;
    ex.origin = origin;
    const std::string err = parser.parse(row, origin, ex);
    if (!err.empty()) {
      sink.fail(origin + ": " + err);
      continue;
    }
    sink.add(std::move(ex));
  }
  return out;
}

}  // namespace

ReadResult parse_csv(const std::string& text, const std::string& name, const ReadOptions& opts) {
  std::vector<CsvRecord> records = parse_csv_records(text, name);
  SFT_CHECK(!records.empty(), name, ": empty CSV file: expected a header row naming instruction, input, output");
  // Header: case-insensitive, surrounding spaces ignored; extra columns are ignored.
  const CsvRecord& header = records[0];
  SFT_CHECK(header.error.empty(), name, " header (line 1): ", header.error);
  int col_instruction = -1, col_input = -1, col_output = -1;
  bool trl_columns = false;
  for (size_t c = 0; c < header.fields.size(); ++c) {
    std::string h = trimmed(header.fields[c]);
    trl_columns |= h == opts.dataset_text_field || h == "prompt" || h == "completion";
    std::transform(h.begin(), h.end(), h.begin(), [](unsigned char ch) { return std::tolower(ch); });
    int* slot = h == "instruction" ? &col_instruction : h == "input" ? &col_input : h == "output" ? &col_output : nullptr;
    if (!slot) continue;
    SFT_CHECK(*slot < 0, name, " header (line 1): column \"", h, "\" appears twice");
    *slot = static_cast<int>(c);
  }
  const bool alpaca_columns = col_instruction >= 0 && col_output >= 0;
  const bool alpaca = opts.dataset_format == DatasetFormat::Alpaca ||
                      (opts.dataset_format == DatasetFormat::Auto && (alpaca_columns || !trl_columns));
  if (!alpaca) return parse_csv_rows_as_objects(records, name, opts);
  SFT_CHECK(alpaca_columns, name,
            " header (line 1): expected columns named instruction and output (input optional, any order), ",
            "or TRL's text / prompt and completion, got \"",
            [&] {
              std::string s;
              for (size_t c = 0; c < header.fields.size(); ++c) s += (c ? "," : "") + header.fields[c];
              return s;
            }(),
            "\"");
  ReadResult out;
  RowSink sink(opts, out);
  std::vector<char> read_column(header.fields.size(), 0);
  for (int c : {col_instruction, col_input, col_output})
    if (c >= 0) read_column[static_cast<size_t>(c)] = 1;
  for (size_t r = 1; r < records.size(); ++r) {
    const CsvRecord& rec = records[r];
    const std::string origin = checked_record(rec, r, name, header, read_column, sink);
    if (origin.empty()) continue;
    // CSV has no null: an empty instruction field is what a missing value looks like (pandas reads NaN).
    if (rec.fields[col_instruction].empty()) {
      sink.fail(origin + ": missing \"instruction\" (empty field)");
      continue;
    }
    // An empty output is a value, as "" in JSON: the empty-response rule of RowSink applies to both.
    Example ex;
    ex.origin = origin;
    ex.instruction = rec.fields[col_instruction];
    ex.output = rec.fields[col_output];
    if (col_input >= 0) ex.input = rec.fields[col_input];
    sink.add(std::move(ex));
  }
  return out;
}

ReadResult read_dataset(const std::filesystem::path& path, const ReadOptions& opts) {
  const std::string name = path.string();
  FileFormat fmt = opts.format;
  if (fmt == FileFormat::Auto) {
    std::string ext = path.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (ext == ".jsonl") fmt = FileFormat::Jsonl;
    else if (ext == ".csv") fmt = FileFormat::Csv;
    else if (ext == ".parquet") fmt = FileFormat::Parquet;
    else if (ext == ".arrow") fmt = FileFormat::Arrow;
    else
      SFT_CHECK(ext == ".json", name, ": unknown dataset extension \"", ext,
                "\" (expected .json, .jsonl, .csv, .parquet or .arrow)");
  }
  // Said before the file is read: a build without Arrow cannot read any of it.
  SFT_CHECK(parquet_supported() || (fmt != FileFormat::Parquet && fmt != FileFormat::Arrow), name,
            ": this sft was built without Apache Arrow, so it cannot read Parquet or Arrow files (run "
            "scripts/setup-arrow.sh and rebuild with -DSFT_PARQUET=ON, or convert the dataset to JSON lines)");
  std::string text = read_input_file(path, input::dataset);  // regular files only: a FIFO is refused, never waited on
  if (fmt == FileFormat::Auto) {
    // .json holds either an array or (as many hub datasets do) JSON lines: sniff the first non-space character.
    std::string_view body = strip_bom(text);
    size_t k = 0;
    while (k < body.size() && is_ws(body[k])) ++k;
    fmt = (k < body.size() && body[k] == '[') ? FileFormat::JsonArray : FileFormat::Jsonl;
    if (fmt == FileFormat::Jsonl) {
      // One object pretty-printed over several lines is neither an array nor JSON lines: say so, instead of
      // reporting its first line as malformed.
      const size_t eol = body.find('\n', k);
      const bool multi_line = eol != std::string_view::npos && body.find_first_not_of(" \t\r\n", eol) != std::string_view::npos;
      if (multi_line && !json::accept(body.substr(k, eol - k)) && json::accept(body))
        throw Error(name + ": holds a single JSON value spread over several lines; expected a JSON array of rows "
                           "([{...}, {...}]) or one JSON object per line (JSON lines)");
    }
  }
  switch (fmt) {
    case FileFormat::JsonArray: return parse_json_array(text, name, opts);
    case FileFormat::Jsonl: return parse_jsonl(text, name, opts);
    case FileFormat::Csv: return parse_csv(text, name, opts);
    case FileFormat::Parquet: return parse_parquet(text, name, opts);
    case FileFormat::Arrow: return parse_arrow_ipc(text, name, opts);
    case FileFormat::Auto: break;
  }
  throw Error(name + ": unreachable dataset format");
}

}  // namespace sft::data
