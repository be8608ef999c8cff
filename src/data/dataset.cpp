// Dataset readers. JSON arrays are split into elements by a small structural scanner (strings and nesting aware) so
// that each element is parsed on its own: errors name the element, and skip_bad_rows can continue past a bad one.
#include "data/dataset.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <optional>

#include "util/error.h"
#include "util/file_util.h"
#include "util/input_file.h"
#include "util/utf8.h"

namespace sft::data {
namespace {

using json = nlohmann::json;

bool is_blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

// The response a row would train on is empty: alpaca-cleaned has such rows (an empty `output`).
bool has_empty_response(const Example& ex) {
  if (!ex.is_chat()) return is_blank(ex.output);
  for (const auto& m : ex.messages)
    if (m.role == "assistant" && !is_blank(m.content)) return false;
  return true;
}

// Collects rows, or converts row errors into skips, in one place for every format.
class RowSink {
 public:
  RowSink(const ReadOptions& opts, ReadResult& out) : opts_(opts), out_(out) {}
  void fail(const std::string& msg) {
    ++out_.rows_seen;
    if (!opts_.skip_bad_rows) throw Error(msg);
    ++out_.rows_skipped;
    if (out_.skip_messages.size() < 10) out_.skip_messages.push_back(msg);
  }
  void add(Example&& ex) {
    ++out_.rows_seen;
    if (!opts_.keep_empty_responses && has_empty_response(ex)) {
      ++out_.rows_empty_response;
      if (out_.empty_response_rows.size() < 5) out_.empty_response_rows.push_back(ex.origin);
      return;
    }
    out_.examples.push_back(std::move(ex));
  }

 private:
  const ReadOptions& opts_;
  ReadResult& out_;
};

int64_t line_of_offset(const std::string& text, size_t offset) {
  return 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(std::min(offset, text.size())), '\n');
}

std::string_view strip_bom(std::string_view s) {
  if (s.size() >= 3 && static_cast<unsigned char>(s[0]) == 0xEF && static_cast<unsigned char>(s[1]) == 0xBB &&
      static_cast<unsigned char>(s[2]) == 0xBF)
    s.remove_prefix(3);
  return s;
}

// Returns an error text ("" when fine) for a string field value: absent/null -> missing; non-string -> wrong type.
std::optional<std::string> string_field(const json& obj, const char* key, bool required, std::string& err) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) err = std::string("missing \"") + key + "\"";
    return std::nullopt;
  }
  if (!it->is_string()) {
    err = std::string("\"") + key + "\" must be a string, got " + it->type_name();
    return std::nullopt;
  }
  return it->get<std::string>();
}

// Converts one parsed JSON row (instruction row or chat row) into an Example; "" on success, else the reason.
std::string example_from_json(const json& row, Example& ex) {
  if (!row.is_object()) return std::string("expected a JSON object, got ") + row.type_name();
  std::string err;
  if (row.contains("messages")) {
    const json& msgs = row["messages"];
    if (!msgs.is_array() || msgs.empty()) return "\"messages\" must be a non-empty array";
    bool has_assistant = false;
    for (size_t i = 0; i < msgs.size(); ++i) {
      const json& m = msgs[i];
      std::string where = "message " + std::to_string(i + 1) + ": ";
      if (!m.is_object()) return where + "expected an object with \"role\" and \"content\"";
      auto role = string_field(m, "role", true, err);
      if (!role) return where + err;
      auto content = string_field(m, "content", true, err);
      if (!content) return where + err;
      if (*role != "system" && *role != "user" && *role != "assistant")
        return where + "role must be system, user or assistant, got \"" + *role + "\"";
      if (*role == "system" && i != 0) return where + "a system message must come first";
      has_assistant |= *role == "assistant";
      ex.messages.push_back({*role, *content});
    }
    if (!has_assistant) return "\"messages\" has no assistant turn (nothing to train on)";
    return "";
  }
  auto instruction = string_field(row, "instruction", true, err);
  if (!instruction) return err;
  auto output = string_field(row, "output", true, err);
  if (!output) return err;
  auto input = string_field(row, "input", false, err);
  if (!err.empty()) return err;
  ex.instruction = std::move(*instruction);
  ex.output = std::move(*output);
  ex.input = input ? std::move(*input) : std::string();
  return "";
}

