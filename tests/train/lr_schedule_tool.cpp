// Prints train::lr_multiplier for steps 0..total (one per line) so test_optimizer_parity.py can compare it with
// transformers.get_scheduler. Usage: lr_schedule_tool TYPE WARMUP_STEPS WARMUP_RATIO TOTAL
#include <cstdio>
#include <cstdlib>
#include <string>

#include "train/lr_schedule.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: lr_schedule_tool TYPE WARMUP_STEPS WARMUP_RATIO TOTAL\n");
    return 2;
  }
  const auto type = sft::train::parse_scheduler_type(argv[1]);
  const int64_t total = std::atoll(argv[4]);
  const int64_t warmup = sft::train::resolve_warmup_steps(std::atoll(argv[2]), std::atof(argv[3]), total);
  std::printf("warmup %lld\n", static_cast<long long>(warmup));
  for (int64_t s = 0; s <= total; ++s) std::printf("%.17g\n", sft::train::lr_multiplier(type, s, warmup, total));
  return 0;
}
