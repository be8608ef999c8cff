// `sft eval`: lm-evaluation-harness-compatible evaluation on local data: the tasks of the task table
// (eval/task_table.cpp: MMLU, ARC, HellaSwag, TruthfulQA, Winogrande, GSM8K, PIQA, BoolQ, OpenBookQA) and its groups
// (leaderboard_v1).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <optional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "backend/device.h"
#include "backend/gemm_probe.h"
#include "cli/commands.h"
#include "cli/numeric_flags.h"
#include "cli/quant_flags.h"
#include "io/gguf.h"
#include "eval/evaluator.h"
#include "eval/gen_kwargs.h"
#include "eval/compare_report.h"
#include "eval/results_cache.h"
#include "eval/report.h"
#include "eval/scorer.h"
#include "eval/tasks.h"
#include "generate/generator.h"
#include "model/lora.h"
#include "model/weight_check.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/file_util.h"

namespace sft::cli {
namespace {

namespace fs = std::filesystem;

struct EvalArgs {
  std::string adapter;  // peft adapter folder applied to --model (not to --compare)
  QuantFlags quant;     // --load_in_4bit ... (QLoRA adapters; the --model side)
  std::string model, tasks = "mmlu,hellaswag,arc_easy,arc_challenge", data_dir, output_path, compare, seed = "1234";
  std::string batch_size = "auto", dtype = "auto", device = "cpu", arc_split = "test", use_cache, limit;
  std::string num_fewshot_flag, max_length_flag;  // as given; parsed into the two below by parse_numeric_flags
  std::optional<int> num_fewshot;  // unset: each task's default (its YAML num_fewshot, or its group's shots)
  std::vector<std::string> gen_kwargs;
  int64_t max_length = 0;  // 0: the model's (lm-eval's resolve_max_length)
  std::string compute_dtype;  // --dtype resolved ("float32" | "bfloat16"), recorded in results.json
  bool log_samples = false, quiet = false, allow_nonfinite_weights = false;
};

// Bounds of the numeric flags (numeric_flags.h: one-line errors, exit 1, before any model is loaded).
constexpr int64_t kMaxShots = 1000000;        // far above any few-shot pool; the pool check names the file
constexpr int64_t kMaxBatchDocs = 65536;      // documents per forward
constexpr int64_t kMaxContext = int64_t{1} << 24;

// --limit N (N >= 1; lm-eval's fraction form is not supported).
int64_t parse_limit(const std::string& s) {
  if (s.empty()) return -1;
  return parse_int_flag("--limit", s, 1, INT64_MAX, "a positive number of documents per task");
}

// lm-eval's --seed: one integer for all four seeds, or "python,numpy,torch,fewshot" (3 values: the few-shot seed keeps
// its default 1234), each an integer or None (lm-eval's _int_or_none_list_arg_type). Only the few-shot seed matters
// here; random.Random(n) seeds with abs(n), so a negative seed draws what its absolute value draws.
uint64_t parse_fewshot_seed(const std::string& s) {
  const std::string expected =
      "an integer (|n| < 2^64), or lm-eval's python,numpy,torch,fewshot list (3 or 4 such integers or None)";
  auto bad = [&]() { return Error("--seed: expected " + expected + ", got '" + s.substr(0, 80) + "'"); };
  std::vector<std::string> items;
  for (size_t b = 0;;) {
    const size_t e = s.find(',', b);
    std::string item = s.substr(b, e == std::string::npos ? std::string::npos : e - b);
    const size_t first = item.find_first_not_of(" \t"), last = item.find_last_not_of(" \t");  // int() strips
    items.push_back(first == std::string::npos ? std::string() : item.substr(first, last - first + 1));
    if (e == std::string::npos) break;
    b = e + 1;
  }
  if (items.size() != 1 && items.size() != 3 && items.size() != 4) throw bad();
  std::optional<uint64_t> fewshot;  // None
  for (const std::string& item : items) {
    std::string lower = item;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    fewshot.reset();
    if (lower == "none") continue;
    try {
      fewshot = parse_uint64_flag("--seed", item.size() > 1 && item[0] == '-' ? item.substr(1) : item, expected);
    } catch (const Error&) {
      throw bad();
    }
  }
  if (items.size() == 3) return 1234;  // lm-eval fills the missing few-shot seed with its default
  if (!fewshot)
    throw Error("--seed: expected an integer few-shot seed (with None lm-eval draws the few-shot examples from an "
                "unseeded generator, which no run can reproduce), got '" + s.substr(0, 80) + "'");
  return *fewshot;
}

eval::BatchLimits parse_batch_size(const std::string& s) {
  // lm-eval spells it N, "auto" or "auto:N" (N = how often lm-eval re-measures the batch size; here auto = the default
  // limits, documents and padded tokens per forward).
  eval::BatchLimits b;
  const std::string expected = "auto, auto:N or a number of documents per forward from 1 to " +
                               std::to_string(kMaxBatchDocs);
  if (s == "auto") return b;
  if (s.rfind("auto:", 0) == 0) {
    try {
      parse_int_flag("--batch_size", s.substr(5), 1, INT64_MAX, expected);
    } catch (const Error&) {  // name the whole value
      parse_int_flag("--batch_size", s, 1, 0, expected);
    }
    return b;
  }
  const int64_t n = parse_int_flag("--batch_size", s, 1, kMaxBatchDocs, expected);
  b.max_docs = b.max_group_docs = n;
  b.max_tokens = std::max<int64_t>(b.max_tokens, n * 512);
  return b;
}

// Every numeric flag, parsed and range-checked before anything is loaded (--gen_kwargs by its own parser).
void parse_numeric_flags(EvalArgs& a) {
  parse_batch_size(a.batch_size);
  parse_limit(a.limit);
  parse_fewshot_seed(a.seed);
  if (!a.num_fewshot_flag.empty())
    a.num_fewshot = static_cast<int>(parse_int_flag("--num_fewshot", a.num_fewshot_flag, 0, kMaxShots,
                                                    "a number of few-shot examples from 0 to " +
                                                        std::to_string(kMaxShots)));
  if (!a.max_length_flag.empty())
    a.max_length = parse_int_flag("--max_length", a.max_length_flag, 2, kMaxContext,
                                  "a context length in tokens from 2 to " + std::to_string(kMaxContext));
}

std::string format_seconds(double s) {
  if (s < 0) return "?";
  const long long t = static_cast<long long>(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, (t / 60) % 60);
  else std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
  return buf;
}

// --dtype: float32 (the lm-eval parity mode), bfloat16, or auto = the device's rule (backend::inference_auto_dtype:
// bf16 on CUDA and on AMX CPUs, fp32 elsewhere), said in one line unless --quiet.
model::Precision resolve_dtype(const EvalArgs& a, const backend::Backend& be) {
  if (a.dtype != "auto") return model::parse_precision(a.dtype, "--dtype (auto, float32 or bfloat16)");
  const backend::AutoDtype chosen = backend::inference_auto_dtype(backend::parse_device(a.device), be);
  if (!a.quiet) std::fprintf(stderr, "--dtype auto: %s\n", chosen.reason.c_str());
  return chosen.bf16 ? model::Precision::BF16 : model::Precision::F32;
}

// Per leaf task: the flag wins, else the shots of the group that brought the task in, else the task's own default.
std::vector<eval::Task> build_tasks(const EvalArgs& a, const eval::TaskPlan& plan) {
  eval::TaskOptions to;
  to.data_dir = a.data_dir;
  to.limit = parse_limit(a.limit);
  to.fewshot_seed = parse_fewshot_seed(a.seed);
  to.arc_split = a.arc_split;
  const eval::GenKwargs gk = eval::parse_gen_kwargs(a.gen_kwargs);
  to.max_gen_toks = gk.max_gen_toks;
  to.until = gk.until;
  std::vector<eval::Task> tasks;
  for (const auto& leaf : plan.leaves) {
    to.num_fewshot = a.num_fewshot ? a.num_fewshot : leaf.group_shots;
    tasks.push_back(eval::build_task(leaf.name, to));
    const eval::Task& t = tasks.back();
    if (a.quiet) continue;
    if (a.num_fewshot && t.num_fewshot != *a.num_fewshot)
      std::fprintf(stderr, "note: %s: num_fewshot is pinned to %d by the task (lm-eval ignores --num_fewshot there)\n",
                   t.name.c_str(), t.num_fewshot);
    else if (a.num_fewshot && leaf.group_shots && *leaf.group_shots != *a.num_fewshot && t.group.empty())
      std::fprintf(stderr, "note: %s: --num_fewshot %d replaces the group's %d shots\n", t.name.c_str(),
                   *a.num_fewshot, *leaf.group_shots);
    if (t.num_fewshot > 0 && t.fewshot_file == t.eval_file && t.output != eval::OutputType::LoglikelihoodMc2)
      std::fprintf(stderr, "note: %s: no train split in %s; few-shot examples come from the evaluated split itself "
                           "(the evaluated document is excluded, as lm-eval does when fewshot_split == test_split)\n",
                   t.name.c_str(), a.data_dir.c_str());
  }
  return tasks;
}

// The generation config's eos ids (transformers falls back to config.json's when generation_config.json has none).
std::vector<int32_t> eos_ids(const std::string& model_dir, const io::ModelConfig& cfg) {
  std::vector<int32_t> ids = gen::load_generation_config(model_dir).eos_token_ids;
  if (ids.empty())
    for (int64_t e : cfg.eos_token_ids) ids.push_back(static_cast<int32_t>(e));
  return ids;
}

void print_compute(const eval::EvalResults& r, backend::Backend& be, model::Precision precision) {
  if (r.scoring_seconds <= 0 || r.stats.model_flops <= 0) return;
  const auto dt = precision == model::Precision::BF16 && be.fast_bf16_gemm() ? backend::DType::BF16
                                                                            : backend::DType::F32;
  const backend::GemmPeak peak = backend::measure_gemm_peak(be, dt);
  const double rate = r.stats.model_flops / r.scoring_seconds / 1e9;
  std::fprintf(stdout, "model compute: %.1f GFLOP in %.1f s of scoring and generation = %.1f GFLOP/s, %.0f%% of "
                       "this machine's %s gemm peak (%.1f GFLOP/s, %lld^3 gemm measured in %.2f s)\n",
               r.stats.model_flops / 1e9, r.scoring_seconds, rate, peak.gflops > 0 ? 100.0 * rate / peak.gflops : 0.0,
               peak.dtype.c_str(), peak.gflops, static_cast<long long>(peak.size), peak.seconds);
}

eval::EvalResults run_one(const EvalArgs& a, const std::string& model_dir, backend::Backend& be,
                          model::Precision dtype, const std::string& adapter = "") {
  SFT_CHECK(fs::is_directory(model_dir) || io::is_gguf_file(model_dir), "--model: ", model_dir,
            " is not a model folder or .gguf file");
  const eval::TaskPlan plan = eval::plan_tasks(a.tasks);
  std::vector<eval::Task> tasks = build_tasks(a, plan);
  auto tok = tok::Tokenizer::load(model_dir);
  model::LoraOptions storage;
  const model::LoraOptions* quant = base_storage(a.quant, !a.adapter.empty(), dtype == model::Precision::BF16, storage);
  if (adapter.empty()) quant = nullptr;  // the --compare side is the unquantised base
  const model::Precision precision = quant ? quant_precision(a.quant, dtype) : dtype;
  auto model = model::load_model(model_dir, adapter, be, precision, a.allow_nonfinite_weights, quant);
  int64_t max_len = a.max_length > 0 ? a.max_length : eval::lm_eval_max_length(model->config());
  eval::Scorer scorer(*model, tok, max_len);
  if (!a.quiet) std::fprintf(stderr, "evaluating %s (%zu tasks, max_length %lld)\n", model_dir.c_str(), tasks.size(),
                             static_cast<long long>(max_len));
  auto last = std::chrono::steady_clock::now();
  auto progress = [&](const eval::ProgressInfo& p) {
    auto now = std::chrono::steady_clock::now();
    if (a.quiet || (p.task_done != p.task_docs && now - last < std::chrono::seconds(2))) return;
    last = now;
    std::fprintf(stderr, "  [%zu/%zu] %s %lld/%lld | all %lld/%lld docs%s, %.2f docs/s, elapsed %s, ETA %s\n",
                 p.task_index + 1, p.n_tasks, p.task.c_str(), static_cast<long long>(p.task_done),
                 static_cast<long long>(p.task_docs), static_cast<long long>(p.done), static_cast<long long>(p.total),
                 p.resumed ? (" (" + std::to_string(p.resumed) + " from cache)").c_str() : "", p.docs_per_s,
                 format_seconds(p.elapsed_s).c_str(), format_seconds(p.eta_s).c_str());
  };
  eval::EvalOptions eo;
  eo.batch = parse_batch_size(a.batch_size);
  if (a.batch_size != "auto" && a.batch_size.rfind("auto:", 0) != 0) eo.generation.max_seqs = eo.batch.max_docs;
  eo.eos_ids = eos_ids(model_dir, model->config());
  eo.groups = plan.groups;
  if (!a.use_cache.empty()) {
    eo.cache_dir = a.use_cache;
    eo.cache_identity = eval::model_identity(model_dir) + ";dtype=" +
                        (precision == model::Precision::BF16 ? "bfloat16" : "float32") + ";device=" + a.device +
                        ";max_length=" + std::to_string(max_len) + (adapter.empty() ? "" : ";adapter=" + adapter);
  }
  return eval::evaluate(scorer, std::move(tasks), progress, eo);
}

nlohmann::json run_config(const EvalArgs& a, const std::string& model_dir) {
  return {{"model", model_dir},         {"tasks", a.tasks},
          {"num_fewshot", a.num_fewshot ? nlohmann::json(*a.num_fewshot) : nlohmann::json()},
          {"limit", parse_limit(a.limit)},  {"fewshot_seed", parse_fewshot_seed(a.seed)},
          {"gen_kwargs", a.gen_kwargs},
          {"data_dir", a.data_dir},     {"dtype", a.dtype},       {"compute_dtype", a.compute_dtype}, {"device", a.device},
          {"arc_split", a.arc_split},   {"batch_size", a.batch_size}, {"use_cache", a.use_cache}};
}

void write_outputs(const EvalArgs& a, const fs::path& dir, const std::string& model_dir, const eval::EvalResults& r) {
  fs::create_directories(dir);
  write_file_atomic(dir / "results.json", eval::results_json(r, run_config(a, model_dir)).dump(2) + "\n");
  if (a.log_samples)
    for (const auto& t : r.tasks) write_file_atomic(dir / ("samples_" + t.task.name + ".jsonl"), eval::samples_jsonl(t));
}

void run_eval(const EvalArgs& a_in) {
  EvalArgs a = a_in;
  if (a.data_dir.empty()) a.data_dir = std::getenv("SFT_DATA_DIR") ? std::getenv("SFT_DATA_DIR") : "data";
  // Bad flag values and task names fail before any model is loaded.
  parse_numeric_flags(a);
  eval::parse_gen_kwargs(a.gen_kwargs);
  eval::plan_tasks(a.tasks);
  auto be = backend::make_backend(a.device);
  const model::Precision dtype = resolve_dtype(a, *be);
  a.compute_dtype = dtype == model::Precision::BF16 ? "bfloat16" : "float32";
  if (a.compare.empty()) {
    auto r = run_one(a, a.model, *be, dtype, a.adapter);
    std::cout << eval::results_table(r);
    print_compute(r, *be, dtype);
    std::fprintf(stdout, "\n%s: %.1f s, %lld docs\n", a.model.c_str(), r.seconds, [&] {
      long long n = 0;
      for (const auto& t : r.tasks) n += static_cast<long long>(t.docs.size());
      return n;
    }());
    if (!a.output_path.empty()) write_outputs(a, a.output_path, a.model, r);
    return;
  }
  auto base = run_one(a, a.compare, *be, dtype);
  auto tuned = run_one(a, a.model, *be, dtype, a.adapter);
  auto rows = eval::compare_rows(base, tuned);
  std::string base_table = eval::results_table(base), tuned_table = eval::results_table(tuned);
  std::cout << "## Base: " << a.compare << "\n\n" << base_table << "\n## Tuned: " << a.model << "\n\n" << tuned_table
            << "\n## Comparison\n\n" << eval::compare_table(rows);
  print_compute(tuned, *be, dtype);
  fs::path out = a.output_path.empty() ? fs::path("eval_compare") : fs::path(a.output_path);
  write_outputs(a, out / "base", a.compare, base);
  write_outputs(a, out / "tuned", a.model, tuned);
  write_file_atomic(out / "comparison.svg", eval::compare_svg(rows, a.compare, a.model));
  // report.md + report.html: results tables, deltas with 95% intervals, the tuned model's loss curve.
  eval::CompareReportInput rep;
  rep.base_name = a.compare;
  rep.tuned_name = a.model;
  rep.base_table = base_table;
  rep.tuned_table = tuned_table;
  rep.entries = eval::compare_entries(base, tuned);
  rep.loss = eval::read_trainer_log(a.model);
  write_file_atomic(out / "delta.svg", eval::delta_svg(rep.entries));
  if (!rep.loss.empty()) write_file_atomic(out / "loss_curve.svg", eval::loss_curve_svg(rep.loss));
  write_file_atomic(out / "report.md", eval::compare_report_markdown(rep));
  write_file_atomic(out / "report.html", eval::compare_report_html(rep));
  std::cout << "\nreport: " << (out / "report.md").string() << " and " << (out / "report.html").string() << "\n";
}

}  // namespace

void register_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* sub = app.add_subcommand(
      "eval", "Evaluate a model on lm-evaluation-harness tasks (0.4 semantics): " + eval::task_names_help());
  sub->add_option("--model,--model_name_or_path", a->model, "HF model folder")->required();
  sub->add_option("--tasks", a->tasks, "Comma list of tasks and groups: " + eval::task_names_help())
      ->capture_default_str();
  sub->add_option(
      "--num_fewshot", a->num_fewshot_flag,
      "Few-shot examples per question (default: each task's own, 0 for most, 5 for gsm8k; a group such as "
      "leaderboard_v1 sets its tasks' shots; tasks whose YAML pins 0, as truthfulqa, keep 0)");
  sub->add_option("--limit", a->limit, "Evaluate only the first N documents of each task (N >= 1)");
  sub->add_option("--gen_kwargs", a->gen_kwargs,
                  "generate_until settings as lm-eval spells them: max_gen_toks=64, until=[\"Question:\"], "
                  "do_sample=false (greedy only); key=value pairs or a JSON object")
      ->expected(1, 100);
  sub->add_option("--batch_size", a->batch_size,
                  "Documents per forward: N or auto (8 single-token-choice documents, 2 multi-token-choice documents, "
                  "8 generated sequences). Results do not depend on it")
      ->capture_default_str();
  sub->add_option("--use_cache", a->use_cache,
                  "Folder for a resumable per-task results cache: an interrupted run (or a larger --limit) only "
                  "scores the documents not yet in it");
  sub->add_option("--seed", a->seed, "Few-shot sampling seed (or lm-eval's 'a,b,c,fewshot' list)")->capture_default_str();
  sub->add_option("--data_dir", a->data_dir,
                  "Folder with mmlu/{dev,test}/*.csv, arc/ARC-*-{Test,Dev,Train}.jsonl, hellaswag/hellaswag_{val,train}"
                  ".jsonl and <task>/<split>.jsonl (the HF datasets' rows) for the others; where such a file is absent, "
                  "the HF dataset's Parquet split (<split>.parquet or <split>-00000-of-0000N.parquet) (default "
                  "$SFT_DATA_DIR or ./data; layout in docs/arch/eval.md)");
  sub->add_option("--arc_split", a->arc_split, "ARC split to evaluate: test (lm-eval) or dev")->capture_default_str();
  sub->add_option("--output_path", a->output_path, "Folder for results.json (and samples_<task>.jsonl, report.md)");
  sub->add_flag("--log_samples", a->log_samples, "Also write per-document log-likelihoods (samples_<task>.jsonl)");
  sub->add_option("--adapter", a->adapter, "peft LoRA adapter folder applied to --model (no merge needed)");
  add_quant_flags(sub, a->quant);
  sub->add_option("--compare", a->compare, "Base model folder: evaluate both and write a comparison report");
  sub->add_option("--dtype", a->dtype,
                  "Compute precision: auto (bfloat16 on CUDA and on CPUs whose bf16 matmul runs on AMX, else float32; "
                  "the choice and why are printed), float32 (lm-eval fp32 parity) or bfloat16")
      ->capture_default_str();
  sub->add_option("--device", a->device, "cpu or cuda[:N]")->capture_default_str();
  sub->add_option("--max_length", a->max_length_flag,
                  "Override the context length in tokens, 2 to 16777216 (default: max_position_embeddings)");
  sub->add_flag("--quiet", a->quiet, "No progress on stderr");
  sub->add_flag(model::kAllowNonfiniteFlag, a->allow_nonfinite_weights, "Load weights holding NaN/inf anyway (for debugging; by default such a model, adapter or merge is refused, naming the tensor)");
  sub->callback([a] { run_eval(*a); });
}

}  // namespace sft::cli
