// Parquet and Arrow IPC datasets (data/parquet_reader.cpp, through Apache Arrow C++): the same bytes as a Parquet
// file and as an Arrow IPC stream/file, strict and with skip_bad_rows, for automatic and forced row formats.
// Built only when the build has Arrow (SFT_HAVE_ARROW). Properties: only sft::Error escapes (Arrow's exceptions and
// failed statuses become one-line errors); the row counts add up. Also every column as JSON (parquet_rows.h, the eval
// task files): only sft::Error escapes, every row is an object, nesting stays within the bound.
#include "data/dataset.h"
#include "data/parquet_rows.h"
#include "fuzz_util.h"

#include <algorithm>
#include <functional>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  for (bool skip : {false, true}) {
    for (auto format : {sft::data::DatasetFormat::Auto, sft::data::DatasetFormat::PromptCompletion}) {
      sft::data::ReadOptions o;
      o.skip_bad_rows = skip;
      o.dataset_format = format;
      for (int reader = 0; reader < 2; ++reader) {
        sft::fuzz::expect_clean([&] {
          const sft::data::ReadResult r = reader == 0 ? sft::data::parse_parquet(bytes, "f.parquet", o)
                                                      : sft::data::parse_arrow_ipc(bytes, "f.arrow", o);
          const int64_t accounted =
              static_cast<int64_t>(r.examples.size()) + r.rows_skipped + r.rows_empty_response;
          if (accounted != r.rows_seen) std::abort();
          if (!skip && r.rows_skipped != 0) std::abort();
        });
      }
    }
  }
  for (int max_depth : {32, 2}) {
    sft::fuzz::expect_clean([&] {
      const sft::data::JsonRows r = sft::data::parquet_rows_as_json(bytes, "f.parquet", max_depth);
      for (const auto& row : r.rows) {
        if (!row.is_object()) std::abort();
        std::function<int(const nlohmann::json&)> depth = [&](const nlohmann::json& v) {
          int d = 0;
          if (v.is_structured())
            for (const auto& x : v) d = std::max(d, 1 + depth(x));
          return d;
        };
        if (depth(row) > max_depth) std::abort();
      }
    });
  }
  return 0;
}
