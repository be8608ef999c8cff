// Dataset readers: the same bytes through the JSON array, JSONL and CSV parsers, strict and with skip_bad_rows, with
// the row format detected by fields or forced (TRL's formats). Properties: skip mode never throws for JSONL/CSV row
// errors; the counts add up.
#include "data/dataset.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using sft::data::DatasetFormat;
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (DatasetFormat format : {DatasetFormat::Auto, DatasetFormat::PromptCompletion, DatasetFormat::LanguageModeling}) {
    for (bool skip : {false, true}) {
      for (bool keep_empty : {false, true}) {
        sft::data::ReadOptions o;
        o.skip_bad_rows = skip;
        o.keep_empty_responses = keep_empty;
        o.dataset_format = format;
        for (int fmt = 0; fmt < 3; ++fmt) {
          sft::fuzz::expect_clean([&] {
            sft::data::ReadResult r = fmt == 0   ? sft::data::parse_json_array(text, "f.json", o)
                                      : fmt == 1 ? sft::data::parse_jsonl(text, "f.jsonl", o)
                                                 : sft::data::parse_csv(text, "f.csv", o);
            const int64_t accounted =
                static_cast<int64_t>(r.examples.size()) + r.rows_skipped + r.rows_empty_response;
            if (accounted != r.rows_seen) std::abort();  // every row is either kept, skipped or counted as empty
            if (!skip && r.rows_skipped != 0) std::abort();
          });
        }
      }
    }
  }
  return 0;
}
