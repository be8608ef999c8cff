// Every setting of `sft train`, as plain values. Defaults follow transformers' TrainingArguments where the flag exists
// there; each field's initializer here is its one default. The settings table (train/train_settings.h: flag name,
// type, help, range or values, aliases) says how each field is set from a flag or a --config key, validated and
// written to training_args.json; cli/ parses with it, train/ uses the values.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "io/peft_adapter.h"

namespace sft::train {

struct TrainConfig {
  // ---- paths ----
  std::string model_name_or_path, dataset_path, output_dir, eval_dataset_path;
  std::string resume_from_checkpoint;  // "" = fresh start, "last" = newest checkpoint-N in output_dir, or a folder
  bool overwrite_output_dir = false;

  // ---- data ----
  std::string template_name = "alpaca";
  bool train_on_inputs = false;
  int64_t max_seq_length = 1024;  // covers ~99% of alpaca-cleaned rows with Qwen/Llama tokenizers; report shows cuts
  std::string truncation = "right";
  bool packing = false, group_by_length = false, skip_bad_rows = false, data_loader_drop_last = false;
  std::string packing_strategy = "bfd";  // with packing: bfd | wrapped (TRL's) | first_fit (data/packing.h)
  bool padding_free = true;  // each micro-batch as one row of its samples, no padding (where the backend supports it)
  bool keep_empty_responses = false;  // rows with an empty output: excluded and counted (default) or kept
  double validation_split = 0.0;
  int64_t per_device_train_batch_size = 8, per_device_eval_batch_size = 8;
  // TRL SFTConfig's dataset switches (docs/arch/data.md): which row format the files hold (auto = by fields), the
  // field of language-modelling rows, and the two masking rules. Tri-state bools: -1 unset (TRL's None).
  std::string dataset_format = "auto";  // auto | alpaca | language_modeling | prompt_completion | conversational
  std::string dataset_text_field = "text";
  int completion_only_loss = -1;  // unset = true: prompt-completion rows train on the completion only
  int assistant_only_loss = -1;   // unset = sft's default for "messages" rows (assistant turns unless train_on_inputs)

  // ---- optimisation ----
  double learning_rate = 5e-5, adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8, weight_decay = 0.0;
  std::string lr_scheduler_type = "linear";
  int64_t warmup_steps = 0;
  double warmup_ratio = 0.0;
  double max_grad_norm = 1.0;  // <= 0 disables clipping
  int64_t gradient_accumulation_steps = 1;
  double num_train_epochs = 3.0;
  int64_t max_steps = -1;  // > 0 overrides num_train_epochs
  uint64_t seed = 42;
  bool bf16 = false;                 // bf16 compute, fp32 master weights and optimizer state (--fp16 maps here too)
  std::string torch_dtype = "auto";  // "bfloat16" = bf16 compute (and the final model saved in bf16)

  // ---- logging / evaluation / checkpoints ----
  std::string logging_strategy = "steps";  // steps | epoch | no (HF IntervalStrategy)
  int64_t logging_steps = 500;
  bool logging_first_step = false;
  bool disable_tqdm = false;  // no live progress line (on a terminal) and no periodic progress lines (elsewhere)
  std::string save_strategy = "steps";  // steps | epoch | no
  int64_t save_steps = 500;
  int64_t save_total_limit = -1;  // <= 0: keep all
  std::string eval_strategy = "no";  // no | steps | epoch
  int64_t eval_steps = -1;           // -1: = logging_steps (as HF)
  bool load_best_model_at_end = false;
  std::string metric_for_best_model;  // "" = HF's None: "loss" with load_best_model_at_end, else no best tracking
  int greater_is_better = -1;  // -1 unset: false for *loss metrics (HF rule)
  // HF's EarlyStoppingCallback: stop after `patience` evaluations in a row without an improvement of more than
  // `threshold` over the best metric. 0 = off (HF's callback would stop at the first evaluation).
  int64_t early_stopping_patience = 0;
  double early_stopping_threshold = 0.0;
  // Experiment trackers (HF's report_to, a list): tensorboard writes events files into logging_dir ("" = HF 5's
  // default, <output_dir>/runs/<Mon DD_HH-MM-SS>_<host>; a resumed run keeps its run's folder). Others are noted.
  std::string report_to = "none";
  std::string logging_dir;

