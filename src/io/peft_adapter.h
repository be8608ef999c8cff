// peft LoRA adapter folders: adapter_config.json (peft's LoraConfig keys) and adapter_model.safetensors
// (peft's tensor names). Only the file format lives here; which layers a config targets is decided by model/lora.
//
// Tensor names as peft 0.21 save them (the adapter name "default" removed):
//   base_model.model.<module>.lora_A.weight [r, in]     base_model.model.<module>.lora_B.weight [out, r]
//   base_model.model.<module>.<param>                   for a module listed in modules_to_save (a full copy)
// with <module> the transformers module name, e.g. model.layers.0.self_attn.q_proj.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace sft::io {

struct LoraAdapterConfig {
  std::string base_model_name_or_path;
  int64_t r = 8;             // peft LoraConfig defaults
  double lora_alpha = 8;
  double lora_dropout = 0.0;
  bool use_rslora = false;   // scaling alpha / sqrt(r) instead of alpha / r
  // peft's target_modules is a list of module names (a module matches when its full name equals an entry or ends with
  // "." + entry) or one string: "all-linear" (every linear layer except the output head) or a regex the full module
  // name must match entirely. target_is_string tells which; a string is kept as the single element.
  std::vector<std::string> target_modules;
  bool target_is_string = false;
  std::vector<std::string> modules_to_save;  // whole modules trained and saved (e.g. lm_head, embed_tokens)
  std::string task_type = "CAUSAL_LM";

  double scaling() const;  // the factor of the LoRA term: alpha / r, or alpha / sqrt(r) with use_rslora
  bool all_linear() const;  // target_modules == "all-linear" (case-insensitive, as peft)
};

// The prefix peft puts before a module name in adapter_model.safetensors.
inline constexpr const char* kPeftPrefix = "base_model.model.";

// Parses adapter_config.json text. Throws sft::Error naming the file and key for anything this program cannot run
// exactly as peft would (peft_type other than LORA, DoRA, lora_bias, bias != "none", fan_in_fan_out,
// rank/alpha patterns, layers_to_transform, layer_replication, target_parameters, trainable_token_indices), r <= 0.
LoraAdapterConfig parse_adapter_config(const std::string& json_text, const std::string& path_for_errors);
// Reads DIR/adapter_config.json (dir_or_file may also name the file itself).
LoraAdapterConfig load_adapter_config(const std::filesystem::path& dir_or_file);
// adapter_config.json text with peft's keys (PeftModel.from_pretrained loads it unchanged).
std::string adapter_config_to_json(const LoraAdapterConfig& c);

// True when dir holds a peft adapter (adapter_config.json).
bool is_adapter_dir(const std::filesystem::path& dir);

}  // namespace sft::io
