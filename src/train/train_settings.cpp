#include "train/train_settings.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <utility>

#include <nlohmann/json.hpp>

#include "backend/device.h"
#include "model/gguf_mapping.h"
#include "util/error.h"

namespace sft::train {

namespace {

using C = TrainConfig;
constexpr double kMaxSteps = static_cast<double>(int64_t{1} << 40);  // far beyond any run; keeps step arithmetic safe
constexpr double kBig = static_cast<double>(int64_t{1} << 30);

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

// ---- building rows ----
Setting make(std::string_view name, SettingType type, SettingField field, std::string_view help) {
  Setting s;
  s.name = name;
  s.type = type;
  s.field = field;
  s.help = help;
  return s;
}
Setting row(std::string_view name, std::string C::*f, std::string_view help) {
  return make(name, SettingType::String, f, help);
}
Setting row(std::string_view name, int64_t C::*f, std::string_view help) {
  return make(name, SettingType::Int, f, help);
}
Setting row(std::string_view name, uint64_t C::*f, std::string_view help) {
  return make(name, SettingType::Int, f, help);
}
Setting row(std::string_view name, double C::*f, std::string_view help) {
  return make(name, SettingType::Float, f, help);
}
Setting row(std::string_view name, bool C::*f, std::string_view help) {
  return make(name, SettingType::Bool, f, help);
}
Setting row(std::string_view name, int C::*f, std::string_view help) {  // tri-state bool
  return make(name, SettingType::Bool, f, help);
}
// An HF flag that changes nothing here: accepted (a value of `type`) and noted once with `why`.
Setting ignored(std::string_view name, std::string_view why, SettingType type = SettingType::String) {
  return make(name, type, std::monostate{}, why);
}

// ---- value parsing (the flag named as the user spelled it) ----
bool parse_bool(const std::string& flag, const std::string& v) {
  if (v == "True" || v == "true" || v == "1") return true;
  if (v == "False" || v == "false" || v == "0") return false;
  throw Error("--" + flag + ": expected True/False/true/false/1/0, got '" + v + "'");
}
int64_t parse_int(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  SFT_CHECK(!v.empty() && end && *end == '\0', "--", flag, ": expected an integer, got '", v, "'");
  SFT_CHECK(errno != ERANGE, "--", flag, ": ", v, " is out of the 64-bit integer range");
  return x;
}
double parse_float(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(v.c_str(), &end);
  SFT_CHECK(!v.empty() && end && *end == '\0', "--", flag, ": expected a number, got '", v, "'");
  SFT_CHECK(std::isfinite(x), "--", flag, ": expected a finite number, got '", v, "'");
  return x;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string join(const std::vector<std::string_view>& v, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? std::string(sep) : "") + std::string(v[i]);
  return out;
}

void check_one_choice(std::string_view flag, const std::string& v, const Setting& s) {
  for (std::string_view c : s.choices)
    if (v == c) return;
  throw Error("--" + std::string(flag) + ": expected one of " + join(s.choices, ", ") + ", got '" + v + "'" +
              (s.choices_note.empty() ? "" : " (" + std::string(s.choices_note) + ")"));
}

// An enum's value, or each comma-separated item of a list (e.g. --report_to tensorboard,none).
void check_choices(std::string_view flag, const std::string& v, const Setting& s) {
  if (s.choices.empty()) return;
  if (s.type != SettingType::List) return check_one_choice(flag, v, s);
  size_t b = 0;
  while (b <= v.size()) {
    const size_t e = std::min(v.find(',', b), v.size());
    check_one_choice(flag, v.substr(b, e - b), s);
    b = e + 1;
  }
}

void check_range(const Setting& s, const C& c) {
  const SettingRange& r = *s.range;
  const char* open = r.lo_open ? "(" : "[";
  const char* close = r.hi_open ? ")" : "]";
  auto inside = [&](double v) {
    return std::isfinite(v) && (r.lo_open ? v > r.lo : v >= r.lo) && (r.hi_open ? v < r.hi : v <= r.hi);
  };
  std::visit(Overloaded{
                 [&](int64_t C::*f) {
                   const int64_t v = c.*f;
                   SFT_CHECK(inside(static_cast<double>(v)), "--", s.name, ": expected an integer in ", open,
                             static_cast<int64_t>(r.lo), ", ", static_cast<int64_t>(r.hi), close, ", got ", v);
                 },
                 [&](double C::*f) {
                   const double v = c.*f;
                   SFT_CHECK(inside(v), "--", s.name, ": expected a finite number in ", open, num(r.lo), ", ",
                             num(r.hi), close, ", got ", num(v));
                 },
                 [&](auto) { throw Error("settings table: --" + std::string(s.name) + " has a range but no number"); },
             },
             s.field);
}

// ---- rules beyond a range or a list of values ----
void device_syntax(const C& c) { backend::parse_device(c.device, "--device"); }  // cuda:abc names the flag
void gguf_type_or_empty(const C& c) {
  if (!c.save_gguf.empty()) model::parse_gguf_outtype(c.save_gguf, "--save_gguf");
}
void eval_steps_rule(const C& c) {
  SFT_CHECK(c.eval_steps == -1 || (c.eval_steps >= 1 && static_cast<double>(c.eval_steps) <= kMaxSteps),
            "--eval_steps: expected an integer >= 1 (or -1 = --logging_steps), got ", c.eval_steps);
}
void fraction_or_row_count(const C& c) {
  SFT_CHECK(c.validation_split < 1 || c.validation_split == std::floor(c.validation_split),
            "--validation_split: expected a fraction in (0, 1) or a whole number of rows, got ", num(c.validation_split));
}
void epochs_or_max_steps(const C& c) {
  SFT_CHECK(c.max_steps > 0 || c.num_train_epochs > 0, "--num_train_epochs must be > 0 (or give --max_steps)");
}
void finite_alpha(const C& c) {
  SFT_CHECK(std::isfinite(c.lora_alpha), "--lora_alpha: expected a finite number, got ", num(c.lora_alpha));
}
void best_metric_names(const C& c) {
  SFT_CHECK(c.metric_for_best_model.empty() || c.metric_for_best_model == "eval_loss" || c.metric_for_best_model == "loss",
            "--metric_for_best_model: expected eval_loss or loss (the metric sft train computes), got '",
            c.metric_for_best_model, "'");
}
// TrainingArguments.__post_init__: the best checkpoint must be one that was both evaluated and saved. (Without
// evaluation the seed's flag list is accepted with a note instead: job.cpp.)
void best_model_needs_matching_saves(const C& c) {
  if (!c.load_best_model_at_end || c.eval_strategy == "no") return;
  SFT_CHECK(c.save_strategy == c.eval_strategy, "--load_best_model_at_end needs --save_strategy equal to --eval_strategy (",
            c.eval_strategy, "), got --save_strategy ", c.save_strategy, " (as transformers)");
  const int64_t eval_steps = c.eval_steps > 0 ? c.eval_steps : c.logging_steps;
  SFT_CHECK(c.eval_strategy != "steps" || c.save_steps % eval_steps == 0,
            "--load_best_model_at_end needs --save_steps (", c.save_steps, ") to be a multiple of --eval_steps (",
            eval_steps, ") (as transformers)");
}
// EarlyStoppingCallback.on_train_begin asserts both: an evaluation to watch and a metric to compare.
void early_stopping_needs_eval(const C& c) {
  if (c.early_stopping_patience == 0) return;
  SFT_CHECK(c.eval_strategy != "no", "--early_stopping_patience needs evaluation: --eval_strategy steps or epoch");
  SFT_CHECK(!c.eval_dataset_path.empty() || c.validation_split > 0,
            "--early_stopping_patience needs evaluation data: --eval_dataset_path or --validation_split");
  SFT_CHECK(!c.best_metric_name().empty(), "--early_stopping_patience needs --metric_for_best_model eval_loss (or "
            "--load_best_model_at_end True, which implies it), as transformers' EarlyStoppingCallback");
}
// HF: "none" and "all" are whole values, never items of a list.
void report_to_alone(const C& c) {
  if (c.report_to.find(',') == std::string::npos) return;
  for (const char* whole : {"none", "all"})
    for (size_t b = 0; b <= c.report_to.size();) {
      const size_t e = std::min(c.report_to.find(',', b), c.report_to.size());
      SFT_CHECK(c.report_to.compare(b, e - b, whole) != 0, "--report_to: '", whole,
                "' stands alone, got '", c.report_to, "'");
      b = e + 1;
    }
}
void text_field_named(const C& c) {
  SFT_CHECK(!c.dataset_text_field.empty(), "--dataset_text_field: expected a field name, got ''");
}
void adapter_needs_peft(const C& c) {
  SFT_CHECK(c.use_peft || c.adapter_name_or_path.empty(), "--adapter_name_or_path needs --use_peft");
}

void four_bit_needs_peft(const C& c) {  // transformers refuses to fine-tune a 4-bit model in full
  SFT_CHECK(!c.load_in_4bit || c.use_peft, "--load_in_4bit: a 4-bit base can only be trained through adapters "
            "(QLoRA): add --use_peft (full fine-tuning of a quantised model is refused, as transformers does)");
  SFT_CHECK(!c.load_in_4bit || c.save_gguf.empty(), "--save_gguf: a --load_in_4bit run saves its adapter only (the "
            "base is quantised): merge it into the unquantised base with sft merge, then sft export");
}

// ---- ignored flags that still act ----
std::string fp16_maps_to_bf16(const Setting& s, const std::string& v, C& c) {
  if (!parse_bool(std::string(s.name), v)) return "";
  c.bf16 = true;
  return "note: --fp16 True: " + std::string(s.help);
}
std::string optim_is_adamw(const Setting& s, const std::string& v, C&) {
  return "note: --" + std::string(s.name) + " " + v + ": " + std::string(s.help);
}

// The table, in sections (training_args.json keeps this order).
std::vector<Setting> path_and_data_rows() {
  return {
      row("model_name_or_path", &C::model_name_or_path, "base model: HF folder (config.json, safetensors, tokenizer)").needed(),
      row("dataset_path", &C::dataset_path, "training data: .json (alpaca array), .jsonl or .csv").needed(),
      row("output_dir", &C::output_dir, "where checkpoints and the final HF model folder go").needed(),
      row("eval_dataset_path", &C::eval_dataset_path, "evaluation data (same formats)"),
      row("resume_from_checkpoint", &C::resume_from_checkpoint, "checkpoint folder, or 'last' (newest in output_dir)"),
      row("overwrite_output_dir", &C::overwrite_output_dir, "train into a non-empty output_dir"),
      // ---- data ----
      row("template", &C::template_name, "prompt template: built-in, model = the folder's own Jinja chat template (as "
          "apply_chat_template; loss on assistant turns), auto = model when the folder has one, else alpaca")
          .one_of({"alpaca", "chatml", "plain", "model", "auto"}),
      row("train_on_inputs", &C::train_on_inputs, "loss on prompt tokens too (default: response only)"),
      row("dataset_format", &C::dataset_format, "row format of the dataset files (TRL's): auto = by the first row's "
          "fields (prompt, messages, instruction, then the text field)")
          .one_of({"auto", "alpaca", "language_modeling", "prompt_completion", "conversational"}),
      row("dataset_text_field", &C::dataset_text_field, "field of language-modelling rows (TRL)").checked(text_field_named),
      row("completion_only_loss", &C::completion_only_loss,
          "prompt-completion rows: loss on the completion only (unset: True, TRL's default); False = every token"),
      row("assistant_only_loss", &C::assistant_only_loss,
          "conversational rows: loss on assistant turns only (True) or every token (False, TRL's default); unset: "
          "assistant turns unless --train_on_inputs"),
      row("max_seq_length", &C::max_seq_length, "tokens per sample (the report shows what is cut)").in(2, 1 << 20),
      row("truncation", &C::truncation, "right: cut the end; drop: remove long samples").one_of({"right", "drop"}),
      row("packing", &C::packing, "pack samples into rows of max_seq_length (attention stays per sample)"),
      row("packing_strategy", &C::packing_strategy, "with --packing: bfd = best-fit decreasing (TRL's default), "
          "wrapped = samples concatenated and cut at row ends (TRL's), first_fit = seeded first fit")
          .one_of({"bfd", "wrapped", "first_fit"}),
      row("padding_free", &C::padding_free, "each micro-batch's samples end to end in one row, positions restarting "
          "per sample: no padding computed (TRL's padding_free; where the backend's attention skips other samples)"),
      row("group_by_length", &C::group_by_length, "batch samples of similar length (HF LengthGroupedSampler)"),
      row("validation_split", &C::validation_split, "hold out a fraction (<1) or a number (>=1) of training rows")
          .in(0, 1e12).checked(fraction_or_row_count),
      row("skip_bad_rows", &C::skip_bad_rows, "skip malformed rows (counted) instead of failing"),
      row("keep_empty_responses", &C::keep_empty_responses,
          "keep rows whose output is empty (default: excluded and counted in the report)"),
      // Batch x length bounds keep every activation size (tokens x width) far inside int64.
      row("per_device_train_batch_size", &C::per_device_train_batch_size, "rows per micro-batch").in(1, 1 << 16),
      row("per_device_eval_batch_size", &C::per_device_eval_batch_size, "rows per evaluation batch").in(1, 1 << 16),
      row("data_loader_drop_last", &C::data_loader_drop_last, "drop each epoch's last incomplete micro-batch")
          .also("dataloader_drop_last"),
  };
}

std::vector<Setting> optimisation_rows() {
  return {
      row("learning_rate", &C::learning_rate, "peak learning rate").in(0, 1e6),
      row("adam_beta1", &C::adam_beta1, "AdamW beta1").in_open_hi(0, 1),
      row("adam_beta2", &C::adam_beta2, "AdamW beta2").in_open_hi(0, 1),
      row("adam_epsilon", &C::adam_epsilon, "AdamW epsilon").in_open_lo(0, 1),
      row("weight_decay", &C::weight_decay, "AdamW weight decay, not applied to norms and biases").in(0, 1e6),
      row("lr_scheduler_type", &C::lr_scheduler_type, "learning-rate schedule (transformers' get_scheduler)")
          .one_of({"linear", "cosine", "constant", "constant_with_warmup"}),
      row("warmup_steps", &C::warmup_steps, "warmup optimizer steps (overrides --warmup_ratio)").in(0, kMaxSteps),
      row("warmup_ratio", &C::warmup_ratio, "warmup as a fraction of total steps (ceil)").in(0, 1),
      row("max_grad_norm", &C::max_grad_norm, "clip the global gradient norm (<= 0 disables)").in(-1e30, 1e30),
      row("gradient_accumulation_steps", &C::gradient_accumulation_steps, "micro-batches per optimizer step").in(1, kBig),
      row("num_train_epochs", &C::num_train_epochs, "epochs (fractional allowed)").in(0, 1e9),
      row("max_steps", &C::max_steps, "optimizer steps; > 0 overrides --num_train_epochs")
          .in(-1, kMaxSteps).checked(epochs_or_max_steps),
      row("seed", &C::seed, "shuffling / validation split / LoRA init and dropout / NEFTune noise seed"),
      row("neftune_noise_alpha", &C::neftune_noise_alpha,
          "NEFTune: uniform noise U(-m, m), m = alpha / sqrt(seq_len * hidden), on the input embeddings of training "
          "passes (0 = off; the paper uses 5)").in(0, 1e6),
      row("bf16", &C::bf16, "bf16 compute with fp32 master weights and optimizer state"),
      row("torch_dtype", &C::torch_dtype, "bfloat16 = --bf16 and a bf16 final model; float32/auto = fp32")
          .one_of({"auto", "float32", "bfloat16"}, "float16 is not supported: use bfloat16"),
  };
}

std::vector<Setting> logging_eval_and_save_rows() {  // HF IntervalStrategy
  return {
      row("logging_strategy", &C::logging_strategy, "steps: every --logging_steps; epoch: at each epoch end; no: never")
          .one_of({"steps", "epoch", "no"}),
      row("logging_steps", &C::logging_steps, "log a row every N optimizer steps").in(1, kMaxSteps),
      row("disable_tqdm", &C::disable_tqdm, "no progress line (live on a terminal, periodic lines otherwise)"),
      row("logging_first_step", &C::logging_first_step, "also log after the first step"),
      row("save_strategy", &C::save_strategy, "steps: a checkpoint every --save_steps; epoch: at each epoch end; no: none")
          .one_of({"steps", "epoch", "no"}),
      row("save_steps", &C::save_steps, "checkpoint every N steps").in(1, kMaxSteps),
      row("save_total_limit", &C::save_total_limit, "keep at most N checkpoints (the best is always kept; <= 0: all)")
          .in(-1, kBig),
      row("eval_strategy", &C::eval_strategy, "steps: every --eval_steps; epoch: at each epoch end; no: never")
          .one_of({"steps", "epoch", "no"}).also("evaluation_strategy"),
      row("eval_steps", &C::eval_steps, "evaluate every N steps (-1: --logging_steps)").checked(eval_steps_rule),
      row("load_best_model_at_end", &C::load_best_model_at_end, "final model = the best evaluated checkpoint")
          .checked(best_model_needs_matching_saves),
      row("metric_for_best_model", &C::metric_for_best_model,
          "eval_loss (or loss): the metric choosing the best checkpoint (unset: loss with --load_best_model_at_end, "
          "else no best checkpoint is tracked)").checked(best_metric_names),
      row("greater_is_better", &C::greater_is_better, "best = higher metric (unset: False for loss metrics)"),
      row("early_stopping_patience", &C::early_stopping_patience,
          "stop after N evaluations without improvement (HF EarlyStoppingCallback; 0 = off)")
          .in(0, kBig).checked(early_stopping_needs_eval),
      row("early_stopping_threshold", &C::early_stopping_threshold,
          "improvement the metric must exceed to reset the patience").in(0, 1e30),
      row("report_to", &C::report_to,
          "experiment trackers: tensorboard writes events files into --logging_dir; all = tensorboard; others are "
          "accepted and noted (no network here)")
          .list()
          .one_of({"none", "all", "tensorboard", "azure_ml", "comet_ml", "mlflow", "neptune", "trackio", "wandb",
                   "codecarbon", "clearml", "dagshub", "flyte", "dvclive", "swanlab", "kubeflow"})
          .checked(report_to_alone),
      row("logging_dir", &C::logging_dir,
          "TensorBoard folder (default: <output_dir>/runs/<date>_<host>, as transformers 5; a resumed run keeps its "
          "run's folder)"),
  };
}

std::vector<Setting> runtime_lora_and_parallel_rows() {
  return {
      row("device", &C::device, "cpu or cuda[:N] (needs a CUDA build)").checked(device_syntax),
      row("threads", &C::threads, "CPU threads per rank (0: the machine's cores / ranks on it)").in(0, 1024),
      row("debug_dump_batches", &C::debug_dump_batches, "debug: write every micro-batch used as JSON lines"),
      row("gradient_checkpointing", &C::gradient_checkpointing,
          "keep only each layer's input and re-run its forward in the backward: activation memory of one layer "
          "instead of all (sft info shows both), ~15-30% more time a step"),
      row("skip_nonfinite_steps", &C::skip_nonfinite_steps,
          "skip an update whose loss or gradient norm is NaN/inf (default: stop with an error)"),
      row("allow_nonfinite_weights", &C::allow_nonfinite_weights,
          "debugging: load a model, adapter, checkpoint or optimizer state holding NaN/inf and save such weights "
          "(default: an error naming the file and tensor; a step that makes a parameter NaN/inf stops training)"),
      row("save_gguf", &C::save_gguf,
          "also write <output_dir>/<name>-<type>.gguf at the end, for llama.cpp / ollama (q8_0, f16, bf16 or f32; "
          "LoRA: the merged model), as sft export does").checked(gguf_type_or_empty),
      // ---- LoRA (TRL ModelConfig / peft LoraConfig names, TRL's defaults) ----
      row("use_peft", &C::use_peft, "LoRA fine-tuning (peft adapters): base frozen, adapter + its AdamW state trained"),
      row("lora_r", &C::lora_r, "LoRA rank").in(1, 65536).lora(),
      row("lora_alpha", &C::lora_alpha, "LoRA alpha; the term is scaled by alpha/r").checked(finite_alpha).lora(),
      row("lora_dropout", &C::lora_dropout, "dropout on the adapter input while training").in_open_hi(0, 1).lora(),
      row("lora_target_modules", &C::lora_target_modules,
          "modules to adapt: q_proj,k_proj,... or all-linear (left out: q_proj,v_proj, peft's default)").list().lora()
          .non_empty("an empty list adapts no module (peft refuses it too: \"No `target_modules` passed\"); name the "
                     "modules (q_proj,v_proj), or all-linear, or leave the flag out for peft's default q_proj,v_proj"),
      row("lora_modules_to_save", &C::lora_modules_to_save,
          "modules trained in full and saved with the adapter (e.g. lm_head)").list().lora(),
      row("use_rslora", &C::use_rslora, "rank-stabilised LoRA: scale by alpha/sqrt(r)").lora(),
      row("adapter_name_or_path", &C::adapter_name_or_path, "with --use_peft: continue training this peft adapter folder")
          .checked(adapter_needs_peft),
      // ---- QLoRA (transformers' BitsAndBytesConfig; docs/arch/lora.md) ----
      row("load_in_4bit", &C::load_in_4bit, "with --use_peft: the frozen base's projections quantised to 4 bits at load "
          "as bitsandbytes does (QLoRA); embedding and LM head stay in the model dtype").checked(four_bit_needs_peft),
      row("bnb_4bit_quant_type", &C::bnb_4bit_quant_type, "4-bit code book of --load_in_4bit").one_of({"nf4", "fp4"}),
      row("bnb_4bit_use_double_quant", &C::bnb_4bit_use_double_quant,
          "--load_in_4bit: quantise the per-block scales too (8 bits, blocks of 256): ~0.4 bit/param less"),
      row("bnb_4bit_compute_dtype", &C::bnb_4bit_compute_dtype,
          "--load_in_4bit: dtype of the gemms (bfloat16: bf16 operands, fp32 accumulation)")
          .one_of({"float32", "bfloat16"}, "float16 is not supported: use bfloat16"),
      // ---- data parallel (mpirun / srun; docs/arch/parallel.md) ----
      row("zero_stage", &C::zero_stage, "data parallel: 1 shards the AdamW state across ranks (ZeRO-1)").in(0, 1),
      row("ddp_timeout", &C::ddp_timeout, "data parallel: seconds to wait for the other ranks").in_open_lo(0, 1e9),
      row("ddp_bucket_cap_mb", &C::ddp_bucket_cap_mb, "data parallel: gradient bucket size in MiB").in_open_lo(0, 1e6),
  };
}

std::vector<Setting> ignored_hf_rows() {  // HF flags accepted and noted once: they change nothing here
  return {
      ignored("remove_unused_columns", "the data layer keeps only the template fields", SettingType::Bool),
      ignored("run_name", "no experiment tracker"),
      ignored("dataloader_num_workers", "data is tokenized up front"),
      ignored("dataloader_pin_memory", "no pinned memory", SettingType::Bool),
      ignored("do_train", "sft train always trains", SettingType::Bool),
      ignored("do_eval", "evaluation follows --eval_strategy", SettingType::Bool),
      ignored("push_to_hub", "no network", SettingType::Bool),
      ignored("save_safetensors", "always safetensors", SettingType::Bool),
      ignored("optim", "adamw_torch, adamw_torch_fused and adamw_hf are all torch.optim.AdamW semantics here")
          .one_of({"adamw_torch", "adamw_torch_fused", "adamw_hf"}, "only AdamW is implemented").acting(optim_is_adamw),
      ignored("ddp_find_unused_parameters", "every parameter gets a gradient"),
      ignored("log_level", "fixed"),
      ignored("eval_accumulation_steps", "evaluation keeps only loss sums"),
      ignored("prediction_loss_only", "evaluation computes the loss only", SettingType::Bool),
      ignored("fp16", "fp16 mixed precision is not implemented; --fp16 True runs bf16 compute (as --bf16 True: 16-bit "
              "gemm operands, fp32 master weights, no loss scaling needed thanks to bf16's fp32 range)", SettingType::Bool)
          .acting(fp16_maps_to_bf16),
  };
}

}  // namespace

Setting Setting::in(double lo, double hi) && {
  range = SettingRange{lo, hi, false, false};
  return std::move(*this);
}
Setting Setting::in_open_hi(double lo, double hi) && {
  range = SettingRange{lo, hi, false, true};
  return std::move(*this);
}
Setting Setting::in_open_lo(double lo, double hi) && {
  range = SettingRange{lo, hi, true, false};
  return std::move(*this);
}
Setting Setting::one_of(std::initializer_list<std::string_view> values, std::string_view note) && {
  if (type == SettingType::String && !ignored()) type = SettingType::Enum;  // a list keeps its type: each item checked
  choices = values;
  choices_note = note;
  return std::move(*this);
}
Setting Setting::also(std::string_view alias) && {
  aliases.push_back(alias);
  return std::move(*this);
}
Setting Setting::list() && {
  type = SettingType::List;
  return std::move(*this);
}
Setting Setting::needed() && {
  required = true;
  return std::move(*this);
}
Setting Setting::non_empty(std::string_view why) && {
  empty_error = why;
  return std::move(*this);
}
Setting Setting::lora() && {
  lora_only = true;
  return std::move(*this);
}
Setting Setting::checked(void (*rule)(const TrainConfig&)) && {
  check = rule;
  return std::move(*this);
}
Setting Setting::acting(std::string (*effect)(const Setting&, const std::string&, TrainConfig&)) && {
  act = effect;
  return std::move(*this);
}

const std::vector<Setting>& train_settings() {
  static const std::vector<Setting> table = [] {
    std::vector<Setting> t;
    for (auto section : {path_and_data_rows, optimisation_rows, logging_eval_and_save_rows,
                         runtime_lora_and_parallel_rows, ignored_hf_rows}) {
      std::vector<Setting> rows = section();
      t.insert(t.end(), std::make_move_iterator(rows.begin()), std::make_move_iterator(rows.end()));
    }
    return t;
  }();
  return table;
}

const Setting* find_setting(std::string_view name) {
  for (const Setting& s : train_settings()) {
    if (s.name == name) return &s;
    for (std::string_view a : s.aliases)
      if (a == name) return &s;
  }
  return nullptr;
}

std::string apply_setting(C& cfg, const Setting& s, std::string_view spelled, const std::string& value) {
  const std::string flag(spelled);
  if (s.ignored()) {
    if (s.is_bool()) parse_bool(flag, value);
    check_choices(flag, value, s);
    if (s.act) return s.act(s, value, cfg);
    return "note: --" + flag + " " + value + " ignored: " + std::string(s.help);
  }
  SFT_CHECK(s.empty_error.empty() || !value.empty(), "--", flag, ": ", s.empty_error);
  std::visit(Overloaded{
                 [&](std::string C::*f) { cfg.*f = value; },
                 [&](int64_t C::*f) { cfg.*f = parse_int(flag, value); },
                 [&](uint64_t C::*f) { cfg.*f = static_cast<uint64_t>(parse_int(flag, value)); },
                 [&](double C::*f) { cfg.*f = parse_float(flag, value); },
                 [&](bool C::*f) { cfg.*f = parse_bool(flag, value); },
                 [&](int C::*f) { cfg.*f = parse_bool(flag, value) ? 1 : 0; },
                 [&](std::monostate) {},
             },
             s.field);
  return "";
}

void check_setting(const Setting& s, const C& cfg) {
  if (s.ignored()) return;
  if (s.required) SFT_CHECK(!setting_value_text(s, cfg).empty(), "--", s.name, " is required");
  if (s.range) check_range(s, cfg);
  if (!s.choices.empty()) check_choices(s.name, cfg.*std::get<std::string C::*>(s.field), s);
  if (s.check) s.check(cfg);
}

void validate_settings(const C& cfg) {
  for (const Setting& s : train_settings()) check_setting(s, cfg);
}

std::string settings_to_json(const C& cfg) {
  nlohmann::ordered_json j;
  for (const Setting& s : train_settings()) {
    const std::string key(s.name);
    std::visit(Overloaded{
                   [&](int C::*f) {  // tri-state: unset is null (HF's None)
                     j[key] = cfg.*f < 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(cfg.*f == 1);
                   },
                   [&](std::string C::*f) {  // a non-empty list left unset is null (TRL's None)
                     const bool unset = !s.empty_error.empty() && (cfg.*f).empty();
                     j[key] = unset ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(cfg.*f);
                   },
                   [&](std::monostate) {},
                   [&](auto f) { j[key] = cfg.*f; },
               },
               s.field);
  }
  return j.dump(2) + "\n";
}

std::string setting_value_text(const Setting& s, const C& cfg) {
  return std::visit(Overloaded{
                        [&](std::string C::*f) { return cfg.*f; },
                        [&](int64_t C::*f) { return std::to_string(cfg.*f); },
                        [&](uint64_t C::*f) { return std::to_string(cfg.*f); },
                        [&](double C::*f) { return num(cfg.*f); },
                        [&](bool C::*f) { return std::string(cfg.*f ? "true" : "false"); },
                        [&](int C::*f) { return std::string(cfg.*f < 0 ? "unset" : cfg.*f ? "true" : "false"); },
                        [&](std::monostate) { return std::string(); },
                    },
                    s.field);
}

bool lora_settings_changed(const C& cfg) {
  const C defaults;
  for (const Setting& s : train_settings()) {
    if (!s.lora_only) continue;
    const bool differs = std::visit(Overloaded{
                                        [](std::monostate) { return false; },
                                        [&](auto f) { return !(cfg.*f == defaults.*f); },
                                    },
                                    s.field);
    if (differs) return true;
  }
  return false;
}

}  // namespace sft::train
