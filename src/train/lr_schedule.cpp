#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "util/error.h"

namespace sft::train {

SchedulerType parse_scheduler_type(const std::string& name) {
  if (name == "linear") return SchedulerType::Linear;
  if (name == "cosine") return SchedulerType::Cosine;
  if (name == "constant") return SchedulerType::Constant;
  if (name == "constant_with_warmup") return SchedulerType::ConstantWithWarmup;
  throw Error("--lr_scheduler_type: unknown '" + name + "' (expected linear, cosine, constant, constant_with_warmup)");
}

const char* scheduler_type_name(SchedulerType t) {
  switch (t) {
    case SchedulerType::Linear: return "linear";
    case SchedulerType::Cosine: return "cosine";
    case SchedulerType::Constant: return "constant";
    case SchedulerType::ConstantWithWarmup: return "constant_with_warmup";
  }
  return "?";
}

// Same expressions (and the same max(1, .) guards) as _get_linear_schedule_with_warmup_lr_lambda & co.
double lr_multiplier(SchedulerType t, int64_t step, int64_t warmup, int64_t total) {
  const double s = static_cast<double>(step);
  if (t == SchedulerType::Constant) return 1.0;
  if (step < warmup) return s / static_cast<double>(std::max<int64_t>(1, warmup));
  switch (t) {
    case SchedulerType::Linear:
      return std::max(0.0, static_cast<double>(total - step) / static_cast<double>(std::max<int64_t>(1, total - warmup)));
    case SchedulerType::Cosine: {
      const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
      const double num_cycles = 0.5;  // HF default: half a cosine, from 1 down to 0
      return std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * num_cycles * 2.0 * progress)));
    }
    case SchedulerType::ConstantWithWarmup: return 1.0;
    case SchedulerType::Constant: return 1.0;
  }
  return 1.0;
}

int64_t resolve_warmup_steps(int64_t warmup_steps, double warmup_ratio, int64_t total) {
  if (warmup_steps > 0) return warmup_steps;
  return static_cast<int64_t>(std::ceil(static_cast<double>(total) * warmup_ratio));
}

}  // namespace sft::train
