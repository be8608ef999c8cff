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
#include "util/csv.h"
#include "util/file_util.h"
#include "util/utf8.h"

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

std::vector<Doc> load_mmlu_csv(const std::filesystem::path& csv) {
  // The MMLU loading script iterates the file as binary lines, decodes each as UTF-8 (an invalid byte raises) and
  // hands them to csv.reader: CR/LF outside quotes end a record, "\r\n" inside a quoted field is kept verbatim.
  const std::string text = read_existing(csv, "mmlu");
  if (int64_t bad = utf8::find_invalid(text); bad >= 0)
    throw Error(csv.string() + ": invalid UTF-8 at byte " + std::to_string(bad) + " (MMLU files are UTF-8)");
  std::vector<Doc> docs;
  int64_t r = 0;
  for (const auto& rec : sft::csv::read_records(text, csv.string(), {sft::csv::LineEnds::PythonBinaryLines})) {
    if (rec.fields.empty()) continue;  // a blank line (none in MMLU): no question
    ++r;
    const auto& f = rec.fields;
    SFT_CHECK(f.size() == 6, csv.string(), " record ", r, " (line ", rec.line,
              "): expected 6 fields (question,A,B,C,D,answer), got ", f.size());
    SFT_CHECK(f[5].size() == 1 && f[5][0] >= 'A' && f[5][0] <= 'D', csv.string(), " record ", r, " (line ", rec.line, ")",
              ": answer must be one of A, B, C, D, got '", f[5], "'");
    Doc d;
    d.gold = f[5][0] - 'A';
    // doc_to_text: "{{question.strip()}}\nA. {{choices[0]}}\nB. ...\nD. {{choices[3]}}\nAnswer:"
    d.query = py_strip(f[0]) + "\nA. " + f[1] + "\nB. " + f[2] + "\nC. " + f[3] + "\nD. " + f[4] + "\nAnswer:";
    d.choices = {"A", "B", "C", "D"};
    d.key = json(f).dump();
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
    const auto& lab = row["label"];
    if (lab.is_number_integer()) d.gold = lab.get<int>();
    else if (lab.is_string() && !lab.get<std::string>().empty()) d.gold = std::stoi(lab.get<std::string>());
    else throw Error(jsonl.string() + " row " + std::to_string(r) + ": label must be an int 0-3 (test rows have none)");
    SFT_CHECK(d.gold >= 0 && d.gold < static_cast<int>(d.choices.size()), jsonl.string(), " row ", r,
              ": label out of range");
    d.key = row.dump();
    docs.push_back(std::move(d));
  }
  return docs;
}