  // ---- NEFTune (HF TrainingArguments / TRL): uniform noise on the input embeddings in training passes ----
  double neftune_noise_alpha = 0;  // 0 = off; m = alpha / sqrt(L * hidden) (train/neftune.h says what L is)

  // ---- LoRA (TRL ModelConfig / peft LoraConfig names and TRL's defaults) ----
  bool use_peft = false;
  int64_t lora_r = 16;
  double lora_alpha = 32;
  double lora_dropout = 0.05;
  std::string lora_target_modules;   // comma-separated module names, or all-linear; "" = peft's default (q_proj,v_proj)
  std::string lora_modules_to_save;  // comma-separated module names trained in full and saved with the adapter
  bool use_rslora = false;
  std::string adapter_name_or_path;  // continue training this peft adapter (its adapter_config.json sets r, alpha, ...)
  // QLoRA (transformers' BitsAndBytesConfig names): the frozen base's projections quantised to 4 bits at load
  bool load_in_4bit = false;
  std::string bnb_4bit_quant_type = "nf4";         // nf4 | fp4
  bool bnb_4bit_use_double_quant = false;          // quantise the absmax values too (blocks of 256, 8 bits)
  std::string bnb_4bit_compute_dtype = "float32";  // float32 | bfloat16: the gemms' compute dtype (transformers' default fp32)

  // ---- runtime ----
  std::string device = "cpu";  // with several ranks, "cuda" = the GPU of the rank's local rank
  int64_t threads = 0;  // per rank; 0 = this machine's cores / ranks on it

  // ---- data parallel (mpirun / srun; docs/arch/parallel.md) ----
  int64_t zero_stage = 0;            // 1: AdamW state sharded across ranks (ZeRO-1)
  double ddp_timeout = 1800;         // seconds a collective may wait for the other ranks (HF's default)
  double ddp_bucket_cap_mb = 25;     // gradient bucket size of the reductions (torch DDP's default)
  std::string debug_dump_batches;  // debug: write every micro-batch trained on as JSON lines (parity tests)

  bool gradient_checkpointing = false;  // re-run each layer's forward in the backward instead of saving activations
  bool skip_nonfinite_steps = false;  // a NaN/inf loss or gradient norm: skip the update (default: stop with an error)
  // Debugging only: load a base model, adapter, checkpoint or optimizer state holding NaN/inf, and save such state
  // (by default each is an error naming the file and tensor, and an update that makes a parameter NaN/inf stops).
  bool allow_nonfinite_weights = false;
  std::string save_gguf;  // "" or a GGUF type (q8_0, f16, bf16, f32): the final model also as <output_dir>/<name>-<type>.gguf

  bool use_bf16() const { return bf16 || torch_dtype == "bfloat16"; }
  // HF's rules: metric_for_best_model ("" = none, "loss" with load_best_model_at_end) and greater_is_better (unset:
  // false for a metric ending in "loss").
  std::string best_metric_name() const;
  bool best_metric_greater() const;
  bool reports_to(std::string_view integration) const;  // --report_to names it (or "all" for tensorboard)
  // Optimizer steps of the run: max_steps when > 0, else ceil(num_train_epochs * updates_per_epoch); throws naming
  // the flag when that is not a sane step count.
  int64_t total_steps(int64_t updates_per_epoch) const;
  // The adapter config --use_peft asks for (base_model_name_or_path = model_name_or_path).
  io::LoraAdapterConfig lora_config() const;
  // training_args.json: every field under its flag name, in the settings table's order (train/train_settings.h).
  // tests/cli/train_config_fields_test.cpp checks that each flag changes this JSON and each key here is a flag.
  std::string to_json() const;
  // The table's ranges, values and rules; throws sft::Error naming the flag on an invalid value or combination.
  void validate() const;
};

}  // namespace sft::train
