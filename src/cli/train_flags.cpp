#include "cli/train_flags.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/file_util.h"

namespace sft::cli {

namespace {

using train::TrainConfig;

enum class Kind { Str, Int, Float, Bool };

struct Flag {
  Kind kind;
  std::function<void(TrainConfig&, const std::string&)> set;
  const char* help;
};

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

#define STR(field) Kind::Str, [](TrainConfig& c, const std::string& v) { c.field = v; }
#define INT(field) Kind::Int, [](TrainConfig& c, const std::string& v) { c.field = parse_int(#field, v); }
#define FLT(field) Kind::Float, [](TrainConfig& c, const std::string& v) { c.field = parse_float(#field, v); }
#define BOOL(field) Kind::Bool, [](TrainConfig& c, const std::string& v) { c.field = parse_bool(#field, v); }

const std::map<std::string, Flag>& flags() {
  static const std::map<std::string, Flag> f = {
      {"model_name_or_path", {STR(model_name_or_path), "base model: HF folder (config.json, safetensors, tokenizer)"}},
      {"dataset_path", {STR(dataset_path), "training data: .json (alpaca array), .jsonl or .csv"}},
      {"output_dir", {STR(output_dir), "where checkpoints and the final HF model folder go"}},
      {"eval_dataset_path", {STR(eval_dataset_path), "evaluation data (same formats)"}},
      {"resume_from_checkpoint", {STR(resume_from_checkpoint), "checkpoint folder, or 'last' (newest in output_dir)"}},
      {"overwrite_output_dir", {BOOL(overwrite_output_dir), "train into a non-empty output_dir"}},
      {"template", {STR(template_name), "prompt template: alpaca (default), chatml, plain, model (the folder's own Jinja chat template, "
                                       "as apply_chat_template; loss on assistant turns) or auto (model when the folder has one, else alpaca)"}},
      {"train_on_inputs", {BOOL(train_on_inputs), "loss on prompt tokens too (default: response only)"}},
      {"max_seq_length", {INT(max_seq_length), "tokens per sample (default 1024; the report shows what is cut)"}},
      {"truncation", {STR(truncation), "right (cut the end, default) or drop (remove long samples)"}},
      {"packing", {BOOL(packing), "pack samples into rows of max_seq_length (attention stays per sample)"}},
      {"group_by_length", {BOOL(group_by_length), "batch samples of similar length (HF LengthGroupedSampler)"}},
      {"validation_split", {FLT(validation_split), "hold out a fraction (<1) or a number (>=1) of training rows"}},
      {"skip_bad_rows", {BOOL(skip_bad_rows), "skip malformed rows (counted) instead of failing"}},
      {"keep_empty_responses", {BOOL(keep_empty_responses),
                                "keep rows whose output is empty (default: excluded and counted in the report)"}},
      {"per_device_train_batch_size", {INT(per_device_train_batch_size), "rows per micro-batch (default 8)"}},
      {"per_device_eval_batch_size", {INT(per_device_eval_batch_size), "rows per evaluation batch (default 8)"}},
      {"data_loader_drop_last", {BOOL(data_loader_drop_last), "drop each epoch's last incomplete micro-batch"}},
      {"dataloader_drop_last", {BOOL(data_loader_drop_last), "same as --data_loader_drop_last (HF spelling)"}},
      {"learning_rate", {FLT(learning_rate), "peak learning rate (default 5e-5)"}},
      {"adam_beta1", {FLT(adam_beta1), "AdamW beta1 (0.9)"}},
      {"adam_beta2", {FLT(adam_beta2), "AdamW beta2 (0.999)"}},
      {"adam_epsilon", {FLT(adam_epsilon), "AdamW epsilon (1e-8)"}},
      {"weight_decay", {FLT(weight_decay), "AdamW weight decay, not applied to norms and biases (0)"}},
      {"lr_scheduler_type", {STR(lr_scheduler_type), "linear (default), cosine, constant, constant_with_warmup"}},
      {"warmup_steps", {INT(warmup_steps), "warmup optimizer steps (overrides --warmup_ratio)"}},
      {"warmup_ratio", {FLT(warmup_ratio), "warmup as a fraction of total steps (ceil)"}},
      {"max_grad_norm", {FLT(max_grad_norm), "clip the global gradient norm (1.0; 0 disables)"}},
      {"gradient_accumulation_steps", {INT(gradient_accumulation_steps), "micro-batches per optimizer step (1)"}},
      {"num_train_epochs", {FLT(num_train_epochs), "epochs (3; fractional allowed)"}},
      {"max_steps", {INT(max_steps), "optimizer steps; > 0 overrides --num_train_epochs"}},
      {"seed", {Kind::Int, [](TrainConfig& c, const std::string& v) { c.seed = static_cast<uint64_t>(parse_int("seed", v)); },
                "shuffling / validation split seed (42)"}},
      {"bf16", {BOOL(bf16), "bf16 compute with fp32 master weights and optimizer state"}},
      {"torch_dtype", {STR(torch_dtype), "bfloat16 = --bf16 and a bf16 final model; float32/auto = fp32"}},
      {"logging_steps", {INT(logging_steps), "log a row every N optimizer steps (500)"}},
      {"logging_strategy", {STR(logging_strategy), "steps (default: every --logging_steps), epoch (at each epoch end) or no"}},
      {"disable_tqdm", {BOOL(disable_tqdm), "no progress line (live on a terminal, periodic lines otherwise)"}},
      {"logging_first_step", {BOOL(logging_first_step), "also log after the first step"}},
      {"save_strategy", {STR(save_strategy), "steps (default), epoch or no"}},
      {"save_steps", {INT(save_steps), "checkpoint every N steps (500)"}},
      {"save_total_limit", {INT(save_total_limit), "keep at most N checkpoints (the best is always kept)"}},
      {"eval_strategy", {STR(eval_strategy), "no (default), steps or epoch"}},
      {"evaluation_strategy", {STR(eval_strategy), "older name of --eval_strategy"}},
      {"eval_steps", {INT(eval_steps), "evaluate every N steps (default: logging_steps)"}},
      {"load_best_model_at_end", {BOOL(load_best_model_at_end), "final model = the best evaluated checkpoint"}},
      {"metric_for_best_model", {STR(metric_for_best_model), "eval_loss (the only metric computed)"}},
      {"greater_is_better", {Kind::Bool, [](TrainConfig& c, const std::string& v) {
                               c.greater_is_better = parse_bool("greater_is_better", v) ? 1 : 0; },
                             "best = higher metric (default False for eval_loss)"}},
      {"save_gguf", {STR(save_gguf), "also write <output_dir>/<name>-<type>.gguf at the end (q8_0, f16, bf16 or f32; "
                                     "LoRA: merged), as `sft export` does"}},
      {"gradient_checkpointing", {BOOL(gradient_checkpointing),
                                  "keep only each layer's input and re-run its forward in the backward: activation "
                                  "memory of one layer instead of all (sft info shows both), ~15-30% more time a step"}},
      {"skip_nonfinite_steps", {BOOL(skip_nonfinite_steps),
                                "skip an update whose loss or gradient norm is NaN/inf (default: stop with an error)"}},
      {"use_peft", {BOOL(use_peft), "LoRA fine-tuning (peft adapters): base frozen, adapter + its AdamW state trained"}},
      {"lora_r", {INT(lora_r), "LoRA rank (16)"}},
      {"lora_alpha", {FLT(lora_alpha), "LoRA alpha; the term is scaled by alpha/r (32)"}},
      {"lora_dropout", {FLT(lora_dropout), "dropout on the adapter input while training (0.05)"}},
      {"lora_target_modules", {STR(lora_target_modules), "modules to adapt: q_proj,k_proj,... or all-linear (q_proj,v_proj)"}},
      {"lora_modules_to_save", {STR(lora_modules_to_save), "modules trained in full and saved with the adapter (e.g. lm_head)"}},
      {"use_rslora", {BOOL(use_rslora), "rank-stabilised LoRA: scale by alpha/sqrt(r)"}},
      {"adapter_name_or_path", {STR(adapter_name_or_path), "with --use_peft: continue training this peft adapter folder"}},
      {"device", {STR(device), "cpu (default) or cuda[:N] (needs a CUDA build)"}},
      {"threads", {INT(threads), "CPU threads per rank (default: the machine's cores / ranks on it)"}},
      {"zero_stage", {INT(zero_stage), "data parallel: 1 shards the AdamW state across ranks (ZeRO-1), 0 (default)"}},
      {"ddp_timeout", {FLT(ddp_timeout), "data parallel: seconds to wait for the other ranks (1800)"}},
      {"ddp_bucket_cap_mb", {FLT(ddp_bucket_cap_mb), "data parallel: gradient bucket size in MiB (25)"}},
      {"debug_dump_batches", {STR(debug_dump_batches), "debug: write every micro-batch used as JSON lines"}},
  };
  return f;
}

// HF flags that change nothing here: accepted (with their value) and noted once.
const std::map<std::string, const char*>& ignored_flags() {
  static const std::map<std::string, const char*> f = {
      {"report_to", "only trainer_log.jsonl and the loss table are written"},
      {"remove_unused_columns", "the data layer keeps only the template fields"},
      {"logging_dir", "logs go to <output_dir>/trainer_log.jsonl"},
      {"run_name", "no experiment tracker"},
      {"dataloader_num_workers", "data is tokenized up front"},
      {"dataloader_pin_memory", "no pinned memory"},
      {"do_train", "sft train always trains"},
      {"do_eval", "evaluation follows --eval_strategy"},
      {"push_to_hub", "no network"},
      {"save_safetensors", "always safetensors"},
      {"optim", "adamw_torch, adamw_torch_fused and adamw_hf are all torch.optim.AdamW semantics here"},
      {"ddp_find_unused_parameters", "every parameter gets a gradient"},
      {"log_level", "fixed"},
      {"eval_accumulation_steps", "evaluation keeps only loss sums"},
      {"prediction_loss_only", "evaluation computes the loss only"},
      {"fp16", "fp16 mixed precision is not implemented; --fp16 True runs bf16 compute (as --bf16 True: 16-bit gemm "
               "operands, fp32 master weights, no loss scaling needed thanks to bf16's fp32 range)"},
  };
  return f;
}

const Flag* find_flag(const std::string& name) {
  auto it = flags().find(name);
  return it == flags().end() ? nullptr : &it->second;
}

std::string suggestion(const std::string& name) {
  std::string best;
  size_t best_d = SIZE_MAX;
  auto consider = [&](const std::string& cand) {
    const size_t d = edit_distance(name, cand);
    if (d < best_d) { best_d = d; best = cand; }
  };
  for (const auto& [k, f] : flags()) consider(k);
  for (const auto& [k, f] : ignored_flags()) consider(k);
  consider("config");
  const size_t limit = std::max<size_t>(2, name.size() / 3);
  return best_d <= limit ? " (did you mean --" + best + "?)" : "";
}

void apply(ParsedTrainArgs& out, std::set<std::string>& noted, const std::string& name, const std::string& value,
           const std::string& where) {
  if (const Flag* f = find_flag(name)) {
    f->set(out.cfg, value);
    return;
  }
  auto ig = ignored_flags().find(name);
  if (ig != ignored_flags().end()) {
    if (name == "optim") {
      SFT_CHECK(value == "adamw_torch" || value == "adamw_torch_fused" || value == "adamw_hf", "--optim ", value,
                ": only AdamW is implemented; accepted values: adamw_torch, adamw_torch_fused, adamw_hf");
      if (noted.insert(name).second) out.notes.push_back("note: --optim " + value + ": " + ig->second);
      return;
    }
    if (name == "fp16") {
      if (parse_bool("fp16", value)) {
        out.cfg.bf16 = true;
        if (noted.insert(name).second) out.notes.push_back(std::string("note: --fp16 True: ") + ig->second);
      }
      return;
    }
    if (noted.insert(name).second) out.notes.push_back("note: --" + name + " " + value + " ignored: " + ig->second);
    return;
  }
  throw Error("unknown flag --" + name + where + suggestion(name));
}

bool is_bool_literal(const std::string& v) {
  return v == "True" || v == "False" || v == "true" || v == "false" || v == "1" || v == "0";
}

bool takes_bool(const std::string& name) {
  const Flag* f = find_flag(name);
  return (f && f->kind == Kind::Bool) || name == "remove_unused_columns" || name == "do_train" ||
         name == "do_eval" || name == "push_to_hub" || name == "fp16" ||
         name == "prediction_loss_only" || name == "save_safetensors" ||
         name == "dataloader_pin_memory";
}

std::string json_value_text(const nlohmann::json& v, const std::string& key, const std::string& path) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v.get<double>());
    return buf;
  }
  if (v.is_array() && key == "report_to") return v.dump();
  if (v.is_array() && (key == "lora_target_modules" || key == "lora_modules_to_save")) {
    std::string out;
    for (const auto& e : v) {
      SFT_CHECK(e.is_string(), path, ": \"", key, "\" must be a list of module names");
      out += (out.empty() ? "" : ",") + e.get<std::string>();
    }
    return out;
  }
  throw Error(path + ": key \"" + key + "\" must be a string, number or boolean");
}

}  // namespace

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