namespace {

std::string mmlu_description(const std::string& subject) {
  return "The following are multiple choice questions (with answers) about " + replace_all(subject, "_", " ") + ".\n\n";
}

// THE TASK TABLE: one row per task family, in the order `--tasks` lists them. Each row is lm-eval 0.4.13's task YAML
// for that family with the dataset swapped for local files:
//   files      eval file and few-shot file under --data_dir ("{subject}" = MMLU subject, "{ARC}" = ARC-Easy /
//              ARC-Challenge, "{split}" = Test / Dev per --arc_split); `fallback_to_eval` = few-shot examples come
//              from the evaluated split when the few-shot file is absent (ARC/HellaSwag ship no train file here);
//   loader     file -> Doc{query (doc_to_text), choices (doc_to_choice), gold (doc_to_target)};
//   metrics    acc always, acc_norm where the YAML lists it;
//   few-shot   sampler (first_n | default random) and `exclude_eval_doc`: lm-eval passes the evaluated document to the
//              sampler (draw n+1, drop it, keep n) when `fewshot_split == test_split`. For hellaswag both are null
//              (no test split, no fewshot_split), so the check is always true; for ARC (test_split "test", no
//              fewshot_split) it is true only when the pool is the evaluated split; for MMLU (dev vs test) never.
enum class Sampler { FirstN, Random };
enum class ExcludeEvalDoc { Never, WhenPoolIsEvalSplit, Always };

struct TaskSpec {
  std::vector<std::string> names;  // leaf tasks of this family
  std::string eval_file, fewshot_file;
  bool fallback_to_eval = false;
  std::vector<Doc> (*load)(const std::filesystem::path&) = nullptr;
  bool has_acc_norm = false;
  int version = 1;
  Sampler sampler = Sampler::Random;
  ExcludeEvalDoc exclude_eval_doc = ExcludeEvalDoc::Never;
  std::string (*description)(const std::string& subject) = nullptr;  // null = no description
};

const std::vector<TaskSpec>& task_table() {
  static const std::vector<TaskSpec> table = [] {
    std::vector<std::string> mmlu;
    for (const auto& s : mmlu_subjects()) mmlu.push_back(std::string("mmlu_") + s.name);
    return std::vector<TaskSpec>{
        // tasks/mmlu/default/_default_template_yaml + mmlu_<subject>.yaml
        {mmlu, "mmlu/test/{subject}_test.csv", "mmlu/dev/{subject}_dev.csv", false, load_mmlu_csv, false, 1,
         Sampler::FirstN, ExcludeEvalDoc::Never, mmlu_description},
        // tasks/arc/arc_easy.yaml, arc_challenge.yaml
        {{"arc_easy", "arc_challenge"}, "arc/{ARC}-{split}.jsonl", "arc/{ARC}-Train.jsonl", true, load_arc_jsonl, true,
         1, Sampler::Random, ExcludeEvalDoc::WhenPoolIsEvalSplit, nullptr},
        // tasks/hellaswag/hellaswag.yaml + utils.py
        {{"hellaswag"}, "hellaswag/hellaswag_val.jsonl", "hellaswag/hellaswag_train.jsonl", true,
         load_hellaswag_jsonl, true, 1, Sampler::Random, ExcludeEvalDoc::Always, nullptr},
    };
  }();
  return table;
}

const TaskSpec* find_spec(const std::string& name) {
  for (const auto& spec : task_table())
    for (const auto& n : spec.names)
      if (n == name) return &spec;
  return nullptr;
}

std::string expand_path(std::string pattern, const std::string& name, const TaskOptions& opts) {
  if (name.rfind("mmlu_", 0) == 0) pattern = replace_all(pattern, "{subject}", name.substr(5));
  pattern = replace_all(pattern, "{ARC}", name == "arc_easy" ? "ARC-Easy" : "ARC-Challenge");
  return replace_all(pattern, "{split}", opts.arc_split == "dev" ? "Dev" : "Test");
}

}  // namespace

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
    } else if (find_spec(name)) {
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

// ContextSampler.sample for the "default" (random) sampler; eval_doc non-null when lm-eval passes it (see the table).
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
  const TaskSpec* spec = find_spec(name);
  SFT_CHECK(spec, "unknown task '", name, "'");
  SFT_CHECK(opts.num_fewshot >= 0, "--num_fewshot must be >= 0");
  SFT_CHECK(opts.arc_split == "test" || opts.arc_split == "dev", "--arc_split must be test or dev, got '",
            opts.arc_split, "'");
  Task t;
  t.name = name;
  t.alias = name;
  t.num_fewshot = opts.num_fewshot;
  t.version = spec->version;
  t.has_acc_norm = spec->has_acc_norm;
  std::string subject;
  if (const MmluSubject* s = name.rfind("mmlu_", 0) == 0 ? find_mmlu_subject(name.substr(5)) : nullptr) {
    subject = s->name;
    t.alias = s->name;
    t.group = std::string("mmlu_") + s->category;
  }
  const auto& dir = opts.data_dir;
  t.eval_file = (dir / expand_path(spec->eval_file, name, opts)).string();
  t.docs = spec->load(t.eval_file);
  SFT_CHECK(!t.docs.empty(), name, ": no documents in ", t.eval_file);
  std::vector<Doc> pool;
  bool pool_is_eval = false;
  if (opts.num_fewshot > 0) {
    auto fewshot = dir / expand_path(spec->fewshot_file, name, opts);
    pool_is_eval = spec->fallback_to_eval && !std::filesystem::exists(fewshot);
    t.fewshot_file = pool_is_eval ? t.eval_file : fewshot.string();
    pool = pool_is_eval ? t.docs : spec->load(fewshot);
  }
  const bool exclude = spec->exclude_eval_doc == ExcludeEvalDoc::Always ||
                       (spec->exclude_eval_doc == ExcludeEvalDoc::WhenPoolIsEvalSplit && pool_is_eval);
  t.n_original = static_cast<int64_t>(t.docs.size());
  if (opts.limit >= 0 && opts.limit < t.n_original) t.docs.resize(static_cast<size_t>(opts.limit));
  if (opts.num_fewshot > 0)
    SFT_CHECK(static_cast<int64_t>(pool.size()) >= opts.num_fewshot + (exclude ? 1 : 0), name, ": --num_fewshot ",
              opts.num_fewshot, " needs more examples than the ", pool.size(), " in ", t.fewshot_file);

  const std::string description = spec->description ? spec->description(subject) : "";
  // lm-eval: task.set_fewshot_seed(seed) then one sampler call per eval doc, in document order.
  PyRandom rnd(opts.fewshot_seed);
  for (const auto& doc : t.docs) {
    std::string ctx = description;
    if (opts.num_fewshot > 0) {
      if (spec->sampler == Sampler::FirstN) {  // FirstNSampler: pool[:n] (eval_doc is never passed for MMLU)
        for (int i = 0; i < opts.num_fewshot; ++i) ctx += shot_text(pool[i]);
      } else {
        for (const Doc* s : random_shots(rnd, pool, opts.num_fewshot, exclude ? &doc : nullptr)) ctx += shot_text(*s);
      }
    }
    ctx += doc.query;
    t.contexts.push_back(std::move(ctx));
  }
  return t;
}

}  // namespace sft::eval
