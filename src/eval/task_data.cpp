#include "eval/task_data.h"

#include <sstream>

#include <algorithm>
#include <cstdio>
#include <map>
#include <system_error>

#include "data/parquet_rows.h"
#include "eval/py_literal.h"
#include "eval/py_text.h"
#include "template/jinja.h"
#include "util/csv.h"
#include "util/error.h"
#include "util/file_util.h"
#include "util/input_file.h"
#include "util/utf8.h"

namespace sft::eval {
namespace {

using json = nlohmann::json;
constexpr int kMaxJsonDepth = 32;  // task rows are a few levels deep; deeper input is refused, never recursed into

std::string read_existing(const std::filesystem::path& p, const std::string& what) {
  SFT_CHECK(std::filesystem::exists(p), what, ": data file ", p.string(),
            " not found (sft eval reads local files only; see docs/arch/eval.md for the --data_dir layout)");
  SFT_CHECK(std::filesystem::is_regular_file(p), what, ": data file ", p.string(), " is not a regular file");
  return read_file(p);
}

int json_depth(const json& v, int limit) {
  if (limit < 0) return 0;
  int d = 0;
  if (v.is_array() || v.is_object())
    for (const auto& x : v) d = std::max(d, 1 + json_depth(x, limit - 1));
  return d;
}

std::vector<json> read_jsonl(const std::filesystem::path& p, const std::string& what) {
  std::string text = read_existing(p, what);
  std::vector<json> rows;
  std::istringstream in(text);
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (py_strip(line).empty()) continue;
    json row;
    try {
      row = json::parse(line);
    } catch (const json::exception& e) {
      throw Error(p.string() + " line " + std::to_string(lineno) + ": invalid JSON (" + e.what() + ")");
    }
    SFT_CHECK(json_depth(row, kMaxJsonDepth + 1) <= kMaxJsonDepth, p.string(), " line ", lineno,
              ": JSON nested deeper than ", kMaxJsonDepth, " levels");
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string json_text(const json& v, const std::filesystem::path& p, int64_t row, const char* field) {
  SFT_CHECK(v.is_string(), p.string(), " row ", row, ": field '", field, "' must be a string");
  return v.get<std::string>();
}

// hendrycks CSV -> cais/mmlu rows {question, subject, choices, answer}. The loading script iterates the file as binary
// lines, decodes each as UTF-8 (an invalid byte raises) and hands them to csv.reader: CR/LF outside quotes end a
// record, "\r\n" inside a quoted field is kept verbatim.
std::vector<SourceRow> read_mmlu_csv(const std::filesystem::path& csv) {
  const std::string text = read_existing(csv, "mmlu");
  if (int64_t bad = utf8::find_invalid(text); bad >= 0)
    throw Error(csv.string() + ": invalid UTF-8 at byte " + std::to_string(bad) + " (MMLU files are UTF-8)");
  std::vector<SourceRow> rows;
  int64_t r = 0;
  for (const auto& rec : sft::csv::read_records(text, csv.string(), {sft::csv::LineEnds::PythonBinaryLines})) {
    if (rec.fields.empty()) continue;  // a blank line (none in MMLU): no question
    ++r;
    const auto& f = rec.fields;
    SFT_CHECK(f.size() == 6, csv.string(), " record ", r, " (line ", rec.line,
              "): expected 6 fields (question,A,B,C,D,answer), got ", f.size());
    SFT_CHECK(f[5].size() == 1 && f[5][0] >= 'A' && f[5][0] <= 'D', csv.string(), " record ", r, " (line ", rec.line,
              ")", ": answer must be one of A, B, C, D, got '", f[5], "'");
    rows.push_back({json{{"question", f[0]}, {"choices", {f[1], f[2], f[3], f[4]}}, {"answer", f[5][0] - 'A'}}, r});
  }
  return rows;
}

// AllenAI ARC JSONL -> allenai/ai2_arc rows {id, question, choices: {text, label}, answerKey}.
std::vector<SourceRow> read_arc_jsonl(const std::filesystem::path& jsonl) {
  std::vector<SourceRow> rows;
  int64_t r = 0;
  for (const auto& row : read_jsonl(jsonl, "arc")) {
    ++r;
    SFT_CHECK(row.is_object() && row.contains("question") && row["question"].is_object() &&
                  row["question"].contains("stem") && row["question"].contains("choices") &&
                  row["question"]["choices"].is_array() && row.contains("answerKey"),
              jsonl.string(), " row ", r, ": expected AllenAI ARC fields question.stem, question.choices, answerKey");
    json texts = json::array(), labels = json::array();
    for (const auto& ch : row["question"]["choices"]) {
      SFT_CHECK(ch.is_object(), jsonl.string(), " row ", r, ": question.choices[] must be objects {text, label}");
      const std::string label = json_text(ch.value("label", json()), jsonl, r, "question.choices[].label");
      for (const auto& seen : labels)
        SFT_CHECK(seen.get<std::string>() != label, jsonl.string(), " row ", r, ": question.choices[].label '", label,
                  "' appears twice (the answer key would be ambiguous)");
      labels.push_back(label);
      texts.push_back(json_text(ch.value("text", json()), jsonl, r, "question.choices[].text"));
    }
    const std::string answer = json_text(row["answerKey"], jsonl, r, "answerKey");
    bool found = false;
    for (const auto& l : labels) found = found || l.get<std::string>() == answer;
    SFT_CHECK(found, jsonl.string(), " row ", r, ": answerKey '", answer, "' is not one of the choice labels");
    json out{{"question", json_text(row["question"]["stem"], jsonl, r, "question.stem")},
             {"choices", {{"text", texts}, {"label", labels}}},
             {"answerKey", answer}};
    if (row.contains("id")) out["id"] = row["id"];
    rows.push_back({std::move(out), r});
  }
  return rows;
}

std::vector<SourceRow> read_plain_jsonl(const std::filesystem::path& jsonl, const std::string& what) {
  std::vector<SourceRow> rows;
  int64_t r = 0;
  for (auto& row : read_jsonl(jsonl, what)) {
    ++r;
    SFT_CHECK(row.is_object(), jsonl.string(), " row ", r, ": expected a JSON object (one dataset row per line)");
    rows.push_back({std::move(row), r});
  }
  return rows;
}

// tasks/hellaswag/utils.py process_docs: query = preprocess(activity_label + ": " + ctx_a + " " +
// ctx_b.capitalize()), choices = [preprocess(e) for e in endings], gold = int(label).
void process_hellaswag(json& row, const std::string& file, int64_t r) {
  std::string ctx = row["ctx_a"].get<std::string>() + " " + py_capitalize(row["ctx_b"].get<std::string>());
  row["query"] = hellaswag_preprocess(row["activity_label"].get<std::string>() + ": " + ctx);
  json choices = json::array();
  for (const auto& e : row["endings"]) choices.push_back(hellaswag_preprocess(e.get<std::string>()));
  // The label is an int or a string of digits ("2"); anything else ("abc", "2abc", 2.5) is an error naming the row.
  const auto& lab = row["label"];
  const std::string lab_text = lab.is_string() ? lab.get<std::string>() : lab.is_number_integer() ? lab.dump() : "";
  const bool digits = !lab_text.empty() && lab_text.size() <= 9 &&
                      lab_text.find_first_not_of("0123456789") == std::string::npos;
  SFT_CHECK(digits, file, " row ", r, ": label must be an integer index of endings (0-",
            choices.size() - (choices.empty() ? 0 : 1), "), got ", lab.dump(), " (test rows have none)");
  const int gold = std::stoi(lab_text);
  SFT_CHECK(gold < static_cast<int>(choices.size()), file, " row ", r, ": label ", gold, " is out of range for ",
            choices.size(), " endings");
  row["choices"] = std::move(choices);
  row["gold"] = gold;
}

jinja::Value to_value(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return jinja::Value(jinja::None{});
    case json::value_t::boolean: return jinja::Value(v.get<bool>());
    case json::value_t::number_integer: return jinja::Value(v.get<int64_t>());
    case json::value_t::number_unsigned: {
      const auto u = v.get<uint64_t>();
      SFT_CHECK(u <= static_cast<uint64_t>(INT64_MAX), "integer ", u, " is outside the 64-bit range");
      return jinja::Value(static_cast<int64_t>(u));
    }
    case json::value_t::number_float: return jinja::Value(v.get<double>());
    case json::value_t::string: return jinja::Value(v.get<std::string>());
    case json::value_t::array: {
      jinja::List l;
      for (const auto& x : v) l.push_back(to_value(x));
      return jinja::Value(std::move(l));
    }
    case json::value_t::object: {
      jinja::Dict d;
      for (const auto& [k, x] : v.items()) d.set(k, to_value(x));
      return jinja::Value(std::move(d));
    }
    default: throw Error("unsupported JSON value");
  }
}

const char* type_text(FieldType t) {
  switch (t) {
    case FieldType::String: return "a string";
    case FieldType::Int: return "an integer";
    case FieldType::StringOrInt: return "a string or an integer";
    case FieldType::StringList: return "a list of strings";
    case FieldType::IntList: return "a list of integers";
    case FieldType::Object: return "an object";
  }
  return "?";
}

bool has_type(const json& v, FieldType t) {
  auto all = [&](auto pred) {
    for (const auto& x : v)
      if (!pred(x)) return false;
    return true;
  };
  switch (t) {
    case FieldType::String: return v.is_string();
    case FieldType::Int: return v.is_number_integer();
    case FieldType::StringOrInt: return v.is_string() || v.is_number_integer();
    case FieldType::StringList: return v.is_array() && all([](const json& x) { return x.is_string(); });
    case FieldType::IntList: return v.is_array() && all([](const json& x) { return x.is_number_integer(); });
    case FieldType::Object: return v.is_object();
  }
  return false;
}

void check_field(const json& row, const FieldSpec& f, const std::string& file, int64_t r) {
  const json* v = &row;
  std::string walked;
  std::istringstream parts(f.path);
  std::string part;
  while (std::getline(parts, part, '.')) {
    walked += (walked.empty() ? "" : ".") + part;
    SFT_CHECK(v->is_object() && v->contains(part), file, " row ", r, ": field '", walked, "' is missing (expected ",
              type_text(f.type), walked == f.path ? "" : " at '" + f.path + "'", ")");
    v = &(*v)[part];
  }
  SFT_CHECK(has_type(*v, f.type), file, " row ", r, ": field '", f.path, "' must be ", type_text(f.type), ", got ",
            v->dump(-1, ' ', false, json::error_handler_t::replace).substr(0, 80));
  SFT_CHECK(!f.non_empty || !v->empty(), file, " row ", r, ": field '", f.path, "' is empty");
  if (!f.must_contain.empty())
    SFT_CHECK(v->get<std::string>().find(f.must_contain) != std::string::npos, file, " row ", r, ": field '", f.path,
              "' must contain '", f.must_contain, "'");
  if (!f.one_of.empty()) {
    const std::string text = v->is_string() ? v->get<std::string>() : v->dump();
    bool ok = false;
    for (const auto& o : f.one_of) ok = ok || o == text;
    std::string allowed;
    for (const auto& o : f.one_of) allowed += (allowed.empty() ? "" : ", ") + o;
    SFT_CHECK(ok, file, " row ", r, ": field '", f.path, "' must be one of ", allowed, ", got ", v->dump());
  }
}

// A Hugging Face dataset's Parquet split: its rows as they are (already the schema the row's templates read). A
// column the row reads whose type has no JSON form is an error naming the file and column; others are ignored.
std::vector<SourceRow> read_parquet_rows(const TaskSpec& spec, const std::filesystem::path& p) {
  SFT_CHECK(input_present(p), spec.name, ": data file ", p.string(),
            " not found (sft eval reads local files only; see docs/arch/eval.md for the --data_dir layout)");
  data::JsonRows parsed = data::parquet_rows_as_json(read_input_file(p, input::dataset), p.string(), kMaxJsonDepth);
  for (const auto& skipped : parsed.skipped_columns)
    for (const auto& f : spec.fields)
      SFT_CHECK(f.path.substr(0, f.path.find('.')) != skipped.column, p.string(), ": column \"", skipped.column,
                "\" (field '", f.path, "') cannot be read: ", skipped.reason);
  std::vector<SourceRow> rows;
  rows.reserve(parsed.rows.size());
  for (size_t k = 0; k < parsed.rows.size(); ++k) rows.push_back({std::move(parsed.rows[k]), static_cast<int64_t>(k) + 1});
  return rows;
}

// "<name>-NNNNN-of-MMMMM.parquet" (the hub's shard names, `datasets`' {split}-{index:05d}-of-{count:05d}): index, count.
bool parse_shard_name(const std::string& file, const std::string& name, int& index, int& count) {
  static const std::string kOf = "-of-", kExt = ".parquet";
  if (file.size() != name.size() + 1 + 5 + kOf.size() + 5 + kExt.size() || file.compare(0, name.size(), name) != 0 ||
      file[name.size()] != '-')
    return false;
  const std::string i = file.substr(name.size() + 1, 5), of = file.substr(name.size() + 6, kOf.size()),
                    c = file.substr(name.size() + 6 + kOf.size(), 5), ext = file.substr(file.size() - kExt.size());
  auto digits = [](const std::string& t) { return t.find_first_not_of("0123456789") == std::string::npos; };
  if (of != kOf || ext != kExt || !digits(i) || !digits(c)) return false;
  index = std::stoi(i), count = std::stoi(c);
  return true;
}

}  // namespace

std::vector<std::filesystem::path> locate_split_files(const std::filesystem::path& primary,
                                                      const std::filesystem::path& parquet_stem) {
  namespace fs = std::filesystem;
  if (input_present(primary)) return {primary};
  if (parquet_stem.empty()) return {};
  fs::path single = parquet_stem;
  single += ".parquet";
  if (input_present(single)) return {single};
  const fs::path dir = parquet_stem.parent_path();
  const std::string name = parquet_stem.filename().string();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return {};
  std::map<int, fs::path> shards;
  int count = -1;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    int i = 0, n = 0;
    if (!parse_shard_name(it->path().filename().string(), name, i, n)) continue;
    SFT_CHECK(count < 0 || n == count, dir.string(), ": the shards of ", name, " disagree on their count (", name,
              "-*-of-", n, " and -of-", count, ")");
    count = n;
    SFT_CHECK(i < n, it->path().string(), ": shard index ", i, " is not below the shard count ", n);
    shards[i] = it->path();
  }
  SFT_CHECK(!ec, dir.string(), ": cannot list the folder (", ec.message(), ")");
  if (shards.empty()) return {};
  std::vector<fs::path> files;
  for (int i = 0; i < count; ++i) {
    char want[64];
    std::snprintf(want, sizeof want, "-%05d-of-%05d.parquet", i, count);
    SFT_CHECK(shards.count(i), (dir / (name + want)).string(), " is missing (the split has ", count,
              " shards; all of them are read)");
    files.push_back(shards[i]);
  }
  return files;
}

