#include "train/continue_check.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "model/family.h"
#include "model/lora.h"
#include "model/weight_check.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/input_file.h"

namespace sft::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kResumeFlag = "--resume_from_checkpoint ";

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// A token as JSON text ("\u0120the"-safe; never invalid UTF-8 in a message), or (none) past the vocabulary.
std::string token_text(const std::string& t) {
  return t.empty() ? "(none)" : nlohmann::json(t).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Full fine-tuning: the checkpoint's config.json and weights against the base's config.
void check_full_checkpoint(const fs::path& ckpt, const fs::path& base) {
  const fs::path theirs_path = ckpt / "config.json", ours_path = base / "config.json";
  const io::ModelConfig ours = model::load_config(ours_path), theirs = model::load_config(theirs_path);
  if (const auto d = model::config_difference(ours, theirs))
    throw Error(kResumeFlag + theirs_path.string() + ": another model's checkpoint: \"" + d->key + "\" is " +
                d->theirs + " there but " + d->ours + " in " + ours_path.string() +
                " (--model_name_or_path); resume with the base model the checkpoint was trained from");
  const io::WeightStore ws = io::WeightStore::open(ckpt);
  for (const model::TensorSpec& t : model::tensor_table(ours)) {
    SFT_CHECK(ws.has(t.name), kResumeFlag, ckpt.string(), ": the checkpoint's weights lack tensor \"", t.name,
              "\" of the base model ", base.string());
    const io::TensorInfo& info = ws.info(t.name);
    SFT_CHECK(info.shape == t.shape, kResumeFlag, ws.file_of(t.name).path().string(), ": tensor \"", t.name,
              "\" has shape ", io::shape_str(info.shape), " but the base model's is ", io::shape_str(t.shape));
  }
}

// The tokenizer the checkpoint was trained with (its copy of tokenizer.json) against the base's, token by token.
void check_same_vocabulary(const fs::path& ckpt, const fs::path& base) {
  const fs::path theirs = ckpt / "tokenizer.json", ours = base / "tokenizer.json";
  // A checkpoint without a copy has nothing to compare; a base without one fails at its tokenizer load.
  if (!input_present(theirs) || !input_present(ours)) return;
  if (read_input_file(theirs, input::tokenizer_json) == read_input_file(ours, input::tokenizer_json)) return;
  const tok::Tokenizer a = tok::Tokenizer::load(ckpt), b = tok::Tokenizer::load(base);
  const int64_t n = std::max(a.vocab_size(), b.vocab_size());
  for (int64_t id = 0; id < n; ++id) {
    const std::string x = a.id_to_token(static_cast<int32_t>(id)), y = b.id_to_token(static_cast<int32_t>(id));
    if (x == y) continue;
    throw Error(kResumeFlag + theirs.string() + ": the checkpoint was trained with another tokenizer: token " +
                std::to_string(id) + " is " + token_text(x) + " there but " + token_text(y) + " in " + ours.string() +
                " (vocabularies of " + std::to_string(a.vocab_size()) + " and " + std::to_string(b.vocab_size()) +
                " tokens); resume with the base model the checkpoint was trained from");
  }
}

// The base model path the checkpoint's run named (training_args.json), or "" when it does not say.
std::string recorded_base(const fs::path& ckpt) {
  const fs::path f = ckpt / "training_args.json";
  if (!input_present(f)) return "";
  const nlohmann::json j = nlohmann::json::parse(read_input_file(f, input::json_file), nullptr, false);
  if (!j.is_object() || !j.contains("model_name_or_path") || !j["model_name_or_path"].is_string()) return "";
  return j["model_name_or_path"].get<std::string>();
}

// "14 linear layers (k_proj, q_proj, v_proj)": how a set of LoRA targets reads in a note.
std::string describe_targets(const std::vector<size_t>& idx, const std::vector<model::LinearInfo>& linears) {
  std::set<std::string> kinds;
  for (size_t i : idx) kinds.insert(linears[i].module.substr(linears[i].module.rfind('.') + 1));
  std::string names;
  for (const std::string& k : kinds) names += (names.empty() ? "" : ", ") + k;
  return std::to_string(idx.size()) + " linear layer" + (idx.size() == 1 ? "" : "s") + " (" + names + ")";
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ",") + s;
  return out.empty() ? "none" : out;
}

}  // namespace

