// Task definitions: the prompt strings are byte-for-byte those of lm-eval 0.4.13's task YAMLs
// (tasks/mmlu/default/_default_template_yaml, tasks/arc/arc_easy.yaml, tasks/hellaswag/{hellaswag.yaml,utils.py})
// and of ConfigurableTask.fewshot_context / build_qa_turn: description + for each shot (query + " " + answer + "\n\n")
// + query.
#include "eval/tasks.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "eval/mmlu_subjects.h"
#include "eval/py_random.h"
#include "eval/py_text.h"
#include "util/error.h"
#include "util/file_util.h"

namespace sft::eval {
namespace {

using json = nlohmann::json;

std::string read_existing(const std::filesystem::path& p, const std::string& what) {
  SFT_CHECK(std::filesystem::exists(p), what, ": data file ", p.string(),
            " not found (sft eval reads local files only; see docs/arch/eval.md for the --data_dir layout)");
  return read_file(p);
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
    try {
      rows.push_back(json::parse(line));
    } catch (const json::exception& e) {
      throw Error(p.string() + " line " + std::to_string(lineno) + ": invalid JSON (" + e.what() + ")");
    }
  }
  return rows;
}

std::string json_text(const json& v, const std::filesystem::path& p, int64_t row, const char* field) {
  SFT_CHECK(v.is_string(), p.string(), " row ", row, ": field '", field, "' must be a string");
  return v.get<std::string>();
}

}  // namespace

std::vector<std::vector<std::string>> parse_csv(const std::string& raw, const std::string& path) {
  // Python opens the file in text mode (universal newlines): "\r\n" and "\r" become "\n" everywhere.
  std::string text;
  text.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\r') {
      text += '\n';
      if (i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
    } else {
      text += raw[i];
    }
  }
  enum State { StartRecord, StartField, InField, InQuoted, QuoteInQuoted };
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  State st = StartRecord;
  auto end_field = [&] {
    row.push_back(field);
    field.clear();
  };
  auto end_record = [&] {
    end_field();
    rows.push_back(std::move(row));
    row.clear();
    st = StartRecord;
  };
  for (char c : text) {
    switch (st) {
      case StartRecord:
        if (c == '\n') break;  // csv.reader yields [] for an empty line; callers skip those anyway
        [[fallthrough]];
      case StartField:
        if (c == '"') st = InQuoted;
        else if (c == ',') { end_field(); st = StartField; }
        else if (c == '\n') end_record();
        else { field += c; st = InField; }
        break;
      case InField:
        if (c == ',') { end_field(); st = StartField; }
        else if (c == '\n') end_record();
        else field += c;  // a quote inside an unquoted field is literal
        break;
      case InQuoted:
        if (c == '"') st = QuoteInQuoted;
        else field += c;
        break;
      case QuoteInQuoted:
        if (c == '"') { field += '"'; st = InQuoted; }
        else if (c == ',') { end_field(); st = StartField; }
        else if (c == '\n') end_record();
        else { field += c; st = InField; }  // non-strict: the closing quote is dropped, text continues
        break;
    }
  }
  SFT_CHECK(st != InQuoted, path, ": unexpected end of file inside a quoted field");
  if (st != StartRecord) end_record();
  return rows;
}