// Parses one JSON row text and appends it, or reports it.
void add_json_row(std::string_view text, const std::string& origin, RowSink& sink) {
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
  std::string err = example_from_json(row, ex);
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
    add_json_row(std::string_view(text).substr(start, i - start), origin, sink);
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
    add_json_row(line, name + " line " + std::to_string(line_no), sink);
  }
  return out;
}

std::vector<CsvRecord> parse_csv_records(const std::string& text, const std::string& name) {
  return csv::read_records(text, name, csv::Options{csv::LineEnds::Rfc4180, /*strict=*/true, /*strip_bom=*/true});
}

ReadResult parse_csv(const std::string& text, const std::string& name, const ReadOptions& opts) {
  ReadResult out;
  RowSink sink(opts, out);
  std::vector<CsvRecord> records = parse_csv_records(text, name);
  SFT_CHECK(!records.empty(), name, ": empty CSV file: expected a header row naming instruction, input, output");
  // Header: case-insensitive, surrounding spaces ignored; extra columns are ignored.
  const CsvRecord& header = records[0];
  SFT_CHECK(header.error.empty(), name, " header (line 1): ", header.error);
  int col_instruction = -1, col_input = -1, col_output = -1;
  for (size_t c = 0; c < header.fields.size(); ++c) {
    std::string h = header.fields[c];
    auto first = h.find_first_not_of(" \t"), last = h.find_last_not_of(" \t");
    h = first == std::string::npos ? "" : h.substr(first, last - first + 1);
    std::transform(h.begin(), h.end(), h.begin(), [](unsigned char ch) { return std::tolower(ch); });
    int* slot = h == "instruction" ? &col_instruction : h == "input" ? &col_input : h == "output" ? &col_output : nullptr;
    if (!slot) continue;
    SFT_CHECK(*slot < 0, name, " header (line 1): column \"", h, "\" appears twice");
    *slot = static_cast<int>(c);
  }
  SFT_CHECK(col_instruction >= 0 && col_output >= 0, name,
            " header (line 1): expected columns named instruction and output (input optional, any order), got \"",
            [&] {
              std::string s;
              for (size_t c = 0; c < header.fields.size(); ++c) s += (c ? "," : "") + header.fields[c];
              return s;
            }(),
            "\"");
  const size_t ncols = header.fields.size();
  for (size_t r = 1; r < records.size(); ++r) {
    const CsvRecord& rec = records[r];
    // pandas-style: a blank line is not a row.
    if (rec.fields.empty() || (rec.fields.size() == 1 && rec.fields[0].empty())) continue;
    const std::string origin = name + " record " + std::to_string(r) + " (line " + std::to_string(rec.line) + ")";
    if (!rec.error.empty()) {
      sink.fail(origin + ": " + rec.error);
      continue;
    }
    if (rec.fields.size() != ncols) {
      sink.fail(origin + ": malformed CSV: expected " + std::to_string(ncols) + " fields as in the header, found " +
                std::to_string(rec.fields.size()));
      continue;
    }
    bool bad = false;
    for (size_t c = 0; c < rec.fields.size() && !bad; ++c) {
      if (static_cast<int>(c) != col_instruction && static_cast<int>(c) != col_input &&
          static_cast<int>(c) != col_output)
        continue;
      int64_t off = find_invalid_utf8(rec.fields[c]);
      if (off >= 0) {
        sink.fail(origin + ": invalid UTF-8 in column \"" + header.fields[c] + "\" at byte " + std::to_string(off));
        bad = true;
      }
    }
    if (bad) continue;
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
    else
      SFT_CHECK(ext == ".json", name, ": unknown dataset extension \"", ext,
                "\" (expected .json, .jsonl or .csv)");
  }
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
    case FileFormat::Auto: break;
  }
  throw Error(name + ": unreachable dataset format");
}

}  // namespace sft::data