std::string split_files_name(const std::vector<std::filesystem::path>& files) {
  if (files.size() != 1) {  // shards: "<stem>-NNNNN-of-MMMMM.parquet" (checked by locate_split_files)
    const std::string f = files.empty() ? std::string() : files.front().string();
    constexpr size_t kSuffix = 23;  // "-00000-of-00002.parquet"
    if (f.size() > kSuffix) return f.substr(0, f.size() - kSuffix) + "-*-of-" + f.substr(f.size() - 13, 5) + ".parquet";
    return f;
  }
  return files.front().string();
}

void throw_missing_split(const std::string& task, const std::filesystem::path& primary,
                         const std::filesystem::path& parquet_stem) {
  throw Error(task + ": data file " + primary.string() + " not found, nor the Parquet split " + parquet_stem.string() +
              ".parquet or its shards " + parquet_stem.filename().string() +
              "-00000-of-0000N.parquet (sft eval reads local files only; see docs/arch/eval.md for the --data_dir "
              "layout)");
}

std::vector<SourceRow> read_task_file(const TaskSpec& spec, const std::filesystem::path& file) {
  if (file.extension() == ".parquet") return read_parquet_rows(spec, file);
  switch (spec.reader) {
    case Reader::MmluCsv: return read_mmlu_csv(file);
    case Reader::ArcAllenAi: return read_arc_jsonl(file);
    case Reader::HellaswagRowanz: return read_plain_jsonl(file, "hellaswag");
    case Reader::Jsonl: break;
  }
  return read_plain_jsonl(file, spec.name);
}