std::vector<Doc> load_mmlu_csv(const std::filesystem::path& csv) {
  auto rows = parse_csv(read_existing(csv, "mmlu"), csv.string());
  std::vector<Doc> docs;
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& f = rows[r];
    SFT_CHECK(f.size() == 6, csv.string(), " record ", r + 1, ": expected 6 fields (question,A,B,C,D,answer), got ",
              f.size());
    SFT_CHECK(f[5].size() == 1 && f[5][0] >= 'A' && f[5][0] <= 'D', csv.string(), " record ", r + 1,
              ": answer must be one of A, B, C, D, got '", f[5], "'");
    Doc d;
    d.gold = f[5][0] - 'A';
    // doc_to_text: "{{question.strip()}}\nA. {{choices[0]}}\nB. ...\nD. {{choices[3]}}\nAnswer:"
    d.query = py_strip(f[0]) + "\nA. " + f[1] + "\nB. " + f[2] + "\nC. " + f[3] + "\nD. " + f[4] + "\nAnswer:";
    d.choices = {"A", "B", "C", "D"};
    try {
      d.key = json(f).dump();
    } catch (const json::type_error&) {  // found by fuzzing: an uncaught json error ("internal error") before
      throw Error(csv.string() + " record " + std::to_string(r + 1) +
                  ": invalid UTF-8 (lm-eval reads the task files as UTF-8)");
    }
    docs.push_back(std::move(d));
  }
  return docs;
}

std::vector<Doc> load_arc_jsonl(const std::filesystem::path& jsonl) {
  std::vector<Doc> docs;
  int64_t r = 0;
  for (const auto& row : read_jsonl(jsonl, "arc")) {
    ++r;
    SFT_CHECK(row.contains("question") && row["question"].is_object() && row["question"].contains("stem") &&
                  row["question"].contains("choices") && row["question"]["choices"].is_array() &&
                  row.contains("answerKey"),
              jsonl.string(), " row ", r, ": expected AllenAI ARC fields question.stem, question.choices, answerKey");
    Doc d;
    std::string stem = json_text(row["question"]["stem"], jsonl, r, "question.stem");
    std::string answer = json_text(row["answerKey"], jsonl, r, "answerKey");
    d.gold = -1;
    for (const auto& ch : row["question"]["choices"]) {
      std::string label = json_text(ch.value("label", json()), jsonl, r, "question.choices[].label");
      if (label == answer && d.gold < 0) d.gold = static_cast<int>(d.choices.size());
      d.choices.push_back(json_text(ch.value("text", json()), jsonl, r, "question.choices[].text"));
    }
    SFT_CHECK(d.gold >= 0, jsonl.string(), " row ", r, ": answerKey '", answer, "' is not one of the choice labels");
    d.query = "Question: " + stem + "\nAnswer:";  // "Question: {{question}}\nAnswer:"
    d.key = row.dump();
    docs.push_back(std::move(d));
  }
  return docs;
}

std::vector<Doc> load_hellaswag_jsonl(const std::filesystem::path& jsonl) {
  std::vector<Doc> docs;
  int64_t r = 0;
  for (const auto& row : read_jsonl(jsonl, "hellaswag")) {
    ++r;
    SFT_CHECK(row.contains("activity_label") && row.contains("ctx_a") && row.contains("ctx_b") &&
                  row.contains("endings") && row["endings"].is_array() && row.contains("label"),
              jsonl.string(), " row ", r, ": expected rowanz HellaSwag fields activity_label, ctx_a, ctx_b, endings, label");
    Doc d;
    // utils.process_docs: ctx = ctx_a + " " + ctx_b.capitalize(); query = preprocess(activity_label + ": " + ctx)
    std::string ctx = json_text(row["ctx_a"], jsonl, r, "ctx_a") + " " +
                      py_capitalize(json_text(row["ctx_b"], jsonl, r, "ctx_b"));
    d.query = hellaswag_preprocess(json_text(row["activity_label"], jsonl, r, "activity_label") + ": " + ctx);
    for (const auto& e : row["endings"]) d.choices.push_back(hellaswag_preprocess(json_text(e, jsonl, r, "endings[]")));
    // The label is an int or a string of digits ("2"); anything else ("abc", "2abc", 2.5) is an error naming the row.
    const auto& lab = row["label"];
    const std::string lab_text = lab.is_string() ? lab.get<std::string>() : lab.is_number_integer() ? lab.dump() : "";
    const bool digits = !lab_text.empty() && lab_text.size() <= 9 &&
                        lab_text.find_first_not_of("0123456789") == std::string::npos;
    SFT_CHECK(digits, jsonl.string(), " row ", r, ": label must be an integer index of endings (0-",
              d.choices.size() - (d.choices.empty() ? 0 : 1), "), got ", lab.dump(), " (test rows have none)");
    d.gold = std::stoi(lab_text);
    SFT_CHECK(d.gold < static_cast<int>(d.choices.size()), jsonl.string(), " row ", r, ": label ", d.gold,
              " is out of range for ", d.choices.size(), " endings");
    d.key = row.dump();
    docs.push_back(std::move(d));
  }
  return docs;
}