std::vector<std::string> check_checkpoint_matches_base(const fs::path& ckpt, const fs::path& base, bool lora) {
  if (!lora) {
    check_full_checkpoint(ckpt, base);
  } else {  // the adapter against the base: targets, tensor names, shapes, r (errors name the tensor)
    std::unique_ptr<io::SafetensorsFile> f;
    model::check_adapter(ckpt, model::load_config(base / "config.json"), f);
  }
  check_same_vocabulary(ckpt, base);
  std::vector<std::string> notes;
  const std::string recorded = recorded_base(ckpt);
  std::error_code ec;
  if (!recorded.empty() && recorded != base.string() && !fs::equivalent(recorded, base, ec))
    notes.push_back("note: " + ckpt.string() + " was trained from " + recorded + " (its training_args.json); resuming "
                    "on " + base.string() + ", which has the same " + (lora ? "layer shapes" : "config") +
                    " and vocabulary");
  return notes;
}

std::string adapter_settings_note(const TrainConfig& cfg, const io::LoraAdapterConfig& a, const fs::path& adapter_dir,
                                  const io::ModelConfig& mc) {
  const TrainConfig defaults;
  std::vector<std::string> diffs;
  const auto flag = [](const std::string& name, const std::string& value, bool is_default) {
    return "--" + name + " " + value + (is_default ? " (the default)" : "");
  };
  if (cfg.lora_r != a.r)
    diffs.push_back(flag("lora_r", std::to_string(cfg.lora_r), cfg.lora_r == defaults.lora_r) + " -> r " +
                    std::to_string(a.r));
  if (cfg.lora_alpha != a.lora_alpha)
    diffs.push_back(flag("lora_alpha", num(cfg.lora_alpha), cfg.lora_alpha == defaults.lora_alpha) + " -> " +
                    num(a.lora_alpha));
  if (cfg.lora_dropout != a.lora_dropout)
    diffs.push_back(flag("lora_dropout", num(cfg.lora_dropout), cfg.lora_dropout == defaults.lora_dropout) + " -> " +
                    num(a.lora_dropout));
  if (cfg.use_rslora != a.use_rslora)
    diffs.push_back(flag("use_rslora", cfg.use_rslora ? "True" : "False", cfg.use_rslora == defaults.use_rslora) +
                    " -> " + (a.use_rslora ? "True" : "False"));

  // Module lists compare by what they select in this model (q_proj,v_proj = the adapter's expanded module names).
  const std::vector<model::LinearInfo> linears = model::linear_layers(mc);
  const std::string where = (adapter_dir / "adapter_config.json").string();
  const std::vector<size_t> used = model::resolve_lora_targets(a, linears, where + ": target_modules");
  std::vector<std::string> tensor_names;
  for (const model::TensorSpec& t : model::tensor_table(mc)) tensor_names.push_back(t.name);
  const std::vector<std::string> saved = model::resolve_modules_to_save(a, tensor_names, where + ": modules_to_save");
  bool same_targets = false, same_saved = false;
  try {  // a flag naming no layer of this model differs too (it is not used, so it is no error here)
    const io::LoraAdapterConfig asked = cfg.lora_config();
    same_targets = model::resolve_lora_targets(asked, linears, "--lora_target_modules") == used;
    same_saved = model::resolve_modules_to_save(asked, tensor_names, "--lora_modules_to_save") == saved;
  } catch (const Error&) {
  }
  if (!same_targets)
    diffs.push_back(flag("lora_target_modules", cfg.lora_target_modules.empty() ? "q_proj,v_proj" : cfg.lora_target_modules,
                         cfg.lora_target_modules.empty()) + " -> " + describe_targets(used, linears));
  if (!same_saved)
    diffs.push_back(flag("lora_modules_to_save", cfg.lora_modules_to_save.empty() ? "none" : cfg.lora_modules_to_save,
                         cfg.lora_modules_to_save.empty()) + " -> " + joined(a.modules_to_save));
  if (diffs.empty()) return "";
  std::string out = "note: continuing the adapter " + adapter_dir.string() + ": its adapter_config.json sets the LoRA "
                    "settings (peft keeps an adapter's own config too); these flags differ and are ignored: ";
  for (size_t i = 0; i < diffs.size(); ++i) out += (i ? "; " : "") + diffs[i];
  return out;
}

std::string zero_alpha_warning(const io::LoraAdapterConfig& c, const std::string& where) {
  if (c.lora_alpha != 0) return "";
  return "warning: " + where + " scales the LoRA term by 0, so the adapter changes nothing and its A/B "
         "matrices get zero gradients: " + (c.modules_to_save.empty() ? std::string("nothing trains")
                                                                       : "only the modules_to_save tensors train") +
         " (peft accepts it too; TRL's default --lora_alpha is 32)";
}

}  // namespace sft::train