// ---- templates -------------------------------------------------------------------------------------------------

struct DocBuilder::Impl {
  struct Column {
    std::string name;  // "doc_to_text" ...
    std::string source;
    std::optional<jinja::Template> tmpl;
  };
  const TaskSpec& spec;
  std::string task;
  Column text, choice, target, labels;

  Column make(const char* name, const std::string& src) const {
    Column c{name, src, std::nullopt};
    if (!src.empty()) c.tmpl.emplace(jinja::Template::parse(src, task + " " + name));
    return c;
  }

  // The column's value for this document: a field, or the rendered template (a string).
  jinja::Value raw(const Column& c, const jinja::Dict& doc, bool& rendered) const {
    rendered = false;
    if (const jinja::Value* v = doc.find(c.source)) return *v;
    rendered = true;
    return jinja::Value(c.tmpl->render(doc).text);
  }

  [[noreturn]] void fail(const std::string& file, int64_t r, const Column& c, const std::string& what) const {
    throw Error(file + " row " + std::to_string(r) + ": " + c.name + " (" + c.source.substr(0, 60) +
                (c.source.size() > 60 ? "..." : "") + ") " + what);
  }

  // doc_to_text / doc_to_target with lm-eval's conversions.
  jinja::Value text_like(const Column& c, const jinja::Dict& doc, bool target, const std::string& file, int64_t r) const {
    bool rendered = false;
    jinja::Value v;
    try {
      v = raw(c, doc, rendered);
    } catch (const Error& e) {
      fail(file, r, c, std::string("failed: ") + e.what());
    }
    if (!rendered) return v;
    const std::string& s = v.as_string();
    if (py_isdigit_ascii(s) && !spec.doc_to_choice.empty()) return py_literal_eval(s, file + " row " + std::to_string(r) + ": " + c.name);
    if (target && s.size() >= 2 && s.front() == '[' && s.back() == ']') {
      try {
        return py_literal_eval(s, c.name);
      } catch (const Error&) {  // lm-eval keeps the text when literal_eval fails
      }
    }
    return v;
  }

