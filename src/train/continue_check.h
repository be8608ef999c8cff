// What a run continues from — a checkpoint (--resume_from_checkpoint) or a peft adapter (--adapter_name_or_path) —
// checked against this run's base model and settings before anything is written or trained (train::Job calls these).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "io/hf_config.h"
#include "io/peft_adapter.h"
#include "train/train_config.h"

namespace sft::train {

// --resume_from_checkpoint DIR must belong to the base model (--model_name_or_path): the output folder takes the
// checkpoint's weights (and, for full fine-tuning, its config.json) but the base folder's tokenizer files, so another
// model's checkpoint would make a folder mixing the two. Checked:
//  - full fine-tuning: DIR/config.json equals the base's config.json on every field that shapes the weights or the
//    computation (model::config_difference), and DIR's weights hold every tensor of the base's tensor table with its
//    shape;
//  - both kinds: the vocabulary of DIR/tokenizer.json (the copy of the tokenizer it was trained with) equals the
//    base's, token by token (files with the same bytes are not parsed);
//  - LoRA: the checkpoint's adapter against the base model (model::check_adapter: targets, tensor names, shapes, r).
// Throws one line naming the checkpoint's file, the key / tensor / token and both values. Returns notes (a checkpoint
// trained from a base folder at another path, same architecture and vocabulary: resuming goes on).
std::vector<std::string> check_checkpoint_matches_base(const std::filesystem::path& checkpoint,
                                                       const std::filesystem::path& base, bool lora);

// The LoRA settings of this run against the adapter it continues (a --adapter_name_or_path folder or a LoRA
// checkpoint): peft keeps the adapter's own config (PeftModel.from_pretrained), and so does sft. A note naming each
// --lora_* setting whose value differs from the adapter's and the value used instead; "" when they all agree.
// model_cfg resolves target_modules / modules_to_save, so that q_proj,v_proj equals the adapter's expanded names.
std::string adapter_settings_note(const TrainConfig& cfg, const io::LoraAdapterConfig& adapter,
                                  const std::filesystem::path& adapter_dir, const io::ModelConfig& model_cfg);

// lora_alpha 0 scales the LoRA term by 0: the adapter changes nothing and its A/B matrices get zero gradients, so
// nothing trains (peft 0.21 accepts it silently). A warning starting with `where` ("--lora_alpha 0", or
// "<adapter>/adapter_config.json: lora_alpha 0"), or "" when alpha is not 0.
std::string zero_alpha_warning(const io::LoraAdapterConfig& c, const std::string& where);

}  // namespace sft::train
