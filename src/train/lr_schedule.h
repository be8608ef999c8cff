// Learning-rate schedules, exactly transformers.get_scheduler's LambdaLR multipliers (optimization.py).
#pragma once
#include <cstdint>
#include <string>

namespace sft::train {

enum class SchedulerType { Linear, Cosine, Constant, ConstantWithWarmup };

SchedulerType parse_scheduler_type(const std::string& name);  // throws sft::Error listing the accepted names
const char* scheduler_type_name(SchedulerType t);

// Multiplier of the base lr for the optimizer step that has `step` steps before it (0-based), i.e. the value of HF's
// LambdaLR at that point; total = number of training steps, warmup = number of warmup steps.
double lr_multiplier(SchedulerType t, int64_t step, int64_t warmup, int64_t total);

// HF TrainingArguments.get_warmup_steps: warmup_steps when > 0, else ceil(total * warmup_ratio).
int64_t resolve_warmup_steps(int64_t warmup_steps, double warmup_ratio, int64_t total);

}  // namespace sft::train