  std::vector<std::string> string_list(const Column& c, const jinja::Dict& doc, const std::string& file, int64_t r) const {
    bool rendered = false;
    jinja::Value v;
    try {
      v = raw(c, doc, rendered);
      if (rendered) v = py_literal_eval(v.as_string(), "the rendered list");
    } catch (const Error& e) {
      fail(file, r, c, std::string("failed: ") + e.what());
    }
    if (!v.is_list()) fail(file, r, c, std::string("must give a list, got ") + v.type_name());
    std::vector<std::string> out;
    for (const auto& x : v.as_list()) {
      if (!x.is_string()) fail(file, r, c, std::string("must give a list of strings, got an element of type ") + x.type_name());
      out.push_back(x.as_string());
    }
    return out;
  }
};

DocBuilder::DocBuilder(const TaskSpec& spec, const std::string& task_name) : impl_(new Impl{spec, task_name, {}, {}, {}, {}}) {
  impl_->text = impl_->make("doc_to_text", spec.doc_to_text);
  impl_->choice = impl_->make("doc_to_choice", spec.doc_to_choice);
  impl_->target = impl_->make("doc_to_target", spec.doc_to_target);
  impl_->labels = impl_->make("doc_to_labels", spec.doc_to_labels);
}
DocBuilder::~DocBuilder() = default;
DocBuilder::DocBuilder(DocBuilder&&) noexcept = default;

