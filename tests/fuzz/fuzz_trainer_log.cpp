// trainer_log.jsonl, as `sft eval --compare` reads it from the tuned model's folder (report/loss_curve.h), and the
// loss curve drawn from whatever it read.
#include "fuzz_util.h"
#include "report/loss_curve.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::filesystem::path file = sft::fuzz::scratch_dir() / "trainer_log.jsonl";
  sft::fuzz::write_bytes(file, std::string_view(reinterpret_cast<const char*>(data), size));
  sft::fuzz::expect_clean([&] {
    const auto points = sft::report::read_trainer_log(file);
    (void)sft::report::loss_curve_svg(points, "fuzz");
  });
  return 0;
}