std::vector<std::string> expand_task_names(const std::string& comma_list) {
  std::vector<std::string> out;
  auto add = [&out](const std::string& n) {
    for (const auto& o : out)
      if (o == n) return;
    out.push_back(n);
  };
  std::stringstream ss(comma_list);
  std::string name;
  while (std::getline(ss, name, ',')) {
    name = py_strip(name);
    if (name.empty()) continue;
    if (name == "mmlu") {
      for (const auto& s : mmlu_subjects()) add(std::string("mmlu_") + s.name);
    } else if (name == "mmlu_stem" || name == "mmlu_other" || name == "mmlu_social_sciences" ||
               name == "mmlu_humanities") {
      for (const auto& s : mmlu_subjects())
        if (name == std::string("mmlu_") + s.category) add(std::string("mmlu_") + s.name);
    } else if (name.rfind("mmlu_", 0) == 0 && find_mmlu_subject(name.substr(5))) {
      add(name);
    } else if (name == "arc_easy" || name == "arc_challenge" || name == "hellaswag") {
      add(name);
    } else {
      throw Error("unknown task '" + name +
                  "': valid tasks are mmlu, mmlu_<subject> (57 subjects, e.g. mmlu_marketing), mmlu_stem, mmlu_other, "
                  "mmlu_social_sciences, mmlu_humanities, arc_easy, arc_challenge, hellaswag");
    }
  }
  SFT_CHECK(!out.empty(), "--tasks is empty");
  return out;
}

namespace {

std::string shot_text(const Doc& d) { return d.query + " " + d.choices[d.gold] + "\n\n"; }

// ContextSampler.sample for the "default" (random) sampler; eval_doc_key non-null when the pool is the eval split.
std::vector<const Doc*> random_shots(PyRandom& rnd, const std::vector<Doc>& pool, int n, const Doc* eval_doc) {
  std::vector<const Doc*> res;
  if (!eval_doc) {
    for (int64_t i : rnd.sample_indices(static_cast<int64_t>(pool.size()), n)) res.push_back(&pool[i]);
    return res;
  }
  for (int64_t i : rnd.sample_indices(static_cast<int64_t>(pool.size()), n + 1))
    if (pool[i].key != eval_doc->key && static_cast<int>(res.size()) < n) res.push_back(&pool[i]);
  if (static_cast<int>(res.size()) < n) {  // several copies of eval_doc were drawn: resample without any of them
    std::vector<const Doc*> rest;
    for (const auto& d : pool)
      if (d.key != eval_doc->key) rest.push_back(&d);
    res.clear();
    for (int64_t i : rnd.sample_indices(static_cast<int64_t>(rest.size()), n)) res.push_back(rest[i]);
  }
  return res;
}

}  // namespace