Doc DocBuilder::build(const SourceRow& src, const std::string& file) const {
  const Impl& m = *impl_;
  const int64_t r = src.row;
  json row = src.fields;
  for (const auto& f : m.spec.fields) check_field(row, f, file, r);
  Doc d;
  d.row = r;
  d.key = row.dump(-1, ' ', false, json::error_handler_t::replace);
  if (m.spec.process_docs == "hellaswag") process_hellaswag(row, file, r);
  jinja::Dict doc;
  try {
    doc = to_value(row).as_dict();
  } catch (const Error& e) {
    throw Error(file + " row " + std::to_string(r) + ": " + e.what());
  }
  const OutputType out = m.spec.output;
  if (out != OutputType::GenerateUntil) {
    d.choices = m.string_list(m.choice, doc, file, r);
    if (d.choices.empty()) m.fail(file, r, m.choice, "gave no choices");
  }
  const jinja::Value text = m.text_like(m.text, doc, false, file, r);
  const jinja::Value target = m.text_like(m.target, doc, true, file, r);
  auto index_of = [&](const jinja::Value& v, const Impl::Column& c) -> int {
    if (v.is_int()) {
      if (v.as_int() < 0 || v.as_int() >= static_cast<int64_t>(d.choices.size()))
        m.fail(file, r, c, "gives label " + std::to_string(v.as_int()) + ", outside the " +
                               std::to_string(d.choices.size()) + " choices");
      return static_cast<int>(v.as_int());
    }
    if (v.is_string())
      for (size_t i = 0; i < d.choices.size(); ++i)
        if (d.choices[i] == v.as_string()) return static_cast<int>(i);
    m.fail(file, r, c, "gives " + v.repr().substr(0, 60) + ", which is not one of the choices");
  };
  switch (out) {
    case OutputType::MultipleChoice:
    case OutputType::LoglikelihoodMc2:
      if (!text.is_string()) m.fail(file, r, m.text, std::string("must give text, got ") + text.type_name());
      d.query = text.as_string();
      d.gold = index_of(target, m.target);
      break;
    case OutputType::MultipleChoicePartial:
      d.gold = index_of(text, m.text);
      if (!target.is_string()) m.fail(file, r, m.target, std::string("must give text, got ") + target.type_name());
      d.target = target.as_string();
      break;
    case OutputType::GenerateUntil:
      if (!text.is_string()) m.fail(file, r, m.text, std::string("must give text, got ") + text.type_name());
      d.query = text.as_string();
      if (!target.is_string() && !target.is_int())
        m.fail(file, r, m.target, std::string("must give text, got ") + target.type_name());
      d.target = target.str();
      break;
  }
  if (out == OutputType::LoglikelihoodMc2) {
    bool rendered = false;
    jinja::Value v;
    try {
      v = m.raw(m.labels, doc, rendered);
      if (rendered) v = py_literal_eval(v.as_string(), "the rendered labels");
    } catch (const Error& e) {
      m.fail(file, r, m.labels, std::string("failed: ") + e.what());
    }
    if (!v.is_list() || v.as_list().size() != d.choices.size())
      m.fail(file, r, m.labels, "must give one 0/1 label per choice (" + std::to_string(d.choices.size()) + ")");
    for (const auto& x : v.as_list()) {
      if (!x.is_int() || (x.as_int() != 0 && x.as_int() != 1)) m.fail(file, r, m.labels, "labels must be 0 or 1");
      d.labels.push_back(static_cast<int>(x.as_int()));
    }
  }
  return d;
}

}  // namespace sft::eval
