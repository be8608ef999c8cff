#include "train/train_config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/device.h"
#include "train/lr_schedule.h"
#include "util/error.h"

namespace sft::train {

namespace {

// Finite and inside [lo, hi]; the message names the flag and the accepted range.
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
void check_range(const char* flag, double v, double lo, double hi, bool lo_open = false, bool hi_open = false) {
  const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  SFT_CHECK(ok, "--", flag, ": expected a finite number in ", lo_open ? "(" : "[", num(lo), ", ", num(hi),
            hi_open ? ")" : "]", ", got ", num(v));
}
void check_range(const char* flag, int64_t v, int64_t lo, int64_t hi) {
  SFT_CHECK(v >= lo && v <= hi, "--", flag, ": expected an integer in [", lo, ", ", hi, "], got ", v);
}

constexpr int64_t kMaxSteps = int64_t{1} << 40;  // far beyond any run; keeps step arithmetic far from overflow

}  // namespace

int64_t TrainConfig::total_steps(int64_t updates_per_epoch) const {
  if (max_steps > 0) return max_steps;
  const double steps = std::ceil(num_train_epochs * static_cast<double>(updates_per_epoch));
  SFT_CHECK(std::isfinite(steps) && steps >= 1 && steps <= static_cast<double>(kMaxSteps), "--num_train_epochs ",
            num(num_train_epochs), " gives ", num(steps), " optimizer steps (", updates_per_epoch,
            " per epoch); expected between 1 and 2^40");
  return static_cast<int64_t>(steps);
}

void TrainConfig::validate() const {
  SFT_CHECK(!model_name_or_path.empty(), "--model_name_or_path is required");
  SFT_CHECK(!dataset_path.empty(), "--dataset_path is required");
  SFT_CHECK(!output_dir.empty(), "--output_dir is required");
  // Every number finite and inside what the flag can mean.
  const int64_t big = int64_t{1} << 30;
  // Batch x length bounds keep every activation size (tokens x width) far inside int64.
  check_range("per_device_train_batch_size", per_device_train_batch_size, 1, int64_t{1} << 16);
  check_range("per_device_eval_batch_size", per_device_eval_batch_size, 1, int64_t{1} << 16);
  check_range("gradient_accumulation_steps", gradient_accumulation_steps, 1, big);
  check_range("max_seq_length", max_seq_length, 2, int64_t{1} << 20);
  check_range("learning_rate", learning_rate, 0, 1e6);
  check_range("adam_beta1", adam_beta1, 0, 1, false, true);
  check_range("adam_beta2", adam_beta2, 0, 1, false, true);
  check_range("adam_epsilon", adam_epsilon, 0, 1, true, false);
  check_range("weight_decay", weight_decay, 0, 1e6);
  check_range("warmup_steps", warmup_steps, 0, kMaxSteps);
  check_range("warmup_ratio", warmup_ratio, 0, 1);
  check_range("max_grad_norm", max_grad_norm, -1e30, 1e30);
  check_range("num_train_epochs", num_train_epochs, 0, 1e9);
  check_range("max_steps", max_steps, -1, kMaxSteps);
  check_range("logging_steps", logging_steps, 1, kMaxSteps);
  check_range("save_steps", save_steps, 1, kMaxSteps);
  SFT_CHECK(eval_steps == -1 || (eval_steps >= 1 && eval_steps <= kMaxSteps),
            "--eval_steps: expected an integer >= 1 (or -1 = --logging_steps), got ", eval_steps);
  check_range("save_total_limit", save_total_limit, -1, big);
  check_range("threads", threads, 0, 1024);
  check_range("validation_split", validation_split, 0, 1e12);
  SFT_CHECK(validation_split < 1 || validation_split == std::floor(validation_split),
            "--validation_split: expected a fraction in (0, 1) or a whole number of rows, got ", num(validation_split));

  SFT_CHECK(max_steps > 0 || num_train_epochs > 0, "--num_train_epochs must be > 0 (or give --max_steps)");
  parse_scheduler_type(lr_scheduler_type);
  SFT_CHECK(logging_strategy == "steps" || logging_strategy == "epoch" || logging_strategy == "no",
            "--logging_strategy: expected steps, epoch or no, got '", logging_strategy, "'");
  SFT_CHECK(save_strategy == "steps" || save_strategy == "epoch" || save_strategy == "no",
            "--save_strategy: expected steps, epoch or no, got '", save_strategy, "'");
  SFT_CHECK(eval_strategy == "steps" || eval_strategy == "epoch" || eval_strategy == "no",
            "--eval_strategy: expected steps, epoch or no, got '", eval_strategy, "'");
  SFT_CHECK(metric_for_best_model == "eval_loss" || metric_for_best_model == "loss",
            "--metric_for_best_model: only eval_loss is computed by sft train, got '", metric_for_best_model, "'");
  SFT_CHECK(torch_dtype == "auto" || torch_dtype == "float32" || torch_dtype == "bfloat16",
            "--torch_dtype: expected auto, float32 or bfloat16, got '", torch_dtype,
            "' (float16 is not supported: use bfloat16)");
  backend::parse_device(device, "--device");  // throws naming the flag (cuda:abc included)
  check_range("zero_stage", zero_stage, 0, 1);
  check_range("ddp_timeout", ddp_timeout, 0, 1e9, true, false);
  check_range("ddp_bucket_cap_mb", ddp_bucket_cap_mb, 0, 1e6, true, false);
  check_range("lora_r", lora_r, 1, 65536);
  SFT_CHECK(std::isfinite(lora_alpha), "--lora_alpha must be a finite number");
  SFT_CHECK(lora_dropout >= 0 && lora_dropout < 1, "--lora_dropout must be in [0, 1), got ", lora_dropout);
  SFT_CHECK(use_peft || adapter_name_or_path.empty(), "--adapter_name_or_path needs --use_peft");
}

namespace {
std::vector<std::string> split_list(const std::string& s, const char* flag) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b <= s.size()) {
    const size_t e = std::min(s.find(',', b), s.size());
    std::string item = s.substr(b, e - b);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    SFT_CHECK(!item.empty(), flag, ": empty module name in '", s, "'");
    out.push_back(item);
    b = e + 1;
  }
  return out;
}
}  // namespace