Task build_task(const std::string& name, const TaskOptions& opts) {
  Task t;
  t.name = name;
  t.alias = name;
  t.num_fewshot = opts.num_fewshot;
  SFT_CHECK(opts.num_fewshot >= 0, "--num_fewshot must be >= 0");
  const auto& dir = opts.data_dir;
  std::vector<Doc> pool;
  bool first_n = false, pool_is_eval = false;
  std::string description;
  if (name.rfind("mmlu_", 0) == 0) {
    const MmluSubject* s = find_mmlu_subject(name.substr(5));
    SFT_CHECK(s, "unknown MMLU subject in task ", name);
    t.alias = s->name;
    t.group = std::string("mmlu_") + s->category;
    t.version = 1;
    t.eval_file = (dir / "mmlu" / "test" / (std::string(s->name) + "_test.csv")).string();
    t.docs = load_mmlu_csv(t.eval_file);
    if (opts.num_fewshot > 0) {
      t.fewshot_file = (dir / "mmlu" / "dev" / (std::string(s->name) + "_dev.csv")).string();
      pool = load_mmlu_csv(t.fewshot_file);
      SFT_CHECK(opts.num_fewshot <= static_cast<int>(pool.size()), name, ": --num_fewshot ", opts.num_fewshot,
                " exceeds the ", pool.size(), " dev examples in ", t.fewshot_file);
    }
    first_n = true;
    description = "The following are multiple choice questions (with answers) about " +
                  replace_all(s->name, "_", " ") + ".\n\n";
  } else if (name == "arc_easy" || name == "arc_challenge") {
    std::string base = name == "arc_easy" ? "ARC-Easy" : "ARC-Challenge";
    SFT_CHECK(opts.arc_split == "test" || opts.arc_split == "dev", "--arc_split must be test or dev, got '",
              opts.arc_split, "'");
    t.has_acc_norm = true;
    t.eval_file = (dir / "arc" / (base + (opts.arc_split == "test" ? "-Test.jsonl" : "-Dev.jsonl"))).string();
    t.docs = load_arc_jsonl(t.eval_file);
    if (opts.num_fewshot > 0) {
      auto train = dir / "arc" / (base + "-Train.jsonl");
      pool_is_eval = !std::filesystem::exists(train);
      t.fewshot_file = pool_is_eval ? t.eval_file : train.string();
      pool = pool_is_eval ? t.docs : load_arc_jsonl(train);
    }
  } else if (name == "hellaswag") {
    t.has_acc_norm = true;
    t.eval_file = (dir / "hellaswag" / "hellaswag_val.jsonl").string();
    t.docs = load_hellaswag_jsonl(t.eval_file);
    if (opts.num_fewshot > 0) {
      auto train = dir / "hellaswag" / "hellaswag_train.jsonl";
      pool_is_eval = !std::filesystem::exists(train);
      t.fewshot_file = pool_is_eval ? t.eval_file : train.string();
      pool = pool_is_eval ? t.docs : load_hellaswag_jsonl(train);
    }
  } else {
    throw Error("unknown task '" + name + "'");
  }
  SFT_CHECK(!t.docs.empty(), name, ": no documents in ", t.eval_file);
  t.n_original = static_cast<int64_t>(t.docs.size());
  if (opts.limit >= 0 && opts.limit < t.n_original) t.docs.resize(static_cast<size_t>(opts.limit));
  if (opts.num_fewshot > 0 && !first_n)
    SFT_CHECK(static_cast<int64_t>(pool.size()) >= opts.num_fewshot + (pool_is_eval ? 1 : 0), name,
              ": --num_fewshot ", opts.num_fewshot, " needs more examples than the ", pool.size(), " in ",
              t.fewshot_file);

  // lm-eval: task.set_fewshot_seed(seed) then one sampler call per eval doc, in document order.
  PyRandom rnd(opts.fewshot_seed);
  for (const auto& doc : t.docs) {
    std::string ctx = description;
    if (opts.num_fewshot > 0) {
      if (first_n) {
        for (int i = 0; i < opts.num_fewshot; ++i) ctx += shot_text(pool[i]);
      } else {
        for (const Doc* s : random_shots(rnd, pool, opts.num_fewshot, pool_is_eval ? &doc : nullptr))
          ctx += shot_text(*s);
      }
    }
    ctx += doc.query;
    t.contexts.push_back(std::move(ctx));
  }
  return t;
}

}  // namespace sft::eval
