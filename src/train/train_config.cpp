#include "train/train_config.h"

#include <nlohmann/json.hpp>

#include "backend/device.h"
#include "train/lr_schedule.h"
#include "util/error.h"

namespace sft::train {

void TrainConfig::validate() const {
  SFT_CHECK(!model_name_or_path.empty(), "--model_name_or_path is required");
  SFT_CHECK(!dataset_path.empty(), "--dataset_path is required");
  SFT_CHECK(!output_dir.empty(), "--output_dir is required");
  SFT_CHECK(per_device_train_batch_size >= 1, "--per_device_train_batch_size must be >= 1");
  SFT_CHECK(per_device_eval_batch_size >= 1, "--per_device_eval_batch_size must be >= 1");
  SFT_CHECK(gradient_accumulation_steps >= 1, "--gradient_accumulation_steps must be >= 1");
  SFT_CHECK(max_seq_length >= 2, "--max_seq_length must be >= 2");
  SFT_CHECK(learning_rate >= 0, "--learning_rate must be >= 0");
  SFT_CHECK(adam_beta1 >= 0 && adam_beta1 < 1, "--adam_beta1 must be in [0, 1)");
  SFT_CHECK(adam_beta2 >= 0 && adam_beta2 < 1, "--adam_beta2 must be in [0, 1)");
  SFT_CHECK(adam_epsilon > 0, "--adam_epsilon must be > 0");
  SFT_CHECK(weight_decay >= 0, "--weight_decay must be >= 0");
  SFT_CHECK(warmup_steps >= 0, "--warmup_steps must be >= 0");
  SFT_CHECK(warmup_ratio >= 0 && warmup_ratio <= 1, "--warmup_ratio must be in [0, 1]");
  SFT_CHECK(max_steps > 0 || num_train_epochs > 0, "--num_train_epochs must be > 0 (or give --max_steps)");
  SFT_CHECK(logging_steps >= 1, "--logging_steps must be >= 1");
  SFT_CHECK(save_steps >= 1, "--save_steps must be >= 1");
  SFT_CHECK(validation_split >= 0, "--validation_split must be >= 0");
  parse_scheduler_type(lr_scheduler_type);
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
  SFT_CHECK(threads >= 0, "--threads must be >= 0");
  SFT_CHECK(zero_stage == 0 || zero_stage == 1, "--zero_stage: expected 0 or 1, got ", zero_stage);
  SFT_CHECK(ddp_timeout > 0, "--ddp_timeout must be > 0 seconds");
  SFT_CHECK(ddp_bucket_cap_mb > 0, "--ddp_bucket_cap_mb must be > 0");
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
  j["logging_steps"] = logging_steps;
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
  return j.dump(2) + "\n";
}

}  // namespace sft::train