io::LoraAdapterConfig TrainConfig::lora_config() const {
  io::LoraAdapterConfig c;
  c.base_model_name_or_path = model_name_or_path;
  c.r = lora_r;
  c.lora_alpha = lora_alpha;
  c.lora_dropout = lora_dropout;
  c.use_rslora = use_rslora;
  if (lora_target_modules.empty()) {
    c.target_modules = {"q_proj", "v_proj"};  // peft's default for qwen2 / llama / qwen3
  } else if (lora_target_modules == "all-linear" || lora_target_modules == "ALL-LINEAR") {
    c.target_modules = {"all-linear"};
    c.target_is_string = true;
  } else {
    c.target_modules = split_list(lora_target_modules, "--lora_target_modules");
  }
  if (!lora_modules_to_save.empty()) c.modules_to_save = split_list(lora_modules_to_save, "--lora_modules_to_save");
  return c;
}

std::string TrainConfig::to_json() const {
  nlohmann::ordered_json j;
  j["model_name_or_path"] = model_name_or_path;
  j["dataset_path"] = dataset_path;
  j["output_dir"] = output_dir;
  j["eval_dataset_path"] = eval_dataset_path;
  j["resume_from_checkpoint"] = resume_from_checkpoint;
  j["overwrite_output_dir"] = overwrite_output_dir;
  j["template"] = template_name;
  j["train_on_inputs"] = train_on_inputs;
  j["max_seq_length"] = max_seq_length;
  j["truncation"] = truncation;
  j["packing"] = packing;
  j["group_by_length"] = group_by_length;
  j["validation_split"] = validation_split;
  j["skip_bad_rows"] = skip_bad_rows;
  j["keep_empty_responses"] = keep_empty_responses;
  j["per_device_train_batch_size"] = per_device_train_batch_size;
  j["per_device_eval_batch_size"] = per_device_eval_batch_size;
  j["data_loader_drop_last"] = data_loader_drop_last;
  j["learning_rate"] = learning_rate;
  j["adam_beta1"] = adam_beta1;
  j["adam_beta2"] = adam_beta2;
  j["adam_epsilon"] = adam_epsilon;
  j["weight_decay"] = weight_decay;
  j["lr_scheduler_type"] = lr_scheduler_type;
  j["warmup_steps"] = warmup_steps;
  j["warmup_ratio"] = warmup_ratio;
  j["max_grad_norm"] = max_grad_norm;
  j["gradient_accumulation_steps"] = gradient_accumulation_steps;
  j["num_train_epochs"] = num_train_epochs;
  j["max_steps"] = max_steps;
  j["seed"] = seed;
  j["bf16"] = bf16;
  j["torch_dtype"] = torch_dtype;
  j["logging_strategy"] = logging_strategy;
  j["logging_steps"] = logging_steps;
  j["disable_tqdm"] = disable_tqdm;
  j["logging_first_step"] = logging_first_step;
  j["save_strategy"] = save_strategy;
  j["save_steps"] = save_steps;
  j["save_total_limit"] = save_total_limit;
  j["eval_strategy"] = eval_strategy;
  j["eval_steps"] = eval_steps;
  j["load_best_model_at_end"] = load_best_model_at_end;
  j["metric_for_best_model"] = metric_for_best_model;
  j["greater_is_better"] = greater_is_better < 0 ? nlohmann::ordered_json(nullptr)
                                                 : nlohmann::ordered_json(greater_is_better == 1);
  j["device"] = device;
  j["threads"] = threads;
  j["debug_dump_batches"] = debug_dump_batches;
  j["gradient_checkpointing"] = gradient_checkpointing;
  j["skip_nonfinite_steps"] = skip_nonfinite_steps;
  j["save_gguf"] = save_gguf;
  j["use_peft"] = use_peft;
  j["lora_r"] = lora_r;
  j["lora_alpha"] = lora_alpha;
  j["lora_dropout"] = lora_dropout;
  j["lora_target_modules"] = lora_target_modules;
  j["lora_modules_to_save"] = lora_modules_to_save;
  j["use_rslora"] = use_rslora;
  j["adapter_name_or_path"] = adapter_name_or_path;
  j["zero_stage"] = zero_stage;
  j["ddp_timeout"] = ddp_timeout;
  j["ddp_bucket_cap_mb"] = ddp_bucket_cap_mb;
  return j.dump(2) + "\n";
}

}  // namespace sft::train