ParsedTrainArgs parse_train_args(const std::vector<std::string>& args) {
  // Pass 1: split into (name, value) pairs; pass 2 applies --config first, then the command line.
  std::vector<std::pair<std::string, std::string>> pairs;
  std::string config_path;
  ParsedTrainArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") { out.help = true; return out; }
    SFT_CHECK(a.size() > 2 && a.rfind("--", 0) == 0, "unexpected argument '", a, "' (flags are --name value)");
    std::string name = a.substr(2), value;
    const size_t eq = name.find('=');
    bool has_value = false;
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    std::replace(name.begin(), name.end(), '-', '_');  // --max-steps == --max_steps
    if (!has_value) {
      if (takes_bool(name)) {
        // Bare bool flag = True, unless the next argument is a bool literal.
        if (i + 1 < args.size() && is_bool_literal(args[i + 1])) value = args[++i];
        else value = "true";
      } else {
        if (!find_flag(name) && !ignored_flags().count(name) && name != "config")
          throw Error("unknown flag --" + name + suggestion(name));
        SFT_CHECK(i + 1 < args.size(), "--", name, " needs a value");
        value = args[++i];
        if (name == "lora_target_modules" || name == "lora_modules_to_save")  // TRL: --lora_target_modules q_proj v_proj
          while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) value += "," + args[++i];
      }
    }
    if (name == "config") config_path = value;
    else pairs.emplace_back(name, value);
  }
  std::set<std::string> noted;
  if (!config_path.empty()) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(config_path));
    } catch (const nlohmann::json::exception& e) {
      throw Error(config_path + ": not valid JSON (" + e.what() + ")");
    }
    SFT_CHECK(j.is_object(), config_path, ": --config must hold a JSON object of flag names to values");
    for (const auto& [k, v] : j.items()) {
      std::string key = k;
      if (key.rfind("--", 0) == 0) key = key.substr(2);
      apply(out, noted, key, json_value_text(v, key, config_path), " in " + config_path);
    }
  }
  for (const auto& [name, value] : pairs) apply(out, noted, name, value, "");
  return out;
}

std::vector<std::string> train_flag_names() {
  std::vector<std::string> out;
  for (const auto& [name, flag] : flags()) out.push_back(name);
  return out;
}

std::string train_flags_help() {
  std::string s =
      "sft train --model_name_or_path M --dataset_path D --output_dir O [flags]\n"
      "Flags use Hugging Face TrainingArguments names: --name value or --name=value; bool flags take\n"
      "True/False/true/false/1/0 or stand alone. --config file.json holds the same keys (flags override it).\n\n";
  for (const auto& [name, f] : flags()) {
    std::string line = "  --" + name;
    if (line.size() < 34) line.resize(34, ' ');
    s += line + " " + f.help + "\n";
  }
  s += "  --config                         JSON file of flag names to values\n\nAccepted and ignored: ";
  bool first = true;
  for (const auto& [name, why] : ignored_flags()) {
    s += (first ? "--" : ", --") + name;
    first = false;
  }
  return s + "\n";
}

}  // namespace sft::cli
