// adapter_config.json <-> LoraAdapterConfig, with the keys and defaults of peft 0.21's LoraConfig.
#include "io/peft_adapter.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/file_util.h"
#include "util/input_file.h"

namespace sft::io {

namespace {

using json = nlohmann::json;

bool is_set(const json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

// A key that changes the computation in a way this program does not implement must be absent, null, false or empty.
void require_unset(const json& j, const char* key, const std::string& where, const char* what) {
  if (!is_set(j, key)) return;
  const json& v = j[key];
  const bool unset = (v.is_boolean() && !v.get<bool>()) || (v.is_object() && v.empty()) || (v.is_array() && v.empty());
  SFT_CHECK(unset, where, ": \"", key, "\" = ", v.dump(), " is not supported (", what, ")");
}

std::vector<std::string> string_list(const json& v, const std::string& where, const char* key) {
  std::vector<std::string> out;
  SFT_CHECK(v.is_array(), where, ": \"", key, "\" must be a list of strings or a string, got ", v.dump());
  for (const json& e : v) {
    SFT_CHECK(e.is_string(), where, ": \"", key, "\" entries must be strings, got ", e.dump());
    out.push_back(e.get<std::string>());
  }
  return out;
}

}  // namespace

double LoraAdapterConfig::scaling() const {
  return use_rslora ? lora_alpha / std::sqrt(static_cast<double>(r)) : lora_alpha / static_cast<double>(r);
}

bool LoraAdapterConfig::all_linear() const {
  if (!target_is_string || target_modules.size() != 1) return false;
  std::string s = target_modules[0];
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s == "all-linear";
}

LoraAdapterConfig parse_adapter_config(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(where + ": not valid JSON (" + e.what() + ")");
  }
  SFT_CHECK(j.is_object(), where, ": adapter_config.json must hold a JSON object");
  const std::string peft_type = is_set(j, "peft_type") && j["peft_type"].is_string() ? j["peft_type"].get<std::string>() : "";
  SFT_CHECK(peft_type == "LORA", where, ": \"peft_type\" must be \"LORA\" (got ", is_set(j, "peft_type") ? j["peft_type"].dump() : "nothing", ")");
  LoraAdapterConfig c;
  try {
    if (is_set(j, "base_model_name_or_path")) c.base_model_name_or_path = j["base_model_name_or_path"].get<std::string>();
    if (is_set(j, "task_type")) c.task_type = j["task_type"].get<std::string>();
    if (is_set(j, "r")) {
      SFT_CHECK(j["r"].is_number_integer(), where, ": \"r\" must be an integer, got ", j["r"].dump());
      c.r = j["r"].get<int64_t>();
    }
    if (is_set(j, "lora_alpha")) {
      SFT_CHECK(j["lora_alpha"].is_number(), where, ": \"lora_alpha\" must be a number, got ", j["lora_alpha"].dump());
      c.lora_alpha = j["lora_alpha"].get<double>();
    }
    if (is_set(j, "lora_dropout")) {
      SFT_CHECK(j["lora_dropout"].is_number(), where, ": \"lora_dropout\" must be a number");
      c.lora_dropout = j["lora_dropout"].get<double>();
    }
    if (is_set(j, "use_rslora")) c.use_rslora = j["use_rslora"].get<bool>();
  } catch (const json::type_error& e) {
    throw Error(where + ": a key has the wrong type (" + e.what() + ")");
  }
  SFT_CHECK(c.r > 0, where, ": \"r\" must be a positive integer, got ", c.r);
  SFT_CHECK(std::isfinite(c.lora_alpha), where, ": \"lora_alpha\" must be a finite number");
  SFT_CHECK(c.lora_dropout >= 0.0 && c.lora_dropout < 1.0, where, ": \"lora_dropout\" must be in [0, 1), got ",
            c.lora_dropout);
  SFT_CHECK(is_set(j, "target_modules"), where, ": \"target_modules\" is missing");
  const json& tm = j["target_modules"];
  if (tm.is_string()) {
    c.target_modules = {tm.get<std::string>()};
    c.target_is_string = true;
  } else {
    c.target_modules = string_list(tm, where, "target_modules");
    SFT_CHECK(!c.target_modules.empty(), where, ": \"target_modules\" is empty");
  }
  if (is_set(j, "modules_to_save")) c.modules_to_save = string_list(j["modules_to_save"], where, "modules_to_save");
  if (is_set(j, "bias"))
    SFT_CHECK(j["bias"] == "none", where, ": \"bias\" = ", j["bias"].dump(), " is not supported (only \"none\")");
  require_unset(j, "use_dora", where, "DoRA");
  require_unset(j, "lora_bias", where, "LoRA bias on lora_B");
  require_unset(j, "fan_in_fan_out", where, "Conv1D-style weights");
  require_unset(j, "rank_pattern", where, "per-module ranks");
  require_unset(j, "alpha_pattern", where, "per-module alphas");
  require_unset(j, "layers_to_transform", where, "a subset of layers");
  require_unset(j, "layer_replication", where, "layer replication");
  require_unset(j, "target_parameters", where, "parameter targeting");
  require_unset(j, "trainable_token_indices", where, "trainable tokens");
  require_unset(j, "exclude_modules", where, "module exclusion");
  require_unset(j, "use_qalora", where, "QA-LoRA");
  return c;
}

LoraAdapterConfig load_adapter_config(const std::filesystem::path& dir_or_file) {
  const std::filesystem::path f =
      std::filesystem::is_directory(dir_or_file) ? dir_or_file / "adapter_config.json" : dir_or_file;
  SFT_CHECK(std::filesystem::exists(f), f.string(), ": no adapter_config.json (not a peft adapter folder)");
  return parse_adapter_config(read_input_file(f, input::json_file), f.string());
}

std::string adapter_config_to_json(const LoraAdapterConfig& c) {
  nlohmann::ordered_json j;
  j["alpha_pattern"] = json::object();
  j["base_model_name_or_path"] = c.base_model_name_or_path;
  j["bias"] = "none";
  j["exclude_modules"] = nullptr;
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = true;
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = nullptr;
  // peft writes an integer alpha as an integer; keep that so the file reads the same
  if (c.lora_alpha == std::floor(c.lora_alpha) && std::abs(c.lora_alpha) < 1e15)
    j["lora_alpha"] = static_cast<int64_t>(c.lora_alpha);
  else
    j["lora_alpha"] = c.lora_alpha;
  j["lora_bias"] = false;
  j["lora_dropout"] = c.lora_dropout;
  j["modules_to_save"] = c.modules_to_save.empty() ? json(nullptr) : json(c.modules_to_save);
  j["peft_type"] = "LORA";
  j["r"] = c.r;
  j["rank_pattern"] = json::object();
  j["revision"] = nullptr;
  if (c.target_is_string) j["target_modules"] = c.target_modules.at(0);
  else j["target_modules"] = c.target_modules;
  j["task_type"] = c.task_type;
  j["use_dora"] = false;
  j["use_rslora"] = c.use_rslora;
  return j.dump(2) + "\n";
}

bool is_adapter_dir(const std::filesystem::path& dir) {
  return std::filesystem::exists(dir / "adapter_config.json");
}

}  // namespace sft::io
