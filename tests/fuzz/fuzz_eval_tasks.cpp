// lm-eval task readers: MMLU CSV (and the Python-csv tokenizer), ARC JSONL, HellaSwag JSONL, from the same bytes.
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
  sft::fuzz::expect_clean([&] {
    for (const auto& d : sft::eval::load_arc_jsonl(dir / "task.jsonl"))
      if (d.gold < 0 || d.gold >= static_cast<int>(d.choices.size())) std::abort();
  });
  sft::fuzz::expect_clean([&] {
    for (const auto& d : sft::eval::load_hellaswag_jsonl(dir / "task.jsonl"))
      if (d.gold < 0 || d.gold >= static_cast<int>(d.choices.size())) std::abort();
  });
  return 0;
}
