// lm-eval task readers: MMLU CSV (and the Python-csv tokenizer), ARC JSONL, HellaSwag JSONL and every HF-JSONL row of
// the task table (fields, process_docs, templates read back with literal_eval), the same rows from a Parquet split,
// plus the parsers of rendered values and flags (ast.literal_eval, --gen_kwargs), from the same bytes.
#include "eval/gen_kwargs.h"
#include "eval/py_literal.h"
#include "eval/tasks.h"
#include "util/csv.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto dir = sft::fuzz::scratch_dir();
  for (const auto ends : {sft::csv::LineEnds::PythonBinaryLines, sft::csv::LineEnds::PythonTextMode,
                          sft::csv::LineEnds::Rfc4180})
    for (const bool strict : {false, true})
      sft::fuzz::expect_clean([&] { (void)sft::csv::read_records(bytes, "x.csv", {ends, strict, strict}); });
  sft::fuzz::write_bytes(dir / "task.csv", bytes);
  sft::fuzz::expect_clean([&] { (void)sft::eval::load_mmlu_csv(dir / "task.csv"); });
  sft::fuzz::write_bytes(dir / "task.jsonl", bytes);
  auto check_docs = [](const std::vector<sft::eval::Doc>& docs) {
    for (const auto& d : docs)
      if (d.gold < 0 || d.gold >= static_cast<int>(d.choices.size())) std::abort();
  };
  sft::fuzz::expect_clean([&] { check_docs(sft::eval::load_arc_jsonl(dir / "task.jsonl")); });
  sft::fuzz::expect_clean([&] { check_docs(sft::eval::load_hellaswag_jsonl(dir / "task.jsonl")); });
  for (const char* task : {"truthfulqa_mc1", "truthfulqa_mc2", "winogrande", "piqa", "boolq", "openbookqa"})
    sft::fuzz::expect_clean([&] { check_docs(sft::eval::load_task_docs(task, dir / "task.jsonl")); });
  sft::fuzz::expect_clean([&] { (void)sft::eval::load_task_docs("gsm8k", dir / "task.jsonl"); });
  // The same bytes as a Hugging Face Parquet split (data/parquet_rows.h), for a row of each kind of reader.
  sft::fuzz::write_bytes(dir / "task.parquet", bytes);
  for (const char* task : {"mmlu_abstract_algebra", "arc_easy", "hellaswag", "truthfulqa_mc1", "truthfulqa_mc2",
                           "winogrande", "piqa"})
    sft::fuzz::expect_clean([&] { check_docs(sft::eval::load_task_docs(task, dir / "task.parquet")); });
  sft::fuzz::expect_clean([&] { (void)sft::eval::py_literal_eval(bytes, "fuzz"); });
  sft::fuzz::expect_clean([&] { (void)sft::eval::parse_gen_kwargs({std::string(bytes)}); });
  return 0;
}
